"""Role assignments through ARM (``{scope}/providers/Microsoft.Authorization/roleAssignments/{name}``):
PUT (a GUID name; ``RoleAssignmentExists`` for the same principal, role and scope under another name;
the same name and body again is a no-op), GET, DELETE and list at a scope. A principal the directory
has not replicated yet (the world file's ``visibleAfterSeconds``) gets ``PrincipalNotFound``. Every
change takes effect in the Authorizer at once. Texts: docs/azsim-arm.md#role-assignments.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from azsim.compute.state import ComputeState
from azsim.core.clock import utc_iso
from azsim.core.context import Reply, RequestContext
from azsim.core.errors import ArmError
from azsim.core.rbac import Authorizer
from azsim.roles import RoleDefinition

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
PROVIDER = "/providers/Microsoft.Authorization/roleAssignments"
PRINCIPAL_TYPES = ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device")


@dataclass
class RoleAssignment:
    name: str
    scope: str
    role: RoleDefinition
    role_definition_id: str
    principal_id: str
    principal_type: str
    created_on: str
    created_by: str
    description: str | None = None

    @property
    def id(self) -> str:
        return f"{self.scope}{PROVIDER}/{self.name}"

    def to_arm(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Authorization/roleAssignments",
            "properties": {
                "roleDefinitionId": self.role_definition_id,
                "principalId": self.principal_id,
                "principalType": self.principal_type,
                "scope": self.scope,
                "condition": None,
                "conditionVersion": None,
                "description": self.description,
                "createdOn": self.created_on,
                "updatedOn": self.created_on,
                "createdBy": self.created_by,
                "updatedBy": self.created_by,
                "delegatedManagedIdentityResourceId": None,
            },
        }


def _same_scope(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def _covers(outer: str, inner: str) -> bool:
    o, i = outer.rstrip("/").lower(), inner.rstrip("/").lower()
    return i == o or i.startswith(o + "/")


def principal_not_found(principal_id: str, tenant: str) -> ArmError:
    return ArmError(
        400,
        "PrincipalNotFound",
        f"Principal {principal_id} does not exist in the directory {tenant}. Check that you have the correct "
        "principal ID. If you are creating this principal and then immediately assigning a role, this error might "
        "be related to a replication delay. In this case, set the role assignment principalType property to a "
        "value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype",
    )


class RoleAssignments(ComputeState):
    """The ARM role-assignment store; the Authorizer (bound by the simulator) enforces what it holds."""

    authorizer: Authorizer | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.role_assignments: dict[str, RoleAssignment] = {}
        self.directory_epoch = self.lifecycle.now()

    def bind_authorizer(self, authorizer: Authorizer) -> None:
        self.authorizer = authorizer

    def reset(self) -> None:
        super().reset()
        for ra in self.role_assignments.values():
            if self.authorizer is not None:
                self.authorizer.revoke(ra.id)
        self.role_assignments = {}
        self.directory_epoch = self.lifecycle.now()

    def _roles(self) -> dict[str, RoleDefinition]:
        return self.world.role_definitions()

    def _principal_visible(self, principal_id: str) -> bool:
        for p in self.world.principals:
            if p.object_id.lower() == principal_id.lower():
                due = self.directory_epoch + self.lifecycle.real(p.visible_after_seconds)
                return self.lifecycle.now() >= due
        return False

    def _world_assignments(self, sub: str) -> list[RoleAssignment]:
        """The world file's assignments, listed with stable names (they can be read, not changed)."""
        roles = self._roles()
        out = []
        for ra in self.world.role_assignments:
            principal = self.world.principal(ra.principal)
            ref = (ra.role_definition_id or ra.role_definition_name or "").rsplit("/", 1)[-1].lower()
            if principal is None or ref not in roles:
                continue
            role = roles[ref]
            name = str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"azsim:ra:{principal.object_id}:{role.id}:{ra.scope}".lower())
            )
            ptype = (
                "ServicePrincipal"
                if principal.kind in ("managedIdentity", "servicePrincipal")
                else principal.kind.title()
            )
            out.append(
                RoleAssignment(
                    name,
                    ra.scope,
                    role,
                    f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role.id}",
                    principal.object_id,
                    ptype,
                    "",
                    "",
                )
            )
        return out

    def _all(self, sub: str) -> list[RoleAssignment]:
        return [*self._world_assignments(sub), *self.role_assignments.values()]

    def put_role_assignment(
        self, ctx: RequestContext, sub: str, scope: str, name: str, body: dict[str, Any]
    ) -> Reply:
        if not _GUID.match(name):
            raise ArmError(
                400,
                "InvalidRoleAssignmentId",
                f"The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID.",
            )
        props = body.get("properties") or {}
        role_def_id = str(props.get("roleDefinitionId") or "")
        principal_id = str(props.get("principalId") or "")
        if not role_def_id or not principal_id:
            missing = "roleDefinitionId" if not role_def_id else "principalId"
            raise ArmError(400, "InvalidRequestContent", f"The request content is missing '{missing}'.")
        role = self._roles().get(role_def_id.rstrip("/").rsplit("/", 1)[-1].lower())
        if role is None:
            raise ArmError(
                400,
                "RoleDefinitionDoesNotExist",
                f"The specified role definition with ID '{role_def_id.rsplit('/', 1)[-1]}' does not exist.",
            )
        ptype = str(props.get("principalType") or "User")
        existing = self.role_assignments.get(name.lower())
        if existing is not None:
            if (
                existing.principal_id.lower() == principal_id.lower()
                and existing.role.id == role.id
                and _same_scope(existing.scope, scope)
            ):
                return Reply(201, existing.to_arm())  # the same PUT again
            raise ArmError(
                409,
                "RoleAssignmentUpdateNotPermitted",
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            )
        for other in self._all(sub):
            if (
                other.principal_id.lower() == principal_id.lower()
                and other.role.id == role.id
                and _same_scope(other.scope, scope)
            ):
                raise ArmError(409, "RoleAssignmentExists", "The role assignment already exists.")
        if not self._principal_visible(principal_id):
            raise principal_not_found(principal_id, self.world.tenant_id)
        ra = RoleAssignment(
            name=name.lower(),
            scope=scope,
            role=role,
            role_definition_id=role_def_id,
            principal_id=principal_id,
            principal_type=ptype,
            created_on=utc_iso(),
            created_by=ctx.principal,
            description=props.get("description"),
        )
        self.role_assignments[ra.name] = ra
        if self.authorizer is not None:
            self.authorizer.grant(ra.id, principal_id, role, scope)
        return Reply(201, ra.to_arm())

    def get_role_assignment(self, sub: str, scope: str, name: str) -> Reply:
        for ra in self._all(sub):
            if ra.name.lower() == name.lower() and _same_scope(ra.scope, scope):
                return Reply(200, ra.to_arm())
        raise ArmError(404, "RoleAssignmentNotFound", f"The role assignment '{name}' is not found.")

    def delete_role_assignment(self, sub: str, scope: str, name: str) -> Reply:
        ra = self.role_assignments.get(name.lower())
        if ra is None or not _same_scope(ra.scope, scope):
            if any(
                w.name == name.lower() and _same_scope(w.scope, scope) for w in self._world_assignments(sub)
            ):
                raise ArmError(
                    400,
                    "BadRequest",
                    "azsim: role assignments from the world file cannot be deleted (our text).",
                )
            return Reply(204, None)
        del self.role_assignments[ra.name]
        if self.authorizer is not None:
            self.authorizer.revoke(ra.id)
        return Reply(200, ra.to_arm())

    def list_role_assignments(self, sub: str, scope: str, filter_text: str) -> list[RoleAssignment]:
        """At, above and beneath ``scope``; ``atScope()`` keeps at and above; ``principalId eq '…'`` filters."""
        at_scope = "atscope()" in filter_text.lower()
        m = re.search(r"principalId\s+eq\s+'([^']+)'", filter_text, re.IGNORECASE)
        out = []
        for ra in self._all(sub):
            above = _covers(ra.scope, scope)
            if not (above or (not at_scope and _covers(scope, ra.scope))):
                continue
            if m and ra.principal_id.lower() != m.group(1).lower():
                continue
            out.append(ra)
        return out
