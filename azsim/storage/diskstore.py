"""Managed-disk bytes in Azurite: the ``DiskStore`` the ARM simulator uses.

Each disk or snapshot is a page blob holding a small fixed VHD, in an Azurite account that plays
Azure's internal managed-disk storage (reached with its account key, as Azure's own services would).
Every blob sits alone in its own container, named from a hash of the disk's blob name, with the blob
itself called ``abcd`` as in real export URLs. A grant is a stored access policy (signed identifier)
on that container plus a SAS that refers to it; revoking deletes the policy, which makes every SAS
issued under it fail at once (Azurite answers 403 AuthenticationFailed). A container holds at most
five policies, the same limit Azure has, which is plenty: a disk has at most one active access.

SAS URLs point at the blob front (``public_blob_endpoint``), which forwards to Azurite with the
``Host`` header unchanged; Azurite accepts a cross-account copy source only on its own host.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import (
    AccessPolicy,
    BlobClient,
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    generate_blob_sas,
)

from azsim.storage.vhd import MIB, data_chunks, make_footer
from azsim.storage.vhdblobs import vhd_image

BLOB_NAME = "abcd"
_MAX_POLICIES = 5


def container_for(blob_name: str) -> str:
    """The container holding one disk/snapshot blob (3-63 chars, lowercase, hyphen-safe)."""
    return "md-" + hashlib.sha256(blob_name.encode()).hexdigest()[:32]


class DiskStoreError(RuntimeError):
    """A disk blob operation failed; the message names the disk blob and the storage error."""


class AzuriteDiskStore:
    """``azsim.interfaces.DiskStore`` on an Azurite account (shared-key auth, HTTPS)."""

    def __init__(
        self,
        *,
        account: str,
        account_key: str,
        azurite_blob_endpoint: str,
        ca_bundle: str,
        public_blob_endpoint: str | None = None,
    ) -> None:
        self.account = account
        self._key = account_key
        self._service = BlobServiceClient(
            f"{azurite_blob_endpoint}/{account}",
            credential={"account_name": account, "account_key": account_key},
            connection_verify=ca_bundle,
        )
        self._public = (public_blob_endpoint or azurite_blob_endpoint).rstrip("/")

    def _container(self, blob_name: str) -> ContainerClient:
        return self._service.get_container_client(container_for(blob_name))

    def _ensure_container(self, blob_name: str) -> ContainerClient:
        container = self._container(blob_name)
        try:
            container.create_container()
        except ResourceExistsError:
            pass
        return container

    def blob_url(self, blob_name: str) -> str:
        """The blob's public URL (no SAS) as clients see it through the blob front."""
        return f"{self._public}/{self.account}/{container_for(blob_name)}/{BLOB_NAME}"

    def create_disk_blob(
        self, blob_name: str, *, content_mib: int, seed: int, vhd_format: str = "fixed"
    ) -> int:
        if content_mib < 1:
            raise ValueError(f"disk blob {blob_name!r}: content_mib must be at least 1, got {content_mib}")
        blob = self._ensure_container(blob_name).get_blob_client(BLOB_NAME)
        if vhd_format != "fixed":  # test worlds: bytes Azure never exports (see world.OsDisk.vhd_format)
            return self._write_image(blob_name, blob, vhd_image(content_mib, seed, vhd_format))
        size = content_mib * MIB
        footer = make_footer(size, seed)
        try:
            blob.create_page_blob(size + 512)
            chunks = list(data_chunks(content_mib, seed))
            last_offset, last = chunks[-1]
            if len(last) + 512 <= 4 * MIB:  # one request fewer: the footer rides with the last pages
                chunks[-1] = (last_offset, last + footer)
            else:
                chunks.append((size, footer))
            for offset, chunk in chunks:
                blob.upload_page(chunk, offset=offset, length=len(chunk))
        except HttpResponseError as e:
            raise DiskStoreError(
                f"could not write disk blob {blob_name!r}: {e.status_code} {getattr(e, 'error_code', None)}"
            ) from None
        return size + 512

    def _write_image(self, blob_name: str, blob: BlobClient, data: bytes) -> int:
        try:
            blob.create_page_blob(len(data))
            for offset in range(0, len(data), 4 * MIB):
                chunk = data[offset : offset + 4 * MIB]
                blob.upload_page(chunk, offset=offset, length=len(chunk))
        except HttpResponseError as e:
            raise DiskStoreError(
                f"could not write disk blob {blob_name!r}: {e.status_code} {getattr(e, 'error_code', None)}"
            ) from None
        return len(data)

    def copy_blob(self, src_blob_name: str, dst_blob_name: str) -> None:
        src = self._container(src_blob_name).get_blob_client(BLOB_NAME)
        dst = self._ensure_container(dst_blob_name).get_blob_client(BLOB_NAME)
        try:
            # Same-account copy inside Azurite completes at once; no SAS needed for the source.
            result = dst.start_copy_from_url(src.url)
        except ResourceNotFoundError:
            raise DiskStoreError(
                f"cannot copy disk blob {src_blob_name!r} to {dst_blob_name!r}: the source does not exist"
            ) from None
        except HttpResponseError as e:
            raise DiskStoreError(
                f"cannot copy disk blob {src_blob_name!r} to {dst_blob_name!r}: {e.status_code} {getattr(e, 'error_code', None)}"
            ) from None
        if result.get("copy_status") != "success":
            raise DiskStoreError(
                f"copy of disk blob {src_blob_name!r} to {dst_blob_name!r} ended {result.get('copy_status')}"
            )

    def delete_blob(self, blob_name: str) -> None:
        try:
            self._container(blob_name).delete_container()
        except ResourceNotFoundError:
            pass

    def grant_read(self, blob_name: str, access_id: str, duration_seconds: int) -> str:
        container = self._container(blob_name)
        now = dt.datetime.now(dt.UTC)
        policies = {
            p.id: p.access_policy
            for p in container.get_container_access_policy()["signed_identifiers"]
            if p.id != access_id and p.access_policy is not None and _not_expired(p.access_policy, now)
        }
        if len(policies) >= _MAX_POLICIES:
            raise DiskStoreError(
                f"disk blob {blob_name!r} already has {len(policies)} active accesses; revoke one first"
            )
        policies[access_id] = AccessPolicy(
            permission=ContainerSasPermissions(read=True),
            start=now - dt.timedelta(minutes=5),
            expiry=now + dt.timedelta(seconds=duration_seconds),
        )
        container.set_container_access_policy(signed_identifiers=policies)
        sas = generate_blob_sas(
            account_name=self.account,
            container_name=container.container_name,
            blob_name=BLOB_NAME,
            account_key=self._key,
            policy_id=access_id,
        )
        return f"{self.blob_url(blob_name)}?{sas}"

    def revoke(self, blob_name: str, access_id: str) -> None:
        container = self._container(blob_name)
        try:
            current = container.get_container_access_policy()["signed_identifiers"]
        except ResourceNotFoundError:
            return
        keep = {p.id: p.access_policy for p in current if p.id != access_id}
        if len(keep) != len(current):
            container.set_container_access_policy(signed_identifiers=keep)

    def close(self) -> None:
        self._service.close()


def _not_expired(policy: AccessPolicy, now: dt.datetime) -> bool:
    expiry = policy.expiry
    if expiry is None:
        return True
    if isinstance(expiry, str):
        expiry = dt.datetime.fromisoformat(expiry.replace("Z", "+00:00"))
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=dt.UTC)
    return expiry > now
