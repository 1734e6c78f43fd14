"""VHD blobs in the world's storage accounts, as the Compute service sees them when a gallery image
version names one as its source: the blob's type, its length and its last 512 bytes (the footer).

``AzuriteVhdBlobs`` reads (and, for the world's declared blobs, writes) them in Azurite with each
account's shared key, as Azure's own services would; ``MemoryVhdBlobs`` keeps them in memory for tests
of the ARM side alone. ``vhd_image`` builds the bytes of a declared blob: a fixed VHD, a footer of
another disk type (dynamic), or data that is not a whole number of MiB.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from typing import Protocol

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from azsim.storage.vhd import FOOTER_SIZE, MIB, data_chunks, make_footer

DISK_TYPE_DYNAMIC = 3
_DISK_TYPE_AT, _CHECKSUM_AT = 60, 64  # byte offsets of the footer's disk type and checksum fields
_MISALIGNED_EXTRA = 4096  # page-aligned, but not a whole MiB


@dataclass(frozen=True)
class BlobTail:
    blob_type: str  # PageBlob | BlockBlob | AppendBlob
    length: int
    footer: bytes  # the last 512 bytes (fewer if the blob is shorter)


class VhdBlobs(Protocol):
    def tail(self, account: str, container: str, blob: str) -> BlobTail | None:
        """The blob's type, length and footer; None if the account, container or blob does not exist."""
        ...

    def put(self, account: str, container: str, blob: str, data: bytes, *, page: bool) -> None:
        """Write a whole blob (a page blob when ``page``), replacing what is there."""
        ...


def _with_disk_type(footer: bytes, disk_type: int) -> bytes:
    raw = bytearray(footer)
    raw[_DISK_TYPE_AT : _DISK_TYPE_AT + 4] = struct.pack(">I", disk_type)
    raw[_CHECKSUM_AT : _CHECKSUM_AT + 4] = bytes(4)
    raw[_CHECKSUM_AT : _CHECKSUM_AT + 4] = struct.pack(">I", (~sum(raw)) & 0xFFFFFFFF)
    return bytes(raw)


def vhd_image(content_mib: int, seed: int, fmt: str = "fixed") -> bytes:
    """The bytes of a declared VHD blob of ``content_mib`` MiB of data in format ``fmt``."""
    data = b"".join(chunk for _, chunk in data_chunks(content_mib, seed))
    if fmt == "misaligned":
        data += bytes(_MISALIGNED_EXTRA)
    footer = make_footer(len(data), seed)
    if fmt == "dynamic":
        footer = _with_disk_type(footer, DISK_TYPE_DYNAMIC)
    return data + footer


class MemoryVhdBlobs:
    """``VhdBlobs`` in memory (tests of the ARM simulator without Azurite)."""

    def __init__(self) -> None:
        self.blobs: dict[tuple[str, str, str], tuple[str, bytes]] = {}
        self.lock = threading.Lock()

    def tail(self, account: str, container: str, blob: str) -> BlobTail | None:
        with self.lock:
            found = self.blobs.get((account.lower(), container, blob))
        if found is None:
            return None
        kind, data = found
        return BlobTail(kind, len(data), data[-FOOTER_SIZE:])

    def put(self, account: str, container: str, blob: str, data: bytes, *, page: bool) -> None:
        with self.lock:
            self.blobs[(account.lower(), container, blob)] = ("PageBlob" if page else "BlockBlob", data)


class AzuriteVhdBlobs:
    """``VhdBlobs`` on Azurite: ``keys`` maps each world account's Azurite name to its shared key."""

    def __init__(self, *, azurite_blob_endpoint: str, keys: dict[str, str], ca_bundle: str) -> None:
        self._endpoint = azurite_blob_endpoint.rstrip("/")
        self._keys = {k.lower(): v for k, v in keys.items()}
        self._ca = ca_bundle
        self._clients: dict[str, BlobServiceClient] = {}

    def _service(self, account: str) -> BlobServiceClient | None:
        key = self._keys.get(account.lower())
        if key is None:
            return None
        if account.lower() not in self._clients:
            self._clients[account.lower()] = BlobServiceClient(
                f"{self._endpoint}/{account.lower()}",
                credential={"account_name": account.lower(), "account_key": key},
                connection_verify=self._ca,
            )
        return self._clients[account.lower()]

    def tail(self, account: str, container: str, blob: str) -> BlobTail | None:
        service = self._service(account)
        if service is None:
            return None
        client = service.get_blob_client(container, blob)
        try:
            props = client.get_blob_properties()
            length = int(props.size)
            start = max(0, length - FOOTER_SIZE)
            footer = client.download_blob(offset=start, length=length - start).readall() if length else b""
        except ResourceNotFoundError:
            return None
        kind = str(getattr(props.blob_type, "value", props.blob_type))
        return BlobTail(kind, length, footer)

    def put(self, account: str, container: str, blob: str, data: bytes, *, page: bool) -> None:
        service = self._service(account)
        if service is None:
            raise KeyError(f"no key for storage account {account!r}")
        try:
            service.create_container(container)
        except ResourceExistsError:
            pass
        client = service.get_blob_client(container, blob)
        if not page:
            client.upload_blob(data, overwrite=True)
            return
        client.create_page_blob(len(data))
        step = 4 * MIB
        for offset in range(0, len(data), step):
            chunk = data[offset : offset + step]
            client.upload_page(chunk, offset=offset, length=len(chunk))

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
