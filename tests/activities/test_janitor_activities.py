"""The janitor's activities on the local cloud, as the app's identity: what the scan lists (tagged only,
403 lists apart), and that cleaning revokes, deletes, and leaves a resource alone if it changed hands."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.compute import ComputeManagementClient

from activities.janitor import clean_leftover, scan_leftovers
from shared.ids import TAG_RUN_ID, capture_instance_id, new_run_id, vm_id
from shared.janitor import CleanInput, CleanResult, JanitorScope, ScanInput, ScanResult
from tests.activities.activity_cloud import Calls, poll


def _snapshot(compute: Any, name: str, disk: str, tags: dict[str, str]) -> str:
    body = {
        "location": "westeurope",
        "tags": tags,
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk}},
    }
    return str(compute.snapshots.begin_create_or_update("rg-build", name, body).result().id)


def test_scan_then_clean(cloud: Any, call: Calls) -> None:
    sub = cloud.subscription_id
    compute = cloud.arm_client(ComputeManagementClient)
    disk = next(iter(compute.disks.list_by_resource_group("rg-build"))).id
    run = new_run_id(capture_instance_id(vm_id(sub, "rg-build", "vm-gone")), datetime(2026, 1, 1, tzinfo=UTC))
    other = new_run_id(
        capture_instance_id(vm_id(sub, "rg-build", "vm-other")), datetime(2026, 1, 1, tzinfo=UTC)
    )
    mine = _snapshot(compute, f"{run}-os", disk, {TAG_RUN_ID: run})
    theirs = _snapshot(compute, f"{other}-os", disk, {TAG_RUN_ID: other})
    untagged = _snapshot(compute, "hand-made", disk, {"owner": "someone"})
    compute.snapshots.begin_grant_access(
        "rg-build", f"{run}-os", {"access": "Read", "durationInSeconds": 3600}
    ).result()

    scopes = [JanitorScope(subscription_id=sub, resource_group=rg) for rg in ("rg-build", "rg-images")]
    scan = ScanResult.from_wire(call(scan_leftovers, ScanInput(scopes=scopes).to_wire()))
    found = {lo.resource_id.lower(): lo for lo in scan.leftovers}
    assert mine.lower() in found and theirs.lower() in found and untagged.lower() not in found
    assert found[mine.lower()].active_access and found[mine.lower()].run_id == run
    assert found[mine.lower()].created is not None
    assert scan.errors == []
    # the app has snapshot and VM roles in rg-build, not gallery read: a refusal, not an error
    assert scan.not_permitted == [f"galleries in /subscriptions/{sub}/resourceGroups/rg-build"]

    # a leftover whose resource now carries another run's tag is left alone
    stale = found[theirs.lower()].model_copy(update={"run_id": run})
    skipped = CleanResult.from_wire(
        call(clean_leftover, CleanInput(leftover=stale, actions=["deleteSnapshot"]).to_wire())
    )
    assert [r.done for r in skipped.results] == [False] and "run tag changed" in skipped.results[0].detail

    cleaned = CleanResult.from_wire(
        call(
            clean_leftover,
            CleanInput(leftover=found[mine.lower()], actions=["revokeAccess", "deleteSnapshot"]).to_wire(),
        )
    )
    assert [(r.action, r.done) for r in cleaned.results] == [("revokeAccess", True), ("deleteSnapshot", True)]

    def gone() -> bool:
        try:
            compute.snapshots.get("rg-build", f"{run}-os")
        except ResourceNotFoundError:
            return True
        return False

    poll(gone, bool, timeout=30)
    assert (
        compute.snapshots.get("rg-build", f"{other}-os").id
        and compute.snapshots.get("rg-build", "hand-made").id
    )
    again = CleanResult.from_wire(
        call(clean_leftover, CleanInput(leftover=found[mine.lower()], actions=["deleteSnapshot"]).to_wire())
    )
    assert [(r.done, r.detail) for r in again.results] == [(False, "skipped: already gone")]
