"""Captures by clone end to end (devhost + azsim + Azurite, real SDKs): a copy is generalized, the VM never.

Each test ends with the secret scan of the ``make_stack`` fixture (tests/e2e/conftest.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.ids import TAG_RUN_ID
from tests.support.stack import Stack
from tests.support.worlds import RELEASE_STAGES, WORLD

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
        (d["id"], d["blob"], d["managedBy"])
        for d in state["disks"]
        if (d["managedBy"] or "").endswith(f"/{vm}")
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
        **dict.fromkeys(RELEASE_STAGES, "skipped"),
        "cleanup": "succeeded",
    }, stages
    assert status["generalized"] is False and "irreversibleNote" not in status
    clone = status["clone"]
    assert clone["state"] == "deleted" and clone["vmId"].startswith(
        f"/subscriptions/{SUB}/resourceGroups/{BUILD_GROUP}/"
    )
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
        r
        for r in stack.sim("requests")["value"]
        if r["method"] == "PUT" and r["path"].endswith(clone["vmId"].rsplit("/", 1)[1])
    )
    assert clone_put["status"] in (200, 201), clone_put
    # The source: never written, still running, same disks and backing blobs; nothing of the clone left.
    assert _source_writes(stack, "vm-win") == []
    assert _source(stack, "vm-win") == before
    assert before["vm"] == {"powerState": "running", "generalized": False, "guestState": "normal"}
    assert _left_of(stack, status["runId"]) == []
    assert stack.log_errors() == []


def _vm_create_fault(reason: str, count: int) -> dict[str, Any]:
    return {
        "rules": [
            {
                "name": f"clone-{reason}",
                "match": {
                    "action": "Microsoft.Compute/virtualMachines/write",
                    "path": f"/resourceGroups/{BUILD_GROUP}/",
                },
                "effect": {"type": "vmCreateFailure", "reason": reason},
                "count": count,
            }
        ]
    }


def _clone_puts(stack: Stack) -> list[dict[str, Any]]:
    return [
        r
        for r in stack.sim("requests")["value"]
        if r["method"] == "PUT"
        and f"/resourceGroups/{BUILD_GROUP}/providers/Microsoft.Compute/virtualMachines/" in r["path"]
    ]


def test_a_clone_whose_create_fails_allocation_twice_is_created_again(make_stack: Any) -> None:
    stack = _start(make_stack, faults=_vm_create_fault("allocationFailed", 2))
    status = stack.run(_clone(stack, "vm-web"), timeout=240)
    assert status["runtimeStatus"] == "Completed", status.get("error")
    # Three PUTs of the same clone: two creates that ended AllocationFailed, then the one that succeeded.
    puts = _clone_puts(stack)
    assert len(puts) == 3 and len({p["path"] for p in puts}) == 1, puts
    (fault,) = stack.sim("state")["faults"]
    assert (fault["name"], fault["fired"]) == ("clone-allocationFailed", 2), fault
    assert _left_of(stack, status["runId"]) == []
    assert stack.vm_state("vm-web")["powerState"] == "running"


@pytest.mark.parametrize(
    ("reason", "code", "said"),
    [
        ("skuNotAvailable", "SkuNotAvailable", "The requested size for resource"),
        ("quotaExceeded", "OperationNotAllowed", "exceeding approved Total Regional Cores quota"),
    ],
)
def test_a_clone_size_that_is_not_available_fails_terminally_and_leaves_nothing(
    make_stack: Any, reason: str, code: str, said: str
) -> None:
    stack = _start(make_stack, faults=_vm_create_fault(reason, 5))
    before = _source(stack, "vm-web")
    status = stack.run(_clone(stack, "vm-web"), timeout=240)
    assert status["runtimeStatus"] == "Failed", status
    err = status["error"]
    assert (err["code"], err["azureCode"], err["kind"]) == (code, code, "terminal"), err
    assert said in err["message"] and "Standard_D2s_v5" in err["message"]
    assert "CAPTURE_CLONE_VM_SIZE" in err["advice"]
    assert len(_clone_puts(stack)) == 1  # terminal: not tried again
    stages = {s["name"]: s["state"] for s in status["stages"]}
    assert stages["cloneVm"] == "failed" and stages["prepare"] == "pending", stages
    assert status["clone"]["state"] == "deleted", status["clone"]
    assert _left_of(stack, status["runId"]) == []
    assert _source(stack, "vm-web") == before and _source_writes(stack, "vm-web") == []


def test_cancel_during_the_clones_guest_step_deletes_the_clone(make_stack: Any) -> None:
    # Sysprep takes ~90 s (real) here: the cancel comes while the clone's guest step runs.
    stack = _start(make_stack, latency={"sysprep_shutdown_s": 30000})
    before = _source(stack, "vm-win")
    code, answer, _ = stack.post(_clone(stack, "vm-win"))
    assert code == 202, answer
    preparing = stack.wait(
        answer["id"],
        until=lambda st: any(s["name"] == "prepare" and s["state"] == "running" for s in st["stages"]),
        timeout=120,
    )
    assert preparing["runtimeStatus"] == "Running", preparing
    clone_vm = preparing["clone"]["vmId"]
    assert any(v["id"] == clone_vm for v in stack.sim("state")["virtualMachines"])
    code, body = stack.cancel(answer["id"], {"reason": "clone test"})
    assert code == 202, body
    status = stack.wait(answer["id"], timeout=120)
    assert status["runtimeStatus"] == "Canceled", status
    assert status["clone"]["state"] == "deleted", status["clone"]
    assert any("clone ipc-" in c and "deleted" in c for c in status["cleaned"]), status["cleaned"]
    assert "irreversibleNote" not in status and status["generalized"] is False
    assert _left_of(stack, status["runId"]) == []
    assert _source(stack, "vm-win") == before and _source_writes(stack, "vm-win") == []


def test_a_missing_build_group_role_is_found_by_preflight_before_anything_is_made(
    make_stack: Any, tmp_path: Any
) -> None:
    world = json.loads(WORLD.read_text())
    world["roleAssignments"] = [
        ra
        for ra in world["roleAssignments"]
        if not (
            ra["principal"] == "id-image-pipeline" and ra["scope"].endswith(f"/resourceGroups/{BUILD_GROUP}")
        )
    ]
    path = tmp_path / "world.json"
    path.write_text(json.dumps(world))
    stack = _start(make_stack, world=path)
    status = stack.run(_clone(stack, "vm-web"))
    assert status["runtimeStatus"] == "Failed", status
    err = status["error"]
    assert (err["step"], err["code"]) == ("preflight", "MissingPermissions"), err
    assert f"/resourceGroups/{BUILD_GROUP}" in err["message"]
    assert "Microsoft.Compute/virtualMachines/write" in err["message"]
    assert 'role "Image Pipeline Clone Builder"' in err["message"]
    writes = [r for r in stack.sim("requests")["value"] if r["method"] in WRITES]
    assert writes == [], writes
    assert stack.vm_state("vm-web")["powerState"] == "running"


def test_a_clone_request_without_the_clone_settings_names_them(make_stack: Any) -> None:
    stack = make_stack()
    status = stack.run(_clone(stack, "vm-web"))
    assert status["runtimeStatus"] == "Failed", status
    err = status["error"]
    assert (err["step"], err["code"]) == ("preflight", "PreflightFailed"), err
    assert "CAPTURE_BUILD_RESOURCE_GROUP" in err["message"] and "CAPTURE_BUILD_SUBNET_ID" in err["message"]
    assert [r for r in stack.sim("requests")["value"] if r["method"] in WRITES] == []
