"""Role assignments through ARM, sent with azure-mgmt-core's ARMPipelineClient (the pipeline every
azure-mgmt client is built on): the caller needs roleAssignments/write; the name is a GUID; the same PUT
again is a no-op while the same principal, role and scope under another name is RoleAssignmentExists; a
principal the directory has not replicated yet is PrincipalNotFound until its delay has passed on the
simulated clock; and an assignment takes effect in azsim's RBAC at once (and ends with its DELETE)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest, HttpResponse
from azure.mgmt.core import ARMPipelineClient
from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy

from azsim.core.clock import SimClock
from azsim.core.latency import LatencyProfile
from azsim.world import parse_world
from tests.azsim.arm_fakes import PIPELINE_OID, SUB, WORLD_FILE, SimHandle, StaticCredential, running_sim

API = "api-version=2022-04-01"
GALLERY = f"/subscriptions/{SUB}/resourceGroups/rg-images/providers/Microsoft.Compute/galleries/galtest"
OWNER_OID = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"
NEW_SP = "7c6b5a49-3827-4165-9f8e-7d6c5b4a3928"
RBAC_ADMIN_OID = "9e8d7c6b-5a49-4382-a716-5f4e3d2c1b0a"
READER_ROLE = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/cf7c76d2-98a3-4358-a134-615aa78bf44d"
NAME = "0f1e2d3c-4b5a-4697-8877-665544332211"


def _world() -> Any:
    data = json.loads(WORLD_FILE.read_text(encoding="utf-8"))
    data["galleries"] = [
        {
            "name": "galtest",
            "resourceGroup": "rg-images",
            "location": "westeurope",
            "images": [{"name": "lnx", "osType": "Linux", "versions": [{"name": "1.0.0"}]}],
        }
    ]
    data["principals"] += [
        {
            "objectId": OWNER_OID,
            "displayName": "gallery-owner",
            "clientId": OWNER_OID,
            "kind": "servicePrincipal",
        },
        {
            "objectId": RBAC_ADMIN_OID,
            "displayName": "rbac-admin",
            "clientId": RBAC_ADMIN_OID,
            "kind": "servicePrincipal",
        },
        {
            "objectId": NEW_SP,
            "displayName": "partner-sp",
            "clientId": NEW_SP,
            "kind": "servicePrincipal",
            "visibleAfterSeconds": 30,
        },
    ]
    # The example world lets the pipeline share its galleries; here it is only a Contributor there.
    data["roleAssignments"] = [
        ra
        for ra in data["roleAssignments"]
        if (ra["principal"], ra["roleDefinitionName"])
        != ("id-image-pipeline", "Role Based Access Control Administrator")
    ]
    data["roleAssignments"] += [
        {"principal": "gallery-owner", "roleDefinitionName": "User Access Administrator", "scope": GALLERY},
        {
            "principal": "rbac-admin",
            "roleDefinitionName": "Role Based Access Control Administrator",
            "scope": GALLERY,
        },
    ]
    return parse_world(data)


@pytest.fixture
def arm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    latency = LatencyProfile(poll_interval_s=0.01)
    with running_sim(
        tmp_path_factory.mktemp("arm-ra"), world=_world(), clock=SimClock(), latency=latency
    ) as h:
        yield h


def call(arm: SimHandle, method: str, path: str, body: Any = None, *, oid: str = OWNER_OID) -> HttpResponse:
    policy = ARMChallengeAuthenticationPolicy(StaticCredential(oid), "https://management.azure.com/.default")
    client: Any = ARMPipelineClient(base_url=arm.url, policies=[policy])
    with client:
        request = HttpRequest(method, f"{arm.url}{path}?{API}", json=body)
        response = client.send_request(request, connection_verify=str(arm.certs.ca_cert))
        response.read()
        return response


def assignment(principal: str = NEW_SP, role: str = READER_ROLE) -> dict[str, Any]:
    return {
        "properties": {
            "roleDefinitionId": role,
            "principalId": principal,
            "principalType": "ServicePrincipal",
        }
    }


def ra_path(name: str = NAME, scope: str = GALLERY) -> str:
    return f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"


def error(response: HttpResponse) -> tuple[int, str, str]:
    err = response.json()["error"]
    return response.status_code, err["code"], err["message"]


def can_read_version(arm: SimHandle) -> bool:
    try:
        arm.compute(NEW_SP).gallery_image_versions.get("rg-images", "galtest", "lnx", "1.0.0")
    except HttpResponseError as exc:
        assert exc.status_code == 403
        return False
    return True


def test_principal_not_found_until_replicated__then_effective_at_once(arm: SimHandle) -> None:
    first = call(arm, "PUT", ra_path(), assignment())
    assert error(first) == (
        400,
        "PrincipalNotFound",
        f"Principal {NEW_SP} does not exist in the directory {arm.world.tenant_id}. Check that you have the correct "
        "principal ID. If you are creating this principal and then immediately assigning a role, this error might "
        "be related to a replication delay. In this case, set the role assignment principalType property to a "
        "value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype",
    )
    clock = arm.sim.clock
    assert isinstance(clock, SimClock)
    clock.advance(by=29)
    assert call(arm, "PUT", ra_path(), assignment()).status_code == 400
    assert not can_read_version(arm)
    clock.advance(by=1)
    made = call(arm, "PUT", ra_path(), assignment())
    assert made.status_code == 201
    props = made.json()["properties"]
    assert (props["scope"], props["principalId"], props["roleDefinitionId"]) == (GALLERY, NEW_SP, READER_ROLE)
    assert made.json()["id"] == ra_path()
    assert can_read_version(arm)
    # Reading the gallery itself is not in Compute Gallery Image Reader.
    with pytest.raises(HttpResponseError) as e:
        arm.compute(NEW_SP).galleries.get("rg-images", "galtest")
    assert e.value.status_code == 403


def test_idempotent_by_name__exists_under_another_name__delete(arm: SimHandle) -> None:
    arm.sim.clock.advance(by=60)  # type: ignore[attr-defined]
    assert call(arm, "PUT", ra_path(), assignment()).status_code == 201
    again = call(arm, "PUT", ra_path(), assignment())
    assert again.status_code == 201 and again.json()["name"] == NAME
    other = call(arm, "PUT", ra_path("11111111-2222-4333-8444-555555555555"), assignment())
    assert error(other) == (409, "RoleAssignmentExists", "The role assignment already exists.")
    listed = call(arm, "GET", f"{GALLERY}/providers/Microsoft.Authorization/roleAssignments").json()["value"]
    mine = [a for a in listed if a["properties"]["principalId"] == NEW_SP]
    assert [a["name"] for a in mine] == [NAME]
    assert call(arm, "GET", ra_path()).json()["properties"]["principalType"] == "ServicePrincipal"
    assert call(arm, "DELETE", ra_path()).status_code == 200
    assert not can_read_version(arm)
    assert call(arm, "DELETE", ra_path()).status_code == 204
    assert error(call(arm, "GET", ra_path()))[:2] == (404, "RoleAssignmentNotFound")


def test_who_may_assign_and_what_is_refused(arm: SimHandle) -> None:
    arm.sim.clock.advance(by=60)  # type: ignore[attr-defined]
    # Contributor on the gallery's group may not write role assignments.
    denied = call(arm, "PUT", ra_path(), assignment(), oid=PIPELINE_OID)
    assert error(denied)[:2] == (403, "AuthorizationFailed")
    assert "Microsoft.Authorization/roleAssignments/write" in error(denied)[2]
    # Role Based Access Control Administrator may.
    assert call(arm, "PUT", ra_path(), assignment(), oid=RBAC_ADMIN_OID).status_code == 201
    bad_name = call(arm, "PUT", ra_path("not-a-guid"), assignment())
    assert error(bad_name)[:2] == (400, "InvalidRoleAssignmentId")
    unknown_role = assignment(
        role=f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{NAME}"
    )
    assert error(call(arm, "PUT", ra_path("22222222-2222-4333-8444-555555555555"), unknown_role))[:2] == (
        400,
        "RoleDefinitionDoesNotExist",
    )
    nobody = call(arm, "PUT", ra_path("33333333-2222-4333-8444-555555555555"), assignment(principal=NAME))
    assert error(nobody)[:2] == (400, "PrincipalNotFound")
    changed = call(arm, "PUT", ra_path(), assignment(principal=OWNER_OID))
    assert error(changed)[:2] == (409, "RoleAssignmentUpdateNotPermitted")


def test_reset_forgets_arm_made_assignments_and_restarts_the_directory_delay(arm: SimHandle) -> None:
    clock = arm.sim.clock
    assert isinstance(clock, SimClock)
    clock.advance(by=60)
    assert call(arm, "PUT", ra_path(), assignment()).status_code == 201
    arm.sim.reset()
    assert not can_read_version(arm)
    assert error(call(arm, "GET", ra_path()))[:2] == (404, "RoleAssignmentNotFound")
    assert error(call(arm, "PUT", ra_path(), assignment()))[:2] == (400, "PrincipalNotFound")
