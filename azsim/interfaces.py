"""Seams between azsim's parts: the ARM simulator, the storage side and identity.

The ARM state models (``azsim.arm``) never talk to Azurite directly; they go through a
``DiskStore``. Bearer tokens are checked through a ``TokenVerifier``. The blob front
(``azsim.storage``) asks the latency profile and the fault engine how a copy behaves.
Keeping these as protocols lets each part be built and tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


class DiskStore(Protocol):
    """Bytes behind managed disks and snapshots (page blobs in an Azurite account)."""

    def create_disk_blob(
        self, blob_name: str, *, content_mib: int, seed: int, vhd_format: str = "fixed"
    ) -> int:
        """Write a deterministic fixed VHD (data + 512-byte ``conectix`` footer); return its length.

        ``vhd_format`` other than "fixed" (test worlds only): ``azsim.storage.vhdblobs.vhd_image``'s formats."""
        ...

    def copy_blob(self, src_blob_name: str, dst_blob_name: str) -> None:
        """Copy one disk/snapshot blob to another (snapshot from disk, disk from snapshot)."""
        ...

    def delete_blob(self, blob_name: str) -> None:
        """Delete a blob; deleting a missing blob is not an error."""
        ...

    def grant_read(self, blob_name: str, access_id: str, duration_seconds: int) -> str:
        """Make a read SAS URL for the blob, valid until ``revoke`` (or expiry)."""
        ...

    def revoke(self, blob_name: str, access_id: str) -> None:
        """Make every SAS issued under ``access_id`` stop working at once."""
        ...


@dataclass(frozen=True)
class Principal:
    """Who a bearer token names."""

    object_id: str
    tenant_id: str
    audience: str


class TokenVerifier(Protocol):
    def verify(self, authorization_header: str | None, *, audience: str) -> Principal:
        """Return the principal of a valid bearer token for ``audience``; raise ``InvalidToken`` otherwise."""
        ...


class InvalidToken(Exception):
    """The request's bearer token is missing, malformed, expired or for another audience."""


CopyFaultKind = Literal["fail", "stall", "abort"]


class CopyBehaviour(Protocol):
    """How a server-side blob copy into a storage account behaves (latency + injected faults)."""

    def copy_seconds(self, size_bytes: int) -> float:
        """Simulated wall-clock duration of a copy of ``size_bytes`` (time scale already applied)."""
        ...

    def copy_fault(self, account: str, container: str, blob: str) -> CopyFaultKind | None:
        """Return an injected fault for a copy into this destination, if a fault rule matches."""
        ...
