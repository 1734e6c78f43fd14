"""azsim's record of RBAC decisions (``/_sim/authorizations``) and the Azure action name of every ARM route.

The simulator runs transport-free here (``ArmSimulator.handle``), with the example world.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from azsim.arm import urls
from azsim.arm.server import ArmSimulator
from azsim.core.rbac import Authorizer
from azsim.core.requestlog import AuthorizationLog
from azsim.identity import STORAGE_AUDIENCE
from azsim.storage.rbac import BLOBS_READ, BLOBS_WRITE, BlobDataAuthorizer
from azsim.world import WorldError, load_world, parse_world
from tests.azsim.arm_fakes import (
    PIPELINE_OID,
    READER_OID,
    SUB,
    WORLD_FILE,
    FakeVerifier,
    MemoryDiskStore,
    make_token,
)

RG = f"/subscriptions/{SUB}/resourceGroups/rg-build"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-web"
API = "?api-version=2024-07-01"

# Operation names of Microsoft.Compute, Microsoft.Network, Microsoft.Resources, Microsoft.Authorization and Microsoft.Storage as
# Azure lists them ("Azure resource provider operations" on Microsoft Learn), for every route azsim serves.
AZURE_OPERATIONS = {
    "Microsoft.Authorization/roleAssignments/read",
    "Microsoft.Authorization/roleAssignments/write",
    "Microsoft.Authorization/roleAssignments/delete",
    "Microsoft.Compute/locations/operations/read",
    "Microsoft.Compute/locations/DiskOperations/read",
    "Microsoft.Compute/locations/capsOperations/read",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Resources/subscriptions/resourceGroups/write",
    "Microsoft.Resources/subscriptions/locations/read",
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Compute/virtualMachines/write",
    "Microsoft.Compute/virtualMachines/delete",
    "Microsoft.Compute/virtualMachines/instanceView/read",
    "Microsoft.Compute/virtualMachines/deallocate/action",
    "Microsoft.Compute/virtualMachines/powerOff/action",
    "Microsoft.Compute/virtualMachines/start/action",
    "Microsoft.Compute/virtualMachines/restart/action",
    "Microsoft.Compute/virtualMachines/generalize/action",
    "Microsoft.Compute/virtualMachines/runCommand/action",
    "Microsoft.Compute/disks/read",
    "Microsoft.Compute/disks/write",
    "Microsoft.Compute/disks/delete",
    "Microsoft.Compute/disks/beginGetAccess/action",
    "Microsoft.Compute/disks/endGetAccess/action",
    "Microsoft.Compute/snapshots/read",
    "Microsoft.Compute/snapshots/write",
    "Microsoft.Compute/snapshots/delete",
    "Microsoft.Compute/snapshots/beginGetAccess/action",
    "Microsoft.Compute/snapshots/endGetAccess/action",
    "Microsoft.Compute/images/read",
    "Microsoft.Compute/images/write",
    "Microsoft.Compute/images/delete",
    "Microsoft.Compute/galleries/read",
    "Microsoft.Compute/galleries/write",
    "Microsoft.Compute/galleries/delete",
    "Microsoft.Compute/galleries/images/read",
    "Microsoft.Compute/galleries/images/write",
    "Microsoft.Compute/galleries/images/delete",
    "Microsoft.Compute/galleries/images/versions/read",
    "Microsoft.Compute/galleries/images/versions/write",
    "Microsoft.Compute/galleries/images/versions/delete",
    "Microsoft.Network/virtualNetworks/read",
    "Microsoft.Network/virtualNetworks/subnets/read",
    "Microsoft.Network/virtualNetworks/subnets/join/action",
    "Microsoft.Network/networkInterfaces/read",
    "Microsoft.Network/networkInterfaces/write",
    "Microsoft.Network/networkInterfaces/delete",
    "Microsoft.Network/networkInterfaces/join/action",
    "Microsoft.Authorization/permissions/read",
    # Microsoft.Storage: "Returns the list of storage accounts or gets the properties for the specified
    # storage account" (a VHD source's region).
    "Microsoft.Storage/storageAccounts/read",
}


def _sim() -> ArmSimulator:
    return ArmSimulator(
        load_world(WORLD_FILE), MemoryDiskStore(), FakeVerifier(), time_scale=0, throttle=False
    )


def _call(sim: ArmSimulator, method: str, path: str, oid: str = PIPELINE_OID, body: Any = None) -> int:
    raw = json.dumps(body).encode() if body is not None else b""
    return sim.handle(method, path + API, {"Authorization": f"Bearer {make_token(oid)}"}, raw).status


def _report(sim: ArmSimulator, oid: str | None = None) -> dict[str, Any]:
    target = "/_sim/authorizations" + (f"?principal={oid}" if oid else "")
    result = sim.handle("GET", target, {}, b"")
    assert result.status == 200
    return dict(json.loads(result.body))


def test_every_route_names_an_azure_operation() -> None:
    unknown = sorted({r.action for r in urls.ROUTES} - AZURE_OPERATIONS)
    assert not unknown, f"azsim routes with an action Azure does not list: {unknown}"


def test_each_operation_family_is_polled_under_its_own_action() -> None:
    base = f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westeurope"
    for family in ("operations", "DiskOperations", "capsOperations"):
        found = urls.match("GET", f"{base}/{family}/some-op-id")
        assert found is not None, family
        route, params = found
        assert route.action == f"Microsoft.Compute/locations/{family}/read"
        assert params["family"] == family and route.handler == "get_operation"


def test_authorizations_record_grants_refusals_and_counts_per_principal() -> None:
    sim = _sim()
    assert _call(sim, "GET", VM) == 200
    assert _call(sim, "GET", VM) == 200
    assert _call(sim, "POST", f"{VM}/deallocate", oid=READER_OID) == 403

    mine = _report(sim, PIPELINE_OID)
    assert mine["actions"] == ["Microsoft.Compute/virtualMachines/read"]
    assert mine["deniedActions"] == [] and mine["dataActions"] == []
    (row,) = mine["value"]
    assert row["scope"] == VM and row["allowed"] is True and row["count"] == 2 and row["dataAction"] is False

    reader = _report(sim, READER_OID.upper())  # object ids compare case-insensitively
    assert reader["actions"] == []
    assert reader["deniedActions"] == ["Microsoft.Compute/virtualMachines/deallocate/action"]
    assert {r["principal"] for r in _report(sim)["value"]} == {PIPELINE_OID, READER_OID}

    assert sim.handle("POST", "/_sim/reset", {}, b"").status == 200
    assert _report(sim)["value"] == []


def test_locations_read_without_a_role_is_implicit_not_a_grant_of_the_role() -> None:
    sim = _sim()
    assert _call(sim, "GET", f"/subscriptions/{SUB}/locations") == 200
    report = _report(sim, PIPELINE_OID)
    assert report["actions"] == []
    assert report["implicitActions"] == ["Microsoft.Resources/subscriptions/locations/read"]


def test_a_filtered_list_records_what_it_let_through_not_what_it_left_out() -> None:
    log = AuthorizationLog()
    authorizer = Authorizer(load_world(WORLD_FILE), log)
    outside = f"/subscriptions/{SUB}/resourceGroups/rg-storage/providers/Microsoft.Compute/snapshots/s1"
    inside = f"{RG}/providers/Microsoft.Compute/snapshots/s2"
    read = "Microsoft.Compute/snapshots/read"
    assert not authorizer.is_allowed(PIPELINE_OID, read, outside, record_denial=False)
    assert authorizer.is_allowed(PIPELINE_OID, read, inside, record_denial=False)
    report = log.report(PIPELINE_OID)
    assert [(r["action"], r["scope"]) for r in report["value"]] == [(read, inside)]
    assert report["deniedActions"] == []


def test_blob_data_decisions_go_to_the_shared_log() -> None:
    world = load_world(WORLD_FILE)
    log = AuthorizationLog()
    blobs = BlobDataAuthorizer.for_world(world, FakeVerifier(), log)
    bearer = f"Bearer {make_token(PIPELINE_OID, aud=STORAGE_AUDIENCE)}"
    assert blobs.check("PUT", "stexports", "vhds", "a.vhd", {}, bearer) is None
    denial = blobs.check(
        "GET", "stexports", "vhds", "a.vhd", {}, f"Bearer {make_token(READER_OID, aud=STORAGE_AUDIENCE)}"
    )
    assert denial is not None
    mine, reader = log.report(PIPELINE_OID), log.report(READER_OID)
    assert mine["dataActions"] == [BLOBS_WRITE] and mine["actions"] == []
    assert mine["value"][0]["scope"].endswith(
        "/storageAccounts/stexports/blobServices/default/containers/vhds"
    )
    assert reader["deniedDataActions"] == [BLOBS_READ]


def _with_role(scope: str) -> dict[str, Any]:
    world = json.loads(WORLD_FILE.read_text())
    world["roleDefinitions"] = [
        {
            "name": "11111111-2222-3333-4444-555555555555",
            "id": "/subscriptions/x/providers/Microsoft.Authorization/roleDefinitions/1111",
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": {
                "roleName": "Snapshot Remover",
                "type": "CustomRole",
                "createdOn": "2026-01-01T00:00:00Z",
                "permissions": [{"actions": ["Microsoft.Compute/snapshots/delete"], "notActions": []}],
                "assignableScopes": [f"/subscriptions/{SUB}/resourceGroups/rg-build"],
            },
        }
    ]
    world["roleAssignments"].append(
        {
            "principal": "reader-only",
            "roleDefinitionId": "11111111-2222-3333-4444-555555555555",
            "scope": scope,
        }
    )
    return dict(world)


def test_a_custom_role_in_azure_role_definition_json_is_enforced() -> None:
    world = parse_world(_with_role(f"{RG}/providers/Microsoft.Compute/snapshots/s1"))
    role = world.role_definitions()["snapshot remover"]
    assert role.id == "11111111-2222-3333-4444-555555555555"
    assert role.actions == ("Microsoft.Compute/snapshots/delete",)
    authorizer = Authorizer(world)
    delete, snaps = "Microsoft.Compute/snapshots/delete", f"{RG}/providers/Microsoft.Compute/snapshots"
    assert authorizer.is_allowed(READER_OID, delete, f"{snaps}/s1")  # Reader alone may not delete
    assert not authorizer.is_allowed(READER_OID, delete, f"{snaps}/s2")  # assigned on s1 only


def test_a_custom_role_cannot_be_assigned_outside_its_assignable_scopes() -> None:
    with pytest.raises(WorldError, match="assignable only within"):
        parse_world(_with_role(f"/subscriptions/{SUB}/resourceGroups/rg-images"))
