"""Role assignments through ARM: ``assign_role`` grants one principal one role at one scope.

Reusable by every stage that grants access (SHARE on the gallery; the Marketplace hand-off). It is
idempotent: the assignment's name is deterministic (``shared.release_spec.assignment_name``), so a retry
reads its own assignment back ("existed"); an assignment of the same principal, role and scope under
another name (409 ``RoleAssignmentExists``) is found by listing the scope and also counts as "existed".
A principal the directory does not know yet (400 ``PrincipalNotFound``, e.g. one just created) is
answered as ``state: "principalNotFound"`` with Azure's message, not raised: the orchestrator waits and
asks again (``orchestrators.capture.release.assign_waiting``). Microsoft.Authorization has no SDK in the
app's dependencies; the calls go through the ARM pipeline of ``shared.clients.arm_send``.
"""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest, HttpResponse
from azure.mgmt.core.exceptions import ARMErrorFormat

from activities._common import activity, azure_call
from shared import clients
from shared.activity_types import ASSIGN_ROLE
from shared.release_spec import (
    ROLE_ASSIGNMENTS_API_VERSION,
    RoleAssignmentInput,
    RoleAssignmentResult,
    role_definition_id,
)

STEP = "assign_role"
_PARAMS = {"api-version": ROLE_ASSIGNMENTS_API_VERSION}


def _subscription(scope: str) -> str:
    parts = scope.strip("/").split("/")
    if len(parts) < 2 or parts[0].lower() != "subscriptions":
        raise ValueError(f"not an ARM scope inside a subscription: {scope!r}")
    return parts[1]


def _error_code(response: HttpResponse) -> tuple[str, str]:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    return str(error.get("code") or ""), str(error.get("message") or "")


def _raise(response: HttpResponse) -> None:
    raise HttpResponseError(response=response, error_format=ARMErrorFormat)


def _same(props: dict[str, Any], inp: RoleAssignmentInput) -> bool:
    role = str(props.get("roleDefinitionId") or "").rstrip("/").rsplit("/", 1)[-1].lower()
    return str(props.get("principalId") or "").lower() == inp.principal_id.lower() and role == inp.role_id


def _result(inp: RoleAssignmentInput, state: str, body: dict[str, Any]) -> RoleAssignmentResult:
    return RoleAssignmentResult(
        state=state,  # type: ignore[arg-type]
        scope=inp.scope,
        principal_id=inp.principal_id,
        role_definition_id=inp.role_id,
        assignment_id=body.get("id"),
        name=body.get("name"),
    )


def _find_existing(sub: str, inp: RoleAssignmentInput) -> dict[str, Any] | None:
    """The assignment of this principal and role exactly at ``inp.scope``, under any name."""
    request: HttpRequest | None = HttpRequest(
        "GET",
        f"{inp.scope}/providers/Microsoft.Authorization/roleAssignments",
        params={**_PARAMS, "$filter": f"principalId eq '{inp.principal_id}'"},
    )
    scope = inp.scope.rstrip("/").lower()
    while request is not None:
        response = clients.arm_send(sub, request)
        if response.status_code != 200:
            _raise(response)
        body = response.json()
        for ra in body.get("value") or []:
            props = ra.get("properties") or {}
            if str(props.get("scope") or "").rstrip("/").lower() == scope and _same(props, inp):
                return dict(ra)
        link = body.get("nextLink")
        request = HttpRequest("GET", link) if link else None
    return None


@activity(ASSIGN_ROLE)
def assign_role(inp: RoleAssignmentInput) -> RoleAssignmentResult:
    """Grant ``inp.principal_id`` the role at ``inp.scope`` (or find it granted); see the module doc."""
    sub = _subscription(inp.scope)
    name = inp.assignment_name
    url = f"{inp.scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
    with azure_call("read the role assignment", inp.scope):
        got = clients.arm_send(sub, HttpRequest("GET", url, params=_PARAMS))
        if got.status_code == 200 and _same(got.json().get("properties") or {}, inp):
            return _result(inp, "existed", got.json())
        if got.status_code not in (200, 404):
            _raise(got)
    body = {
        "properties": {
            "roleDefinitionId": role_definition_id(sub, inp.role_id),
            "principalId": inp.principal_id,
            # Set so that a principal just created gets past the directory's replication delay (Azure's advice).
            "principalType": inp.principal_type,
        }
    }
    with azure_call("create the role assignment", inp.scope):
        put = clients.arm_send(sub, HttpRequest("PUT", url, params=_PARAMS, json=body))
        if put.status_code in (200, 201):
            return _result(inp, "created", put.json())
        code, message = _error_code(put)
        if code == "PrincipalNotFound":
            result = _result(inp, "principalNotFound", {})
            return result.model_copy(update={"message": message[:1000]})
        if code == "RoleAssignmentExists":
            existing = _find_existing(sub, inp)
            if existing is not None:
                return _result(inp, "existed", existing)
        _raise(put)
    raise AssertionError("unreachable")  # pragma: no cover
