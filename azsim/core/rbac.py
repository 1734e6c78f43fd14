"""Azure RBAC: does a principal hold an action at a scope, through any role assignment above it?

An assignment at scope S applies to S and everything beneath it (case-insensitive, whole path
segments). A role grants an action when one of its ``actions`` patterns matches and none of its
``notActions`` does (wildcards ``*``). Deny assignments and conditions are not modelled.

One ARM exception: a principal with any role assignment in a subscription may read its locations
(as it may read the subscription itself, which is how RG-scoped identities see their subscription).

``permissions`` answers ARM's ``{scope}/providers/Microsoft.Authorization/permissions``: the
caller's own role permissions that apply at a scope, one entry per role assignment at or above it,
wildcards and ``notActions`` as the role spells them (the caller does the matching).

Every decision goes to an ``AuthorizationLog`` (shared by the ARM pipeline and the blob front), so a
test can compare what an identity was authorised for with the role it was given. A filtered list
records only what it let through: leaving out what the caller may not read is not a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

from azsim.core.requestlog import AuthorizationLog
from azsim.roles import RoleDefinition
from azsim.world import World


@dataclass(frozen=True)
class Assignment:
    object_id: str
    role: RoleDefinition
    scope: str


def scope_covers(assignment_scope: str, scope: str) -> bool:
    a = assignment_scope.rstrip("/").lower()
    s = scope.rstrip("/").lower()
    return s == a or s.startswith(a + "/")


# Reads ARM grants to anyone with a role somewhere in the subscription.
_SUBSCRIPTION_MEMBER_READS = frozenset(
    {"microsoft.resources/subscriptions/locations/read", "microsoft.resources/subscriptions/read"}
)


def _is_subscription(scope: str) -> bool:
    parts = scope.strip("/").split("/")
    return len(parts) == 2 and parts[0].lower() == "subscriptions"


def _within(assignment_scope: str, scope: str) -> bool:
    """The assignment is at ``scope``, beneath it, or above it."""
    return scope_covers(assignment_scope, scope) or scope_covers(scope, assignment_scope)


class Authorizer:
    def __init__(self, world: World, log: AuthorizationLog | None = None) -> None:
        self.log = log if log is not None else AuthorizationLog()
        roles = world.role_definitions()
        self.assignments: list[Assignment] = []
        self._granted: dict[str, Assignment] = {}  # by the resource id of an ARM-made assignment
        for ra in world.role_assignments:
            principal = world.principal(ra.principal)
            ref = (ra.role_definition_id or ra.role_definition_name or "").rsplit("/", 1)[-1].lower()
            if principal is None or ref not in roles:
                continue  # load_world already rejected these
            self.assignments.append(Assignment(principal.object_id.lower(), roles[ref], ra.scope))

    def is_allowed(
        self,
        object_id: str,
        action: str,
        scope: str,
        *,
        data_action: bool = False,
        record_denial: bool = True,
    ) -> bool:
        oid = object_id.lower()
        by_role = any(
            a.object_id == oid
            and scope_covers(a.scope, scope)
            and a.role.allows(action, data_action=data_action)
            for a in self.assignments
        )
        implicit = (
            not by_role
            and not data_action
            and action.lower() in _SUBSCRIPTION_MEMBER_READS
            and _is_subscription(scope)
            and any(a.object_id == oid and _within(a.scope, scope) for a in self.assignments)
        )
        allowed = by_role or implicit
        if allowed or record_denial:
            self.log.add(oid, action, scope, data_action=data_action, allowed=allowed, implicit=implicit)
        return allowed

    def roles_of(self, object_id: str) -> list[dict[str, str]]:
        oid = object_id.lower()
        return [{"role": a.role.name, "scope": a.scope} for a in self.assignments if a.object_id == oid]

    def permissions(self, object_id: str, scope: str) -> list[dict[str, list[str]]]:
        """The role permissions of ``object_id`` that apply at ``scope`` (assignments at or above it)."""
        oid = object_id.lower()
        return [
            {
                "actions": list(a.role.actions),
                "notActions": list(a.role.not_actions),
                "dataActions": list(a.role.data_actions),
                "notDataActions": list(a.role.not_data_actions),
            }
            for a in self.assignments
            if a.object_id == oid and scope_covers(a.scope, scope)
        ]

    # --- role assignments made through ARM (Microsoft.Authorization/roleAssignments) ------------

    def grant(self, key: str, object_id: str, role: RoleDefinition, scope: str) -> None:
        """Add an assignment made at run time (``key``: its resource id); effective at once."""
        self.revoke(key)
        assignment = Assignment(object_id.lower(), role, scope)
        self._granted[key.lower()] = assignment
        self.assignments.append(assignment)

    def revoke(self, key: str) -> None:
        assignment = self._granted.pop(key.lower(), None)
        if assignment is not None:
            self.assignments = [a for a in self.assignments if a is not assignment]
