"""Parse and build Azure resource ids, and derive the deterministic names a capture uses.

Names derived from the capture id let a re-executed activity find its own earlier work
(snapshots, export blobs) instead of creating new resources.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_RID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"(?P<ns>[^/]+)/(?P<type>[^/]+)/(?P<name>[^/]+)(?P<rest>(/[^/]+/[^/]+)*)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ResourceId:
    subscription_id: str
    resource_group: str
    namespace: str
    type: str
    name: str

    @classmethod
    def parse(cls, value: str) -> ResourceId:
        """Parse a top-level ARM resource id; raise ValueError naming what is wrong."""
        m = _RID.match(value.strip())
        if not m or m.group("rest"):
            raise ValueError(
                "expected an ARM resource id like /subscriptions/<id>/resourceGroups/<rg>/providers/"
                "Microsoft.Compute/virtualMachines/<name>"
            )
        return cls(m.group("sub"), m.group("rg"), m.group("ns"), m.group("type"), m.group("name"))

    def __str__(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{self.namespace}/{self.type}/{self.name}"
        )


def vm_id(subscription_id: str, resource_group: str, name: str) -> str:
    return str(ResourceId(subscription_id, resource_group, "Microsoft.Compute", "virtualMachines", name))


def snapshot_id(subscription_id: str, resource_group: str, name: str) -> str:
    return str(ResourceId(subscription_id, resource_group, "Microsoft.Compute", "snapshots", name))


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:limit].strip("-")


def capture_instance_id(source_vm_id: str) -> str:
    """The orchestration instance id of the capture of a VM: one running capture per VM.

    Readable (VM name) plus a hash of the full, case-folded id so that two VMs of the same
    name in different groups or subscriptions never share an id.
    """
    rid = ResourceId.parse(source_vm_id)
    digest = hashlib.sha256(str(rid).lower().encode()).hexdigest()[:10]
    return f"capture-{_slug(rid.name, 40)}-{digest}"


def disk_key(lun: int | None) -> str:
    """Stable key of a disk within a capture: ``os`` or ``lun<N>``."""
    return "os" if lun is None else f"lun{lun}"


def snapshot_name(capture_id: str, lun: int | None) -> str:
    """Snapshot name for a disk of a capture (<= 80 chars, valid for Microsoft.Compute/snapshots)."""
    return f"{capture_id[:70]}-{disk_key(lun)}"


def export_blob_name(capture_id: str, disk_name: str) -> str:
    """Blob path of an exported VHD inside the export container: ``<capture-id>/<disk>.vhd``."""
    return f"{capture_id}/{disk_name}.vhd"


TAG_CAPTURE_ID = "image-pipeline:capture-id"
TAG_SOURCE_VM = "image-pipeline:source-vm"
