"""Scripted stand-ins for ``activities``: same names, same contracts, behaviour from ``FAKE_SCENARIO``.

State is the call log (``FAKE_CALLS``): each fake decides from how often it and others were called,
never from the clock, so it behaves the same under devhost's virtual clock.
Scenario keys (all optional): ``diskGb``, ``dataDisks``, ``guestPolls`` (polls until the guest stops;
-1 = never), ``snapshotPolls``, ``copyStepBytes``, ``copyStallAfter`` (polls after which bytes stop
growing), ``copyFail``, ``regionStep`` (% per poll), ``failRegion``, ``transient`` ({name: n first calls
fail transiently}), ``terminal`` ({name: Azure code}), ``problems`` (preflight problems), ``regions`` (what
``list_regions`` answers; default ``REGIONS``), ``galleryLocation`` (an existing gallery's region),
``guestConflict`` (start_guest_prepare answers Azure's 409 in-progress text), ``versionDeleteStuck`` (a deleted image version never goes away), ``copyExpire`` (the first n copies of
each disk fail at their 2nd poll with 403 CannotVerifyCopySource: their source SAS expired).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Literal

import azure.durable_functions as df

from shared.contracts import (
    BlobRef,
    CopyStatus,
    DefinitionInput,
    DefinitionResult,
    DiskFacts,
    Done,
    ExportCheckResult,
    ExportStartInput,
    GalleryCheckResult,
    GuestPrepareResult,
    PowerState,
    RegionReplication,
    RegionsInput,
    RegionsResult,
    SnapshotInput,
    SnapshotRef,
    SnapshotResult,
    VersionInput,
    VersionRef,
    VersionStatus,
    VmFacts,
    VmRef,
)
from shared.errors import AzureOperationError, TransientAzureError
from shared.notices import NoticeInput, NoticeResult
from shared.permissions import PermissionsCheckInput, PermissionsCheckResult
from shared.trace_ids import RunTrace, TraceWritten, pop_trace

bp = df.Blueprint()
_lock = threading.Lock()


def _scenario() -> dict[str, Any]:
    return dict(json.loads(os.environ.get("FAKE_SCENARIO", "{}")))


def _calls() -> list[dict[str, Any]]:
    path = os.environ["FAKE_CALLS"]
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _record(name: str, payload: dict[str, Any]) -> int:
    """Log the call; raise the scripted failure if any; return how many calls of ``name`` came before."""
    pop_trace(payload)  # the trace reference the real activities take out first (shared.trace_ids)
    with _lock:
        n = sum(1 for c in _calls() if c["name"] == name)
        with open(os.environ["FAKE_CALLS"], "a", encoding="utf-8") as f:
            f.write(json.dumps({"name": name, "payload": payload}) + "\n")
    sc = _scenario()
    if n < int(sc.get("transient", {}).get(name, 0)):
        raise TransientAzureError(
            f"Azure answered 503 ServerBusy while trying to {name}", step=name, code="ServerBusy"
        )
    code = sc.get("terminal", {}).get(name)
    if code:
        raise AzureOperationError(
            f"Azure answered 403 {code} while trying to {name}: The client does not have authorization.",
            step=name,
            code=code,
            azure_code=code,
        )
    return n


def _count(name: str) -> int:
    with _lock:
        return sum(1 for c in _calls() if c["name"] == name)


VM_ID = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/vm-fake"


@bp.activity_trigger(input_name="payload")
def get_vm_facts(payload: dict[str, Any]) -> dict[str, Any]:
    _record("get_vm_facts", payload)
    sc = _scenario()
    gb = int(sc.get("diskGb", 30))
    disk = DiskFacts(
        key="os", name="vm-fake_OsDisk", id=VM_ID.replace("virtualMachines/vm-fake", "disks/os"), size_gb=gb
    )
    data = [
        DiskFacts(
            key=f"lun{i}",
            lun=i,
            name=f"vm-fake_data{i}",
            id=VM_ID.replace("virtualMachines/vm-fake", f"disks/d{i}"),
            size_gb=gb,
        )
        for i in range(int(sc.get("dataDisks", 1)))
    ]
    return VmFacts(
        id=VmRef.from_wire(payload).vm_id,
        name="vm-fake",
        resource_group="rg-build",
        subscription_id="00000000-0000-0000-0000-000000000001",
        location="westeurope",
        os_type="Linux",
        hyper_v_generation="V2",
        security_type="Standard",
        architecture="x64",
        power_state="running",
        generalized=False,
        os_disk=disk,
        data_disks=data,
    ).to_wire()


@bp.activity_trigger(input_name="payload")
def check_gallery(payload: dict[str, Any]) -> dict[str, Any]:
    _record("check_gallery", payload)
    return GalleryCheckResult(
        gallery_exists=True,
        gallery_location=str(_scenario().get("galleryLocation", "westeurope")),
        resolved_version="1.0.0",
        version_exists=False,
        problems=list(_scenario().get("problems", [])),
    ).to_wire()


@bp.activity_trigger(input_name="payload")
def check_export_target(payload: dict[str, Any]) -> dict[str, Any]:
    _record("check_export_target", payload)
    return ExportCheckResult(reachable=True, container_exists=True).to_wire()


REGIONS = ["eastus", "eastus2", "northeurope", "uksouth", "westeurope", "westus2"]


@bp.activity_trigger(input_name="payload")
def list_regions(payload: dict[str, Any]) -> dict[str, Any]:
    _record("list_regions", payload)
    RegionsInput.from_wire(payload)
    return RegionsResult(regions=sorted(_scenario().get("regions", REGIONS))).to_wire()


@bp.activity_trigger(input_name="payload")
def check_permissions(payload: dict[str, Any]) -> dict[str, Any]:
    """The scenario's ``missingPermissions`` (a list of MissingAtScope wire dicts), else nothing missing."""
    _record("check_permissions", payload)
    PermissionsCheckInput.from_wire(payload)
    return PermissionsCheckResult.from_wire({"missing": _scenario().get("missingPermissions", [])}).to_wire()


@bp.activity_trigger(input_name="payload")
def start_guest_prepare(payload: dict[str, Any]) -> dict[str, Any]:
    _record("start_guest_prepare", payload)
    conflict = _scenario().get("guestConflict")
    if conflict:
        return GuestPrepareResult(
            started=False, already_in_progress=True, command="RunShellScript", conflict=str(conflict)
        ).to_wire()
    return GuestPrepareResult(started=True, command="RunShellScript").to_wire()


@bp.activity_trigger(input_name="payload")
def get_power_state(payload: dict[str, Any]) -> dict[str, Any]:
    _record("get_power_state", payload)
    ref = VmRef.from_wire(payload)
    if _count("start_deallocate"):
        return PowerState(vm_id=ref.vm_id, power_state="deallocated").to_wire()
    guest_polls = int(_scenario().get("guestPolls", 2))
    stopped = guest_polls >= 0 and _count("get_power_state") > guest_polls
    return PowerState(vm_id=ref.vm_id, power_state="stopped" if stopped else "running").to_wire()


@bp.activity_trigger(input_name="payload")
def start_deallocate(payload: dict[str, Any]) -> dict[str, Any]:
    _record("start_deallocate", payload)
    return PowerState(vm_id=VmRef.from_wire(payload).vm_id, power_state="deallocating").to_wire()


@bp.activity_trigger(input_name="payload")
def generalize_vm(payload: dict[str, Any]) -> dict[str, Any]:
    _record("generalize_vm", payload)
    return PowerState(
        vm_id=VmRef.from_wire(payload).vm_id, power_state="deallocated", generalized=True
    ).to_wire()


def _snap(key: str, lun: int | None, state: str) -> SnapshotResult:
    return SnapshotResult(
        snapshot_id=f"/subscriptions/s/resourceGroups/rg-build/providers/Microsoft.Compute/snapshots/snap-{key}",
        name=f"snap-{key}",
        disk_key=key,
        lun=lun,
        provisioning_state=state,
    )


@bp.activity_trigger(input_name="payload")
def start_snapshot(payload: dict[str, Any]) -> dict[str, Any]:
    _record("start_snapshot", payload)
    inp = SnapshotInput.from_wire(payload)
    return _snap(inp.disk.key, inp.disk.lun, "Creating").to_wire()


@bp.activity_trigger(input_name="payload")
def get_snapshot(payload: dict[str, Any]) -> dict[str, Any]:
    _record("get_snapshot", payload)
    key = SnapshotRef.from_wire(payload).snapshot_id.rsplit("snap-", 1)[1]
    done = _count("get_snapshot") > int(_scenario().get("snapshotPolls", 1))
    return _snap(key, None if key == "os" else int(key[3:]), "Succeeded" if done else "Creating").to_wire()


@bp.activity_trigger(input_name="payload")
def ensure_definition(payload: dict[str, Any]) -> dict[str, Any]:
    _record("ensure_definition", payload)
    inp = DefinitionInput.from_wire(payload)
    return DefinitionResult(
        gallery_id="/g",
        definition_id=f"/g/images/{inp.definition.name}",
        gallery_created=False,
        definition_created=True,
    ).to_wire()


def _version(regions: list[str], polls: int) -> VersionStatus:
    sc = _scenario()
    step = int(sc.get("regionStep", 50))
    rows = []
    for r in regions:
        pct = min(100, polls * step)
        state = "Completed" if pct >= 100 else "Replicating"
        if r == sc.get("failRegion") and polls >= 1:
            rows.append(
                RegionReplication(
                    region=r, state="Failed", progress=pct, details="AllocationFailed: no capacity"
                )
            )
        else:
            rows.append(RegionReplication(region=r, state=state, progress=pct))
    return VersionStatus(
        version_id="/g/images/d/versions/1.0.0", provisioning_state="Succeeded", regions=rows
    )


@bp.activity_trigger(input_name="payload")
def start_image_version(payload: dict[str, Any]) -> dict[str, Any]:
    _record("start_image_version", payload)
    inp = VersionInput.from_wire(payload)
    with open(os.environ["FAKE_CALLS"] + ".regions", "w", encoding="utf-8") as f:
        json.dump([r.name for r in inp.target_regions], f)
    return _version([r.name for r in inp.target_regions], 0).to_wire()


@bp.activity_trigger(input_name="payload")
def get_version_status(payload: dict[str, Any]) -> dict[str, Any]:
    pop_trace(payload)
    VersionRef.from_wire(payload)
    n = _record("get_version_status", payload) + 1
    if _count("delete_image_version") and not _scenario().get("versionDeleteStuck"):
        return VersionStatus(version_id=VersionRef.from_wire(payload).version_id, exists=False).to_wire()
    with open(os.environ["FAKE_CALLS"] + ".regions", encoding="utf-8") as f:
        regions = json.load(f)
    return _version(regions, n).to_wire()


@bp.activity_trigger(input_name="payload")
def delete_image_version(payload: dict[str, Any]) -> dict[str, Any]:
    _record("delete_image_version", payload)
    return Done(resource_id=VersionRef.from_wire(payload).version_id, changed=True).to_wire()


def _blob(key: str) -> str:
    return f"https://stexports.blob.core.windows.net/vhds/cap/{key}.vhd"


@bp.activity_trigger(input_name="payload")
def start_export(payload: dict[str, Any]) -> dict[str, Any]:
    _record("start_export", payload)
    inp = ExportStartInput.from_wire(payload)
    n = (
        sum(1 for c in _calls() if c["name"] == "start_export" and c["payload"]["diskKey"] == inp.disk_key)
        - 1
    )
    return CopyStatus(
        blob_url=_blob(inp.disk_key),
        copy_id=f"copy-{inp.disk_key}" + (f"-r{n}" if n else ""),
        status="pending",
        bytes_total=inp.size_gb * 1024**3,
    ).to_wire()


@bp.activity_trigger(input_name="payload")
def get_copy_status(payload: dict[str, Any]) -> dict[str, Any]:
    pop_trace(payload)
    ref = BlobRef.from_wire(payload)
    _record("get_copy_status", payload)
    key = ref.blob_url.rsplit("/", 1)[1].removesuffix(".vhd")
    polls = copies = 0  # polls of the current copy (since the disk's latest start_export); copies started
    for c in _calls():
        if c["name"] == "start_export" and c["payload"]["diskKey"] == key:
            polls, copies = 0, copies + 1
        elif c["name"] == "get_copy_status" and c["payload"]["blobUrl"] == ref.blob_url:
            polls += 1
    sc = _scenario()
    if copies <= int(sc.get("copyExpire", 0)) and polls >= 2:
        return CopyStatus(
            blob_url=ref.blob_url,
            copy_id=ref.copy_id,
            status="failed",
            bytes_copied=int(sc.get("copyStepBytes", 0)),
            bytes_total=int(sc.get("diskGb", 30)) * 1024**3,
            description='403 CannotVerifyCopySource "The copy source could not be read any more: its SAS '
            'was revoked or expired."',
        ).to_wire()
    total = int(sc.get("diskGb", 30)) * 1024**3
    stall_after = sc.get("copyStallAfter")
    effective = min(polls, int(stall_after)) if stall_after is not None else polls
    copied = min(total, effective * int(sc.get("copyStepBytes", total // 2)))
    if sc.get("copyFail") and polls >= 2:
        return CopyStatus(
            blob_url=ref.blob_url,
            copy_id=ref.copy_id,
            status="failed",
            bytes_copied=copied,
            bytes_total=total,
            description="500 InternalError: the copy source became unreadable",
        ).to_wire()
    status: Literal["success", "pending"] = "success" if copied >= total else "pending"
    return CopyStatus(
        blob_url=_blob(key), copy_id=ref.copy_id, status=status, bytes_copied=copied, bytes_total=total
    ).to_wire()


@bp.activity_trigger(input_name="payload")
def abort_copy(payload: dict[str, Any]) -> dict[str, Any]:
    _record("abort_copy", payload)
    ref = BlobRef.from_wire(payload)
    return CopyStatus(blob_url=ref.blob_url, copy_id=ref.copy_id, status="aborted").to_wire()


@bp.activity_trigger(input_name="payload")
def revoke_snapshot_access(payload: dict[str, Any]) -> dict[str, Any]:
    _record("revoke_snapshot_access", payload)
    return Done(resource_id=SnapshotRef.from_wire(payload).snapshot_id, changed=True).to_wire()


@bp.activity_trigger(input_name="payload")
def delete_snapshot(payload: dict[str, Any]) -> dict[str, Any]:
    _record("delete_snapshot", payload)
    return Done(resource_id=SnapshotRef.from_wire(payload).snapshot_id, changed=True).to_wire()


@bp.activity_trigger(input_name="payload")
def publish_notice(payload: dict[str, Any]) -> dict[str, Any]:
    _record("publish_notice", payload)
    NoticeInput.from_wire(payload)
    return NoticeResult(queue="capture-results", queued=True).to_wire()


@bp.activity_trigger(input_name="payload")
def get_snapshot_deletion(payload: dict[str, Any]) -> dict[str, Any]:
    _record("get_snapshot_deletion", payload)
    return Done(resource_id=SnapshotRef.from_wire(payload).snapshot_id, changed=True).to_wire()


@bp.activity_trigger(input_name="payload")
def record_trace(payload: dict[str, Any]) -> dict[str, Any]:
    # Not an Azure call: left out of the recorded calls the tests compare.
    pop_trace(payload)
    RunTrace.from_wire(payload)
    return TraceWritten(spans=0).to_wire()
