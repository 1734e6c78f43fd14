"""Preflight's permission check: what the app's identity may do at each scope a plan touches.

ARM tells a caller its own permissions at a scope (``GET {scope}/providers/Microsoft.Authorization/
permissions``: one entry per role assignment that applies there, as patterns). The activity reads them
with the app's identity and matches the plan's actions as ARM does (``shared.permissions``), so a
missing role is reported before anything changes instead of as a 403 half-way through a capture.
Reading one's own permissions needs no role.
"""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.mgmt.core.exceptions import ARMErrorFormat

from activities._common import activity, azure_call
from shared import clients
from shared.activity_types import CHECK_PERMISSIONS
from shared.permissions import (
    MissingAtScope,
    PermissionsCheckInput,
    PermissionsCheckResult,
    ScopeRequirement,
    missing,
    plan_requirements,
)

# The newest stable api-version of Microsoft.Authorization that has Permissions_ListForResourceGroup /
# Permissions_ListForResource, and the one azure-mgmt-authorization 4.0.0 sends by default.
PERMISSIONS_API_VERSION = "2022-04-01"


def _subscription_of(scope: str) -> str:
    parts = scope.strip("/").split("/")
    if len(parts) < 2 or parts[0].lower() != "subscriptions":
        raise ValueError(f"not an ARM scope inside a subscription: {scope!r}")
    return parts[1]


def _permission_entries(scope: str) -> list[dict[str, Any]]:
    """Every entry of the caller's permissions at ``scope`` (following nextLink)."""
    sub = _subscription_of(scope)
    url = f"{scope}/providers/Microsoft.Authorization/permissions"  # the client's base_url goes in front
    request: HttpRequest | None = HttpRequest("GET", url, params={"api-version": PERMISSIONS_API_VERSION})
    entries: list[dict[str, Any]] = []
    while request is not None:
        response = clients.arm_send(sub, request)
        if response.status_code != 200:
            raise HttpResponseError(response=response, error_format=ARMErrorFormat)
        body = response.json()
        entries += [e for e in body.get("value") or [] if isinstance(e, dict)]
        next_link = body.get("nextLink")
        request = HttpRequest("GET", next_link) if next_link else None
    return entries


def _check(requirement: ScopeRequirement) -> MissingAtScope | None:
    with azure_call("read the identity's permissions", requirement.scope):
        entries = _permission_entries(requirement.scope)
    return missing(requirement, entries)


@activity(CHECK_PERMISSIONS)
def check_permissions(inp: PermissionsCheckInput) -> PermissionsCheckResult:
    """The actions and data actions of each scope the identity does not hold there."""
    wanted = [*inp.scopes, *(plan_requirements(inp.plan) if inp.plan is not None else [])]
    found = [m for m in (_check(r) for r in wanted) if m is not None]
    return PermissionsCheckResult(missing=found)
