"""The clone capture's pure parts: intake, the names of what it builds, the plan, preflight rules, permissions."""

from __future__ import annotations

from typing import Any

from orchestrators.capture.plan import CLONE, RELEASE, plan_for, reported_stages
from orchestrators.capture.rules import mode_problems, shown_consistency
from shared.clones import (
    CloneTarget,
    build_group_id,
    clone_disk_name,
    clone_nic_name,
    clone_vm_name,
    planned_clone,
)
from shared.contracts import DiskFacts, VmFacts
from shared.ids import VM_NAME_MAX, new_run_id, vm_name_problem
from shared.permissions import CapturePlanNeeds, plan_requirements
from shared.requests import CaptureRequest, validate_request
from shared.status import STAGES, Stage
from tests.triggers.intake_support import VM_ID, valid_request

SUB = VM_ID.split("/")[2]
GROUP = f"/subscriptions/{SUB}/resourceGroups/rg-image-build"


def _request(**overrides: Any) -> CaptureRequest:
    request, errors = validate_request(valid_request(captureMode="clone", **overrides))
    assert request is not None, errors
    return request


def _facts(*, generalized: bool = False, security: str = "TrustedLaunch") -> VmFacts:
    disk = DiskFacts(key="os", name="vm-win_OsDisk", id="/x/disks/vm-win_OsDisk", size_gb=127)
    return VmFacts.model_validate(
        {
            "id": VM_ID,
            "name": "vm-win",
            "resource_group": "rg-build",
            "subscription_id": SUB,
            "location": "westeurope",
            "os_type": "Windows",
            "hyper_v_generation": "V2",
            "security_type": security,
            "architecture": "x64",
            "power_state": "running",
            "generalized": generalized,
            "os_disk": disk,
        }
    )


def test_clone_needs_prepare_and_takes_a_consistency() -> None:
    request = _request(consistency="stopped")
    assert (request.capture_mode, request.prepare, request.effective_consistency) == (
        "clone",
        "deprovision",
        "stopped",
    )
    assert _request().effective_consistency == "crash"
    body = valid_request(captureMode="clone")
    del body["prepare"]
    _, errors = validate_request(body)
    assert [e.field for e in errors] == ["prepare"] and '"clone"' in errors[0].message


def test_the_clone_is_named_from_the_run_id_within_azure_limits() -> None:
    from datetime import UTC, datetime

    run = new_run_id("capture-" + "v" * 40 + "-0123456789", datetime(2026, 12, 1, tzinfo=UTC))
    other = new_run_id("capture-" + "v" * 40 + "-0123456789", datetime(2026, 12, 2, tzinfo=UTC))
    name = clone_vm_name(run)
    assert name == clone_vm_name(run) != clone_vm_name(other)
    # Short enough for a VM name and a Windows computer name (15 characters).
    assert len(name) <= 15 and vm_name_problem(name) is None and len(name) <= VM_NAME_MAX
    assert clone_disk_name(run, "lun63") == f"{name}-lun63" and clone_nic_name(run) == f"{name}-nic"


def test_the_build_group_setting_is_a_name_or_an_id() -> None:
    assert build_group_id("rg-image-build", VM_ID) == GROUP
    assert build_group_id(f"{GROUP}/", VM_ID) == GROUP
    other = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-x"
    assert build_group_id(other, VM_ID) == other


def test_preflight_plans_the_clone_only_from_usable_settings() -> None:
    target = CloneTarget(build_group_id=GROUP, subnet_id="/s", vm_size="Standard_D4s_v5")
    planned = planned_clone("run-1", target)
    assert planned is not None and planned.state == "planned" and planned.vm_size == "Standard_D4s_v5"
    assert planned.vm_id == f"{GROUP}/providers/Microsoft.Compute/virtualMachines/{clone_vm_name('run-1')}"
    assert planned.nic_id.endswith(f"/networkInterfaces/{clone_nic_name('run-1')}")
    assert planned_clone("run-1", target.model_copy(update={"problems": ["no subnet"]})) is None
    assert planned_clone("run-1", CloneTarget(problems=["app setting X is empty"])) is None


def test_mode_problems_of_a_clone() -> None:
    assert mode_problems(_request(), _facts()) == []
    (generalized,) = mode_problems(_request(), _facts(generalized=True))
    assert 'captureMode "inPlace"' in generalized
    (confidential,) = mode_problems(_request(), _facts(security="ConfidentialVM"))
    assert "confidential" in confidential
    assert shown_consistency(_request(), _facts()) == "crash-consistent"
    assert shown_consistency(_request(consistency="stopped"), _facts()) == "stopped"


def test_the_clone_plan_snapshots_the_source_then_works_on_the_copy() -> None:
    assert plan_for(_request()) is CLONE
    assert reported_stages(CLONE) == (
        Stage.PREFLIGHT,
        Stage.DEALLOCATE,
        Stage.SNAPSHOT,
        Stage.RESTART,
        Stage.CLONE_DISKS,
        Stage.CLONE_VM,
        Stage.PREPARE,
        Stage.CLONE_DEALLOCATE,
        Stage.GENERALIZE,
        Stage.CLONE_SNAPSHOT,
        Stage.DELETE_CLONE,
        Stage.PUBLISH,
        Stage.EXPORT,
        *(s.name for s in RELEASE),
        Stage.CLEANUP,
    )
    # Every part of the clone is undone on failure and cancel, from the first stage that makes one.
    disks = CLONE.stage(Stage.CLONE_DISKS)
    assert disks.on_cancel is not None and disks.on_failure is not None
    source = CLONE.stage(Stage.SNAPSHOT)
    assert source.on_cancel is not None and source.on_failure is not None
    # The inPlace list is unchanged by the clone's stages.
    assert not {Stage.CLONE_DISKS, Stage.CLONE_VM, Stage.DELETE_CLONE} & set(STAGES)


def test_a_clone_needs_the_build_role_in_the_build_group() -> None:
    needs = CapturePlanNeeds(
        source_vm_id=VM_ID,
        gallery_group_id=f"/subscriptions/{SUB}/resourceGroups/rg-images",
        capture_mode="clone",
        build_group_id=GROUP,
    )
    by_scope = {r.scope: r for r in plan_requirements(needs)}
    build = {a.action: a.role for a in by_scope[GROUP].required}
    for action in (
        "Microsoft.Compute/virtualMachines/write",
        "Microsoft.Compute/virtualMachines/delete",
        "Microsoft.Compute/disks/write",
        "Microsoft.Compute/disks/delete",
        "Microsoft.Network/networkInterfaces/write",
        "Microsoft.Network/virtualNetworks/subnets/join/action",
    ):
        assert build[action] == "Image Pipeline Clone Builder", action
    assert "Microsoft.Compute/snapshots/beginGetAccess/action" not in build
    exported = needs.model_copy(update={"export": True})
    access = {a.action for r in plan_requirements(exported) if r.scope == GROUP for a in r.required}
    assert "Microsoft.Compute/snapshots/beginGetAccess/action" in access
    # The source VM itself is only read.
    vm = {a.action for a in by_scope[VM_ID].required}
    assert vm == {"Microsoft.Compute/virtualMachines/read"}, vm


def test_the_clone_vm_is_attached_disks_with_the_sources_security_profile() -> None:
    from activities.clones import _vm_body
    from shared.clones import CloneVmInput

    data = [DiskFacts(key=f"lun{n}", lun=n, name=f"d{n}", id=f"/x/disks/d{n}", size_gb=8) for n in (0, 1)]
    source = _facts().model_copy(update={"data_disks": data, "vm_size": "Standard_D4s_v5"})
    ids = {k: f"{GROUP}/providers/Microsoft.Compute/disks/c-{k}" for k in ("os", "lun0", "lun1")}
    inp = CloneVmInput(
        run_id="r",
        build_group_id=GROUP,
        source=source,
        vm_size="Standard_D4s_v5",
        nic_id="/nic",
        disk_ids=ids,
        uefi_settings={"secureBootEnabled": True, "vTpmEnabled": False},
    )
    props = _vm_body(inp)["properties"]
    assert "osProfile" not in props and "imageReference" not in props["storageProfile"]
    os_disk = props["storageProfile"]["osDisk"]
    assert (os_disk["createOption"], os_disk["deleteOption"], os_disk["osType"]) == (
        "Attach",
        "Delete",
        "Windows",
    )
    assert [
        (d["lun"], d["managedDisk"]["id"], d["deleteOption"]) for d in props["storageProfile"]["dataDisks"]
    ] == [
        (0, ids["lun0"], "Delete"),
        (1, ids["lun1"], "Delete"),
    ]
    assert props["networkProfile"]["networkInterfaces"] == [
        {"id": "/nic", "properties": {"primary": True, "deleteOption": "Delete"}}
    ]
    assert props["securityProfile"] == {
        "securityType": "TrustedLaunch",
        "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": False},
    }
    standard = inp.model_copy(update={"source": source.model_copy(update={"security_type": "Standard"})})
    # Always explicit: API 2025-11-01+ would make a VM without a securityProfile Trusted Launch.
    assert _vm_body(standard)["properties"]["securityProfile"] == {"securityType": "Standard"}
