"""Snapshot activities: start a snapshot of a disk, read it, revoke its export access, delete it.

Snapshot names and tags come from the capture run id (``SnapshotInput.run_id``), so a re-executed
``start_snapshot`` finds the snapshot an earlier execution of the same run created instead of making a
second one, and a later run of the same VM never reuses it.
"""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.compute import models as cm

from activities import lro
from activities._common import activity, as_dict, azure_call, get_or_none, parse_id, props
from shared import clients
from shared.activity_types import (
    DELETE_SNAPSHOT,
    GET_SNAPSHOT,
    GET_SNAPSHOT_DELETION,
    REVOKE_SNAPSHOT_ACCESS,
    START_SNAPSHOT,
)
from shared.azure_errors import operation_failure
from shared.contracts import Done, OperationOutcome, SnapshotInput, SnapshotRef, SnapshotResult
from shared.errors import AzureOperationError, TransientAzureError
from shared.ids import TAG_RUN_ID, made_by_run, ownership_tags, snapshot_id, snapshot_name

# Which disk of the capture a snapshot holds ("os" / "lun<N>"), so get_snapshot can say it without state.
TAG_DISK_KEY = "image-pipeline:disk"
SNAPSHOT_SKU = "Standard_LRS"


def _result(snap: dict[str, Any], operation_url: str | None = None) -> SnapshotResult:
    p = props(snap)
    tags = snap.get("tags") or {}
    name = str(snap.get("name") or "")
    key = str(tags.get(TAG_DISK_KEY) or ("os" if name.endswith("-os") else name.rsplit("-", 1)[-1]))
    lun = int(key[3:]) if key.startswith("lun") and key[3:].isdigit() else None
    percent = p.get("completionPercent")
    return SnapshotResult(
        snapshot_id=str(snap.get("id") or ""),
        name=name,
        disk_key=key,
        lun=lun,
        provisioning_state=str(p.get("provisioningState") or "Unknown"),
        size_gb=p.get("diskSizeGB"),
        completion_percent=float(percent) if percent is not None else None,
        operation_url=operation_url,
    )


def _missing(inp: SnapshotInput | None, sid: str, operation_url: str | None, state: str) -> SnapshotResult:
    name = sid.rsplit("/", 1)[-1]
    key = inp.disk.key if inp else ("os" if name.endswith("-os") else name.rsplit("-", 1)[-1])
    lun = inp.disk.lun if inp else (int(key[3:]) if key.startswith("lun") and key[3:].isdigit() else None)
    return SnapshotResult(
        snapshot_id=sid,
        name=name,
        disk_key=key,
        lun=lun,
        provisioning_state=state,
        exists=False,
        operation_url=operation_url,
    )


def _with_outcome(result: SnapshotResult, sub: str) -> SnapshotResult:
    """A snapshot that is missing or Failed: say why, from its create operation (None when still running)."""
    outcome = None
    with azure_call("read the snapshot's create operation", result.snapshot_id):
        outcome = lro.read_operation(sub, result.operation_url)
    if outcome is not None and outcome.status.lower() in ("inprogress", "accepted", "running"):
        return result.model_copy(update={"provisioning_state": "Creating"}) if not result.exists else result
    if outcome is None or not lro.failed(outcome):
        # No operation to ask (or it says Succeeded although the snapshot is missing/Failed): a new
        # create is the only way forward, so report it as a transient failure.
        outcome = OperationOutcome(
            status="Failed",
            code="SnapshotMissing" if not result.exists else "SnapshotFailed",
            message="Azure has no such snapshot although it accepted its creation"
            if not result.exists
            else "Azure reports provisioningState Failed without details",
            transient=True,
        )
    return result.model_copy(update={"provisioning_state": "Failed", "failure": outcome})


def _read(subscription_id: str, resource_group: str, name: str, sid: str) -> dict[str, Any] | None:
    """The snapshot's REST JSON, or None when Azure answers 404 (the one read every activity here makes)."""
    snapshots = clients.compute(subscription_id).snapshots
    return get_or_none(
        lambda: as_dict(snapshots.get(resource_group, name)), step="read the snapshot", resource=sid
    )


@activity(START_SNAPSHOT)
def start_snapshot(inp: SnapshotInput) -> SnapshotResult:
    """Start a full snapshot (createOption Copy) of one disk; return at once. Poll ``get_snapshot``."""
    name = snapshot_name(inp.run_id, inp.disk.lun)
    sid = snapshot_id(inp.subscription_id, inp.resource_group, name)
    snapshots = clients.compute(inp.subscription_id).snapshots
    existing = _read(inp.subscription_id, inp.resource_group, name, sid)
    if existing is not None:
        owner = made_by_run(existing.get("tags"))
        if owner != inp.run_id:
            raise AzureOperationError(
                f"the snapshot {name} in resource group {inp.resource_group} already exists and was not made by "
                f"this capture run (tag {TAG_RUN_ID}={owner!r}): delete it or rename it",
                step="start_snapshot",
                resource=sid,
                code="SnapshotNameTaken",
            )
        if str(props(existing).get("provisioningState") or "").lower() != "failed":
            return _result(existing)
        # Our own snapshot whose create failed: remove it, so the PUT below makes a fresh one.
        with azure_call("delete the failed snapshot", sid):
            snapshots.begin_delete(inp.resource_group, name).result()
    properties: dict[str, Any] = {
        "incremental": False,
        "creationData": {"createOption": "Copy", "sourceResourceId": inp.disk.id},
    }
    if inp.disk.lun is None and inp.hyper_v_generation:
        properties["hyperVGeneration"] = inp.hyper_v_generation
    body = {
        "location": inp.location,
        "sku": {"name": SNAPSHOT_SKU},
        "tags": {**ownership_tags(inp.run_id, inp.tags), TAG_DISK_KEY: inp.disk.key},
        "properties": properties,
    }
    with azure_call("create the snapshot", sid):
        accepted = lro.start(snapshots.begin_create_or_update, inp.resource_group, name, cm.Snapshot(body))
    created = _read(inp.subscription_id, inp.resource_group, name, sid)
    if created is None:  # accepted, not visible yet (or its operation already failed): get_snapshot tells
        return _missing(inp, sid, accepted.operation_url, "Creating")
    return _result(created, accepted.operation_url)


@activity(GET_SNAPSHOT)
def get_snapshot(inp: SnapshotRef) -> SnapshotResult:
    """Read a snapshot's provisioning state (and background-copy percentage, when Azure reports one).

    A snapshot that is missing or ``Failed`` comes back ``Failed`` with ``failure``: Azure's code and
    message from its create operation (``inp.operation_url``), classified transient or terminal.
    """
    rid = parse_id(inp.snapshot_id, field="snapshotId", step="get_snapshot")
    snap = _read(rid.subscription_id, rid.resource_group, rid.name, inp.snapshot_id)
    if snap is None:
        return _with_outcome(
            _missing(None, inp.snapshot_id, inp.operation_url, "NotFound"), rid.subscription_id
        )
    result = _result(snap, inp.operation_url)
    if result.provisioning_state.lower() == "failed":
        return _with_outcome(result, rid.subscription_id)
    return result


@activity(REVOKE_SNAPSHOT_ACCESS)
def revoke_snapshot_access(inp: SnapshotRef) -> Done:
    """End export access to the snapshot (every SAS issued for it stops working). Idempotent.

    Waits on the (short) endGetAccess operation so that, when this returns, the SAS is dead.
    ``changed`` is True when the snapshot had an active SAS.
    """
    rid = parse_id(inp.snapshot_id, field="snapshotId", step="revoke_snapshot_access")
    snapshots = clients.compute(rid.subscription_id).snapshots
    snap = _read(rid.subscription_id, rid.resource_group, rid.name, inp.snapshot_id)
    if snap is None:
        return Done(resource_id=inp.snapshot_id, changed=False)
    active = str(props(snap).get("diskState") or "").lower().startswith("activesas")
    with azure_call("revoke access to the snapshot", inp.snapshot_id):
        try:
            snapshots.begin_revoke_access(rid.resource_group, rid.name).result()
        except ResourceNotFoundError:
            return Done(resource_id=inp.snapshot_id, changed=False)
    return Done(resource_id=inp.snapshot_id, changed=active)


@activity(DELETE_SNAPSHOT)
def delete_snapshot(inp: SnapshotRef) -> Done:
    """Start deleting the snapshot. Idempotent: a snapshot already gone is ``changed=False``."""
    rid = parse_id(inp.snapshot_id, field="snapshotId", step="delete_snapshot")
    snapshots = clients.compute(rid.subscription_id).snapshots
    # ARM answers a DELETE of a missing resource with 204, so ask first to report "already gone" honestly.
    snap = _read(rid.subscription_id, rid.resource_group, rid.name, inp.snapshot_id)
    if snap is None:
        return Done(resource_id=inp.snapshot_id, changed=False)
    with azure_call("delete the snapshot", inp.snapshot_id):
        try:
            accepted = lro.start(snapshots.begin_delete, rid.resource_group, rid.name)
        except ResourceNotFoundError:
            return Done(resource_id=inp.snapshot_id, changed=False)
    return Done(resource_id=inp.snapshot_id, changed=True, operation_url=accepted.operation_url)


@activity(GET_SNAPSHOT_DELETION)
def get_snapshot_deletion(inp: SnapshotRef) -> Done:
    """Is the snapshot gone? ``changed=True`` once it is. A delete whose operation failed raises its error.

    ``inp.operation_url`` is the delete's (``Done.operation_url``). A delete that failed with a
    transient code is started again (the answer carries the new operation's URL); a terminal one is
    raised with Azure's code and advice.
    """
    rid = parse_id(inp.snapshot_id, field="snapshotId", step="get_snapshot_deletion")
    snapshots = clients.compute(rid.subscription_id).snapshots
    snap = _read(rid.subscription_id, rid.resource_group, rid.name, inp.snapshot_id)
    if snap is None:
        return Done(resource_id=inp.snapshot_id, changed=True)
    with azure_call("read the snapshot's delete operation", inp.snapshot_id):
        outcome = lro.read_operation(rid.subscription_id, inp.operation_url)
    if outcome is not None and lro.failed(outcome):
        if not outcome.transient:
            raise operation_failure(
                {"code": outcome.code, "message": outcome.message},
                step="delete the snapshot",
                resource=inp.snapshot_id,
                status=outcome.status,
            )
        # The delete failed in a way that may pass: delete again, and follow the new operation.
        with azure_call("delete the snapshot", inp.snapshot_id):
            accepted = lro.start(snapshots.begin_delete, rid.resource_group, rid.name)
        return Done(resource_id=inp.snapshot_id, changed=False, operation_url=accepted.operation_url)
    if outcome is not None and outcome.status.lower() == "succeeded":
        # Deleted per its operation but still listed: ask again later (a new delete is harmless).
        raise TransientAzureError(
            f"the snapshot {inp.snapshot_id} is still there although its deletion succeeded",
            step="delete the snapshot",
            resource=inp.snapshot_id,
            code="SnapshotStillExists",
        )
    return Done(resource_id=inp.snapshot_id, changed=False, operation_url=inp.operation_url)
