"""Captures by clone end to end (devhost + azsim + Azurite, real SDKs): a copy is generalized, the VM never.

Each test ends with the secret scan of the ``make_stack`` fixture (tests/e2e/conftest.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.ids import TAG_RUN_ID
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

SUB = "89d0a3c1-7028-549c-b21b-dc72b5b9bb42"  # examples/world.json
BUILD_GROUP = "rg-image-build"
SUBNET = (
    f"/subscriptions/{SUB}/resourceGroups/{BUILD_GROUP}/providers/Microsoft.Network/virtualNetworks/vnet-build"
    "/subnets/snet-clones"
)
CLONE_ENV = {"CAPTURE_BUILD_RESOURCE_GROUP": BUILD_GROUP, "CAPTURE_BUILD_SUBNET_ID": SUBNET}
REGIONS = [{"name": "westeurope"}, {"name": "eastus2"}]
# 511 GiB of disks for vm-win: replicate fast so the tests stay short.
FAST = {"replication_mb_per_s": 4000}
WRITES = ("PUT", "POST", "PATCH", "DELETE")


def _clone(stack: Stack, vm: str, **overrides: Any) -> dict[str, Any]:
    return stack.request(vm, export=False, targetRegions=REGIONS, captureMode="clone", **overrides)


def _start(make_stack: Any, **options: Any) -> Stack:
    env = {**CLONE_ENV, **options.pop("env", {})}
    return make_stack(latency={**FAST, **options.pop("latency", {})}, env=env, **options)


def _source(stack: Stack, vm: str) -> dict[str, Any]:
    """What must not change on the source: its power state, generalization, guest, disk ids and backing blobs."""
    state = stack.sim("state")
    me = next(v for v in state["virtualMachines"] if v["id"].endswith(f"/{vm}"))
    disks = sorted(
        (d["id"], d["blob"], d["managedBy"]) for d in state["disks"] if (d["managedBy"] or "").endswith(f"/{vm}")
    )
    return {"vm": {k: me[k] for k in ("powerState", "generalized", "guestState")}, "disks": disks}


def _source_writes(stack: Stack, vm: str, since: int = 0) -> list[str]:
    """ARM writes on the source VM or its disks (snapshots of them are made in its group: those are allowed)."""
    return [
        f"{r['method']} {r['path']}"
        for r in stack.sim("requests")["value"][since:]
        if r["method"] in WRITES and (f"/virtualMachines/{vm}" in r["path"] or f"/disks/{vm}_" in r["path"])
    ]


def _left_of(stack: Stack, run_id: str) -> list[str]:
    """Every VM, NIC, disk or snapshot of the run still in azsim (by tag and by the clone's names)."""
    compute, left = stack.compute(), []
    for group in ("rg-build", BUILD_GROUP):
        for kind in (compute.virtual_machines, compute.disks, compute.snapshots):
            lister = kind.list if kind is compute.virtual_machines else kind.list_by_resource_group
            left += [r.id for r in lister(group) if (r.tags or {}).get(TAG_RUN_ID) == run_id]
    state = stack.sim("state")
    left += [n["id"] for n in state["networkInterfaces"] if f"/resourceGroups/{BUILD_GROUP}/" in n["id"]]
    left += [v["id"] for v in state["virtualMachines"] if f"/resourceGroups/{BUILD_GROUP}/" in v["id"]]
    return sorted(set(left))


def test_clone_capture_of_a_trusted_launch_windows_vm_leaves_the_vm_as_it_was(make_stack: Any) -> None:
    stack = _start(make_stack)
    before = _source(stack, "vm-win")
    status = stack.run(_clone(stack, "vm-win"), timeout=240)
    assert status["runtimeStatus"] == "Completed", status.get("error")
    assert (status["captureMode"], status["consistency"], status["sourceState"]) == (
        "clone",
        "crash-consistent",
        "untouched",
    )
    stages = {s["name"]: s["state"] for s in status["stages"]}
    assert stages == {
        "preflight": "succeeded",
        "deallocate": "skipped",
        "snapshot": "succeeded",
        "restart": "skipped",
        "cloneDisks": "succeeded",
        "cloneVm": "succeeded",
        "prepare": "succeeded",
        "cloneDeallocate": "succeeded",
        "generalize": "succeeded",
        "cloneSnapshot": "succeeded",
        "deleteClone": "succeeded",
        "publish": "succeeded",
        "export": "skipped",
        "cleanup": "succeeded",
    }, stages
    assert status["generalized"] is False and "irreversibleNote" not in status
    clone = status["clone"]
    assert clone["state"] == "deleted" and clone["vmId"].startswith(f"/subscriptions/{SUB}/resourceGroups/{BUILD_GROUP}/")
    assert len(clone["diskIds"]) == 3 and clone["sourceSnapshotsDeleted"] is True
    # The image: generalized, both data disks at their LUNs, in every target region.
    compute = stack.compute()
    version = compute.gallery_image_versions.get(
        "rg-images", "galContoso", "vm-win-def", "1.0.0", expand="ReplicationStatus"
    )
    regions = {s.region.replace(" ", "").lower(): s.state for s in version.replication_status.summary or []}
    assert regions == {"westeurope": "Completed", "eastus2": "Completed"}, regions
    luns = sorted(d.lun for d in version.storage_profile.data_disk_images or [])
    assert luns == [0, 1]
    definition = compute.gallery_images.get("rg-images", "galContoso", "vm-win-def")
    assert str(getattr(definition.os_state, "value", definition.os_state)) == "Generalized"
    # The clone was Trusted Launch like its source (azsim refuses a VM whose type differs from its OS disk's).
    clone_put = next(
        r for r in stack.sim("requests")["value"] if r["method"] == "PUT" and r["path"].endswith(clone["vmId"].rsplit("/", 1)[1])
    )
    assert clone_put["status"] in (200, 201), clone_put
    # The source: never written, still running, same disks and backing blobs; nothing of the clone left.
    assert _source_writes(stack, "vm-win") == []
    assert _source(stack, "vm-win") == before
    assert before["vm"] == {"powerState": "running", "generalized": False, "guestState": "normal"}
    assert _left_of(stack, status["runId"]) == []
