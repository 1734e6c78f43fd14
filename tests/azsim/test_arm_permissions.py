"""``GET {scope}/providers/Microsoft.Authorization/permissions`` through the real ARM pipeline client.

The example world gives the app's identity built-in roles on its groups and on the export account; an
extra principal holds a custom wildcard role with a notAction. The lists are data: azsim returns the
roles' patterns as written and leaves the matching to the caller.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.rest import HttpRequest

from azsim.roles import BUILTIN_ROLES
from azsim.world import parse_world
from tests.azsim.arm_fakes import PIPELINE_OID, READER_OID, SUB, WORLD_FILE, SimHandle, running_sim

API = {"api-version": "2022-04-01"}
SUB_ID = f"/subscriptions/{SUB}"
RG_BUILD = f"{SUB_ID}/resourceGroups/rg-build"
VM = f"{RG_BUILD}/providers/Microsoft.Compute/virtualMachines/vm-web"
ACCOUNT = f"{SUB_ID}/resourceGroups/rg-storage/providers/Microsoft.Storage/storageAccounts/stexports"
WILD_OID = "6b0b8f0e-3f5c-4a57-9a47-3d1f0f1b2c01"
NOBODY_OID = "7c0b8f0e-3f5c-4a57-9a47-3d1f0f1b2c03"  # holds no role anywhere
WILD_ROLE = {
    "name": "Compute but not generalize",
    "actions": ["Microsoft.Compute/*"],
    "notActions": ["Microsoft.Compute/virtualMachines/generalize/action"],
}


def _role(name: str) -> dict[str, list[str]]:
    role = next(r for r in BUILTIN_ROLES if r.name == name)
    return {
        "actions": list(role.actions),
        "notActions": list(role.not_actions),
        "dataActions": list(role.data_actions),
        "notDataActions": list(role.not_data_actions),
    }


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    world = json.loads(Path(WORLD_FILE).read_text(encoding="utf-8"))
    world["principals"].append(
        {"objectId": WILD_OID, "displayName": "wildcard", "clientId": "6b0b8f0e-3f5c-4a57-9a47-3d1f0f1b2c02"}
    )
    world["customRoles"] = [*world.get("customRoles", []), WILD_ROLE]
    world["roleAssignments"].append(
        {"principal": "wildcard", "roleDefinitionName": WILD_ROLE["name"], "scope": RG_BUILD}
    )
    with running_sim(tmp_path_factory.mktemp("perm-certs"), world=parse_world(world)) as handle:
        yield handle


def _permissions(sim: SimHandle, scope: str, oid: str = PIPELINE_OID) -> Any:
    client = sim.compute(oid)  # an ARMPipelineClient with the caller's token, as the app sends it
    response = client.send_request(
        HttpRequest("GET", f"{sim.url}{scope}/providers/Microsoft.Authorization/permissions", params=API)
    )
    return response.status_code, response.json()


def test_subscription_scope_lists_only_assignments_at_or_above_it(sim: SimHandle) -> None:
    status, body = _permissions(sim, SUB_ID)
    assert (status, body) == (200, {"value": []})  # every role of the app is on a group or an account
    status, body = _permissions(sim, SUB_ID, READER_OID)
    assert (status, body) == (200, {"value": [_role("Reader")]})


def test_group_scope_lists_each_role_assignment_as_written(sim: SimHandle) -> None:
    status, body = _permissions(sim, RG_BUILD)
    assert status == 200
    assert body["value"] == [_role("Virtual Machine Contributor"), _role("Disk Snapshot Contributor")]
    # Wildcards stay patterns: the caller matches them.
    assert "Microsoft.Compute/virtualMachines/*" in body["value"][0]["actions"]


def test_resource_scope_includes_the_groups_assignments(sim: SimHandle) -> None:
    assert _permissions(sim, VM)[1]["value"] == _permissions(sim, RG_BUILD)[1]["value"]
    status, body = _permissions(sim, ACCOUNT)
    assert status == 200
    assert body["value"] == [_role("Storage Blob Data Contributor")]
    assert (
        "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
        in body["value"][0]["dataActions"]
    )
    # A nested resource (a container of the account) sees the account's assignment too.
    nested = f"{ACCOUNT}/blobServices/default/containers/vhds"
    assert _permissions(sim, nested)[1]["value"] == body["value"]


def test_not_actions_are_returned_not_applied(sim: SimHandle) -> None:
    status, body = _permissions(sim, VM, WILD_OID)
    assert status == 200
    assert body["value"] == [
        {
            "actions": ["Microsoft.Compute/*"],
            "notActions": ["Microsoft.Compute/virtualMachines/generalize/action"],
            "dataActions": [],
            "notDataActions": [],
        }
    ]
    # ... and they agree with what azsim enforces: the same principal may not generalize.
    assert not sim.sim.authorizer.is_allowed(
        WILD_OID, "Microsoft.Compute/virtualMachines/generalize/action", VM, record_denial=False
    )


def test_no_role_needed_and_missing_group_is_not_found(sim: SimHandle) -> None:
    # The reader's only role is at the subscription; elsewhere a caller with nothing gets an empty list.
    status, body = _permissions(sim, RG_BUILD, NOBODY_OID)
    assert (status, body) == (200, {"value": []})
    status, body = _permissions(sim, f"{SUB_ID}/resourceGroups/rg-nope")
    assert status == 404 and body["error"]["code"] == "ResourceGroupNotFound"
    report = sim.sim.authorizer.log.report(PIPELINE_OID)
    assert not any("permissions" in r["action"].lower() for r in report["value"])  # nothing was authorised
