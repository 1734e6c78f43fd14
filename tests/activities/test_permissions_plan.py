"""shared.permissions without a cloud: a plan's actions per scope from shared/app-actions.json, the role
named for each, and ARM's matching rules (case, ``*``, notActions per role, data actions apart)."""

from __future__ import annotations

from pathlib import Path

import pytest

from azsim.roles import BUILTIN_ROLES
from shared.errors import CaptureError, parse_failure
from shared.permissions import (
    JANITOR_FEATURES,
    MissingAtScope,
    RequiredAction,
    ScopeRequirement,
    capture_features,
    capture_requirements,
    capture_scopes,
    granted,
    load_app_actions,
    matches,
    missing,
    missing_permissions_error,
    requirements,
)
from shared.requests import CaptureRequest

SUB = "/subscriptions/00000000-0000-0000-0000-000000000001"
RG = f"{SUB}/resourceGroups/rg-src"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-1"
GAL_RG = f"{SUB}/resourceGroups/rg-gal"
ACCOUNT = f"{SUB}/resourceGroups/rg-st/providers/Microsoft.Storage/storageAccounts/st1"
MC = "Microsoft.Compute"
BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"


def _by_scope(reqs: list[ScopeRequirement]) -> dict[str, set[tuple[str, bool]]]:
    return {r.scope: {(a.action, a.data_action) for a in r.required} for r in reqs}


def test_in_place_capture_without_export() -> None:
    got = _by_scope(requirements(capture_features("inPlace"), capture_scopes(VM, GAL_RG, ACCOUNT)))
    assert got == {
        # VM actions are checked on the VM, so a role assigned on the VM alone counts.
        VM: {
            (f"{MC}/virtualMachines/read", False),
            (f"{MC}/virtualMachines/instanceView/read", False),
            (f"{MC}/virtualMachines/generalize/action", False),
        },
        RG: {
            (f"{MC}/disks/read", False),
            (f"{MC}/snapshots/read", False),
            (f"{MC}/snapshots/write", False),
            (f"{MC}/snapshots/delete", False),
        },
        GAL_RG: {
            (f"{MC}/galleries/read", False),
            (f"{MC}/galleries/images/read", False),
            (f"{MC}/galleries/images/versions/read", False),
            (f"{MC}/galleries/images/versions/write", False),
            (f"{MC}/galleries/images/versions/delete", False),  # compensation after a failure
        },
    }


def test_export_adds_snapshot_access_and_the_accounts_data_actions() -> None:
    plain = _by_scope(requirements(capture_features("inPlace"), capture_scopes(VM, GAL_RG, ACCOUNT)))
    export = _by_scope(
        requirements(capture_features("inPlace", export=True), capture_scopes(VM, GAL_RG, ACCOUNT))
    )
    assert export[RG] - plain[RG] == {
        (f"{MC}/snapshots/beginGetAccess/action", False),
        (f"{MC}/snapshots/endGetAccess/action", False),
    }
    assert export[ACCOUNT] == {
        ("Microsoft.Storage/storageAccounts/blobServices/containers/read", False),
        ("Microsoft.Storage/storageAccounts/blobServices/containers/write", False),
        (f"{BLOBS}/read", True),
        (f"{BLOBS}/write", True),
        (f"{BLOBS}/delete", True),
    }
    # Without the account's ARM id the export's account actions are left to the export probe.
    assert ACCOUNT not in _by_scope(
        requirements(capture_features("inPlace", export=True), capture_scopes(VM, GAL_RG))
    )


def test_running_vm_and_create_if_missing() -> None:
    features = capture_features("inPlace", prepare_running_vm=True, create_if_missing=True)
    got = _by_scope(requirements(features, capture_scopes(VM, GAL_RG)))
    assert {
        (f"{MC}/virtualMachines/runCommand/action", False),
        (f"{MC}/virtualMachines/deallocate/action", False),
    } <= got[VM]
    assert {(f"{MC}/galleries/write", False), (f"{MC}/galleries/images/write", False)} <= got[GAL_RG]


def test_janitor() -> None:
    build = f"{SUB}/resourceGroups/rg-image-build"
    scopes = {"sourceGroups": RG, "buildGroup": build, "galleries": GAL_RG}
    got = _by_scope(requirements(JANITOR_FEATURES, scopes))
    assert got == {
        RG: {
            (f"{MC}/snapshots/read", False),
            (f"{MC}/snapshots/endGetAccess/action", False),
            (f"{MC}/snapshots/delete", False),
            (f"{MC}/virtualMachines/read", False),  # the subscription-wide lists read the source VMs
            (f"{MC}/disks/read", False),
        },
        build: {  # the clones' and boot tests' VMs, NICs and disks
            (f"{MC}/virtualMachines/read", False),
            (f"{MC}/virtualMachines/delete", False),
            ("Microsoft.Network/networkInterfaces/read", False),
            ("Microsoft.Network/networkInterfaces/delete", False),
            (f"{MC}/disks/read", False),
            (f"{MC}/disks/delete", False),
        },
        GAL_RG: {
            (f"{MC}/galleries/read", False),
            (f"{MC}/galleries/images/read", False),
            (f"{MC}/galleries/images/versions/read", False),
            (f"{MC}/galleries/images/versions/delete", False),
        },
    }


def test_unknown_feature_is_refused() -> None:
    with pytest.raises(ValueError, match=r"capture\.sideways"):
        requirements(["capture.sideways"], {"sourceGroups": RG})


def _builtin(name: str) -> dict[str, list[str]]:
    role = next(r for r in BUILTIN_ROLES if r.name == name)
    return {
        "actions": list(role.actions),
        "notActions": list(role.not_actions),
        "dataActions": list(role.data_actions),
        "notDataActions": list(role.not_data_actions),
    }


def test_every_action_names_the_custom_role_and_a_builtin_that_grant_it() -> None:
    doc = load_app_actions()
    roles = {r["name"]: r for r in doc["roles"]}
    scopes = {"sourceGroups": RG, "galleries": GAL_RG, "exportAccounts": ACCOUNT}
    reqs = requirements(list(doc["features"]), scopes)
    assert sum(len(r.required) for r in reqs) >= 20
    for req in reqs:
        for a in req.required:
            assert a.role is not None, a.action
            custom = roles[a.role]
            assert custom["scope"] == req.kind
            assert granted([custom], a.action, data_action=a.data_action)
            assert a.builtin_role is not None, a.action
            assert granted([_builtin(a.builtin_role)], a.action, data_action=a.data_action), (
                a,
                a.builtin_role,
            )


def test_arm_matching_rules() -> None:
    assert matches("Microsoft.Compute/*", "microsoft.compute/virtualMachines/generalize/action")
    assert matches("*/read", "Microsoft.Compute/disks/read")
    assert not matches("*/read", "Microsoft.Compute/disks/write")
    assert matches(
        "Microsoft.Compute/virtualMachines/*/action", "Microsoft.Compute/virtualMachines/start/action"
    )
    assert not matches("Microsoft.Compute/disks/read", "Microsoft.Compute/disks/read/extra")
    # Only "*" is special (a glob class would let "disks[0]" match "disks0").
    assert matches("Microsoft.Compute/disks[0]", "Microsoft.Compute/disks[0]")
    assert not matches("Microsoft.Compute/disks[0]", "Microsoft.Compute/disks0")
    wild = {
        "actions": ["Microsoft.Compute/*"],
        "notActions": ["microsoft.compute/virtualmachines/GENERALIZE/action"],
    }
    generalize = f"{MC}/virtualMachines/generalize/action"
    assert not granted([wild], generalize)
    assert granted([wild], f"{MC}/virtualMachines/deallocate/action")
    # A notAction is not a deny: another role assignment at the scope still grants the action.
    assert granted([wild, _builtin("Virtual Machine Contributor")], generalize)
    # Actions never grant data actions, and data actions are matched on their own lists.
    owner = _builtin("Owner")
    assert granted([owner], "Microsoft.Storage/storageAccounts/blobServices/containers/write")
    assert not granted([owner], f"{BLOBS}/read", data_action=True)
    reader = {"dataActions": [f"{BLOBS}/*"], "notDataActions": [f"{BLOBS}/delete"]}
    assert granted([reader], f"{BLOBS}/write", data_action=True)
    assert not granted([reader], f"{BLOBS}/delete", data_action=True)
    assert not granted([reader], f"{BLOBS}/write")  # not as an action


def test_missing_and_the_advice_error() -> None:
    req = ScopeRequirement(
        scope=VM,
        kind="sourceGroups",
        required=[
            RequiredAction(action=f"{MC}/virtualMachines/read", role="R1"),
            RequiredAction(action=f"{MC}/virtualMachines/generalize/action", role="R1", builtin_role="B1"),
        ],
    )
    assert missing(req, [_builtin("Virtual Machine Contributor")]) is None
    lacking = missing(req, [_builtin("Reader")])
    assert lacking is not None and [a.action for a in lacking.missing] == [
        f"{MC}/virtualMachines/generalize/action"
    ]
    data = MissingAtScope(
        scope=ACCOUNT,
        kind="exportAccounts",
        missing=[RequiredAction(action=f"{BLOBS}/write", data_action=True, role="R2")],
    )
    info = missing_permissions_error([lacking, data], resource=VM)
    assert info.message == (
        "The Function App's identity lacks 2 permission(s) this run needs: "
        f'on {VM}: {MC}/virtualMachines/generalize/action (role "R1", or built-in "B1"); '
        f'on {ACCOUNT}: data action {BLOBS}/write (role "R2")'
    )
    # It travels through the failure envelope like every other error of the catalog.
    err = CaptureError(
        info.message, step=info.step, code=info.code, resource=info.resource, advice=info.advice
    )
    parsed = parse_failure(str(err))
    assert parsed is not None and (parsed.code, parsed.step) == ("MissingPermissions", "preflight")


def test_a_capture_request_plan() -> None:
    request = CaptureRequest.from_wire(
        {
            "sourceVmId": VM,
            "gallery": {"resourceGroup": "rg-gal", "name": "gal1"},
            "imageDefinition": {"name": "def1", "publisher": "p", "offer": "o", "sku": "s"},
            "prepare": "deprovision",
            "captureMode": "inPlace",
            "vhdExport": {"accountUrl": "https://st1.blob.core.windows.net", "container": "vhds"},
        }
    )
    stopped = _by_scope(capture_requirements(request, vm_running=False, creates=False))
    assert set(stopped) == {VM, RG, GAL_RG}  # no account id: the export probe checks the account
    assert (f"{MC}/snapshots/beginGetAccess/action", False) in stopped[RG]
    assert (f"{MC}/virtualMachines/deallocate/action", False) not in stopped[VM]
    running = _by_scope(
        capture_requirements(request, vm_running=True, creates=True, export_account_id=ACCOUNT)
    )
    assert (f"{MC}/virtualMachines/deallocate/action", False) in running[VM]
    assert (f"{MC}/galleries/write", False) in running[GAL_RG]
    assert (f"{BLOBS}/write", True) in running[ACCOUNT]


def test_a_missing_actions_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="list of the app's Azure actions is missing"):
        load_app_actions(tmp_path / "app-actions.json")
