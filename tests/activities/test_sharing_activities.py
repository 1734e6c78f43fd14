"""``assign_role`` against azsim with the real ARM pipeline: created, existed (its own name, or another
name for the same triple: ``RoleAssignmentExists``), ``PrincipalNotFound`` answered, and a refusal raised."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from azure.core.rest import HttpRequest

from activities.sharing import assign_role
from shared.errors import CaptureError
from shared.release_spec import KNOWN_ROLES, READER_ROLE, RoleAssignmentInput, RoleAssignmentResult
from tests.activities.activity_cloud import Calls

CONSUMERS = "4e9bc235-54f2-58f2-a18c-f29263f4fb63"  # gallery-consumers (examples/world.json)
READER_ONLY = "b238e621-424b-5f06-bd00-d0f513770f55"  # reader-only (examples/world.json)


def _scope(cloud: Any, rg: str = "rg-images") -> str:
    return f"/subscriptions/{cloud.subscription_id}/resourceGroups/{rg}"


def _assign(call: Calls, **fields: Any) -> RoleAssignmentResult:
    return RoleAssignmentResult.from_wire(call(assign_role, RoleAssignmentInput(**fields).to_wire()))


def test_created_then_existed_under_its_deterministic_name(cloud: Any, call: Calls) -> None:
    inp: dict[str, Any] = {
        "scope": _scope(cloud),
        "principal_id": CONSUMERS,
        "principal_type": "Group",
        "role_definition_id": KNOWN_ROLES[READER_ROLE],
    }
    first = _assign(call, **inp)
    name = RoleAssignmentInput(**inp).assignment_name
    assert (first.state, first.name) == ("created", name)
    assert first.assignment_id == f"{_scope(cloud)}/providers/Microsoft.Authorization/roleAssignments/{name}"
    again = _assign(call, **inp)
    assert (again.state, again.assignment_id) == ("existed", first.assignment_id)


def test_the_same_triple_under_another_name_counts_as_existed(cloud: Any, call: Calls) -> None:
    scope, other = _scope(cloud), str(uuid.uuid4())
    role = KNOWN_ROLES["Reader"]
    body = {
        "properties": {
            "roleDefinitionId": f"/subscriptions/{cloud.subscription_id}/providers/Microsoft.Authorization/"
            f"roleDefinitions/{role}",
            "principalId": READER_ONLY,
            "principalType": "ServicePrincipal",
        }
    }
    from azure.mgmt.compute import ComputeManagementClient

    url = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{other}?api-version=2022-04-01"
    made = cloud.arm_client(ComputeManagementClient).send_request(HttpRequest("PUT", url, json=body))
    assert made.status_code == 201, made.text()
    found = _assign(
        call,
        scope=scope,
        principal_id=READER_ONLY,
        principal_type="ServicePrincipal",
        role_definition_id=role,
    )
    assert found.state == "existed" and found.name == other, found


def test_an_unknown_principal_is_answered_not_raised(cloud: Any, call: Calls) -> None:
    stranger = str(uuid.uuid4())
    result = _assign(
        call,
        scope=_scope(cloud),
        principal_id=stranger,
        principal_type="User",
        role_definition_id=KNOWN_ROLES[READER_ROLE],
    )
    assert result.state == "principalNotFound" and result.assignment_id is None
    assert (
        result.message is not None
        and f"Principal {stranger} does not exist in the directory" in result.message
    )


def test_a_scope_the_identity_may_not_assign_at_is_refused_with_advice(cloud: Any, call: Calls) -> None:
    # The app holds no role-assignment right on rg-build (examples/world.json: VM and snapshot roles only).
    with pytest.raises(CaptureError) as raised:
        _assign(
            call,
            scope=_scope(cloud, "rg-build"),
            principal_id=CONSUMERS,
            principal_type="Group",
            role_definition_id=KNOWN_ROLES[READER_ROLE],
        )
    assert raised.value.info.azure_code == "AuthorizationFailed", raised.value.info
