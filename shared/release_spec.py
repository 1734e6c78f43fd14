"""The release parts of a capture request: ``retention`` (how many versions of the definition to keep, and
each new version's end of life) and ``share`` (role assignments on the gallery), their settings defaults,
and the activity contracts of the RETAIN and SHARE stages (``orchestrators.capture.release``).

``retention.keepLatest: N`` keeps the N newest usable versions of the image definition (the one just made
among them) and deletes the older ones, except those Azure or their owner protects
(``shared.retention_rules``). ``retention.endOfLifeDays: D`` sets each new version's
``publishingProfile.endOfLifeDate`` to the capture's start (the orchestrator's clock) plus D days; it
cannot go with an explicit ``endOfLifeDate``. ``share.principals`` become role assignments on the gallery,
named deterministically (``assignment_name``) so that a retry meets its own assignment, not
``RoleAssignmentExists``. Azure facts: docs/azure-facts.md, "Retention and sharing".
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator

from shared.field_errors import FieldError
from shared.model_base import WireModel
from shared.request_rules import IntakeInt, is_intake

GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# The principal types a role assignment takes (Microsoft.Authorization 2022-04-01 ``PrincipalType``).
PrincipalType = Literal["User", "Group", "ServicePrincipal", "ForeignGroup", "Device"]
# Built-in roles a share may name by name (any other role: its role definition GUID). Ids: Microsoft Learn,
# "Azure built-in roles" (the same list azsim/roles.py enforces).
READER_ROLE = "Compute Gallery Image Reader"
KNOWN_ROLES: dict[str, str] = {
    READER_ROLE: "cf7c76d2-98a3-4358-a134-615aa78bf44d",
    "Reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "Compute Gallery Artifacts Publisher": "85a2d0d9-2eba-4c9c-b355-11c2cc0788ab",
    # Microsoft's Marketplace steps grant the publisher Owner on the gallery (capture paths §7.4).
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
}
MAX_KEEP_LATEST = 1000
MAX_END_OF_LIFE_DAYS = 36500
MAX_PRINCIPALS = 20
ROLE_ASSIGNMENTS_API_VERSION = "2022-04-01"


def role_guid(role: str) -> str | None:
    """The role definition GUID of a known role name or a GUID (any case); None if it is neither."""
    for name, guid in KNOWN_ROLES.items():
        if role.lower() == name.lower():
            return guid
    tail = role.rstrip("/").rsplit("/", 1)[-1]
    return tail.lower() if GUID.fullmatch(tail) else None


class RetentionSpec(WireModel):
    keep_latest: IntakeInt | None = Field(default=None, ge=1, le=MAX_KEEP_LATEST)
    end_of_life_days: IntakeInt | None = Field(default=None, ge=1, le=MAX_END_OF_LIFE_DAYS)


class SharePrincipal(WireModel):
    principal_id: str
    principal_type: PrincipalType
    role: str = Field(
        default=READER_ROLE,
        description=f"A role name ({', '.join(KNOWN_ROLES)}) or a role definition GUID; default {READER_ROLE}.",
    )

    @field_validator("principal_id")
    @classmethod
    def _principal(cls, v: str) -> str:
        if not GUID.fullmatch(v):
            raise ValueError("must be the principal's object id (a GUID), not its name or e-mail")
        return v.lower()

    @field_validator("role")
    @classmethod
    def _role(cls, v: str, info: ValidationInfo) -> str:
        if is_intake(info) and role_guid(v) is None:
            raise ValueError(f"must be one of {', '.join(KNOWN_ROLES)} or a role definition GUID")
        return v

    @property
    def role_id(self) -> str:
        return role_guid(self.role) or self.role


class ShareSpec(WireModel):
    principals: list[SharePrincipal] = Field(min_length=1, max_length=MAX_PRINCIPALS)

    @field_validator("principals")
    @classmethod
    def _once_each(cls, v: list[SharePrincipal]) -> list[SharePrincipal]:
        seen: set[tuple[str, str]] = set()
        for p in v:
            key = (p.principal_id, p.role_id)
            if key in seen:
                raise ValueError(f"principal {p.principal_id} is listed twice with role {p.role}")
            seen.add(key)
        return v


def release_errors(data: Mapping[str, Any]) -> list[FieldError]:
    """Request rules across fields: ``retention.endOfLifeDays`` and ``endOfLifeDate`` exclude each other."""
    retention = data.get("retention")
    days = retention.get("endOfLifeDays") if isinstance(retention, dict) else None
    if days is not None and data.get("endOfLifeDate") is not None:
        return [
            FieldError(
                field="retention.endOfLifeDays",
                message="cannot go with endOfLifeDate: send either a date or a number of days",
            )
        ]
    return []


def assignment_name(scope: str, principal_id: str, role_id: str) -> str:
    """The role assignment's name: the same scope, principal and role give the same GUID on every retry."""
    key = f"image-pipeline:share:{scope.rstrip('/').lower()}:{principal_id.lower()}:{role_id.lower()}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, key))


def role_definition_id(subscription_id: str, role_id: str) -> str:
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role_id}"


# --- settings: defaults for requests that leave the parts out ------------------------------------


@dataclass(frozen=True)
class ReleaseDefaults:
    """RETENTION_KEEP_LATEST, RETENTION_END_OF_LIFE_DAYS and SHARE_PRINCIPALS (a JSON list); the wait for a
    principal the directory does not know yet is timing policy (SHARE_PRINCIPAL_WAIT_SECONDS)."""

    keep_latest: int | None = None
    end_of_life_days: int | None = None
    share: ShareSpec | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReleaseDefaults:
        def number(name: str, low: int, high: int) -> int | None:
            raw = (env.get(name) or "").strip()
            if not raw:
                return None
            if not raw.isdigit() or not low <= int(raw) <= high:
                raise ValueError(f"setting {name}={raw!r} must be a whole number from {low} to {high}")
            return int(raw)

        share = None
        raw = (env.get("SHARE_PRINCIPALS") or "").strip()
        if raw:
            try:
                share = ShareSpec.model_validate({"principals": json.loads(raw)}, context={"intake": True})
            except (ValueError, ValidationError) as exc:
                raise ValueError(
                    "setting SHARE_PRINCIPALS must be a JSON list of "
                    '{"principalId": GUID, "principalType": ..., "role": ...}: ' + str(exc).splitlines()[0]
                ) from None
        return cls(
            keep_latest=number("RETENTION_KEEP_LATEST", 1, MAX_KEEP_LATEST),
            end_of_life_days=number("RETENTION_END_OF_LIFE_DAYS", 1, MAX_END_OF_LIFE_DAYS),
            share=share,
        )

    def fill(self, data: Any) -> Any:
        """A request body with the settings' parts where it has none (an explicit part always wins).

        An explicit ``endOfLifeDate`` keeps the setting's days out (the request asked for its own date).
        """
        if not isinstance(data, dict):
            return data
        out = dict(data)
        given = out.get("retention")
        if given is None or isinstance(given, dict):  # an invalid part is left for validation to name
            retention = dict(given or {})
            if self.keep_latest is not None:
                retention.setdefault("keepLatest", self.keep_latest)
            if self.end_of_life_days is not None and out.get("endOfLifeDate") is None:
                retention.setdefault("endOfLifeDays", self.end_of_life_days)
            if retention:
                out["retention"] = retention
        if self.share is not None and out.get("share") is None:
            out["share"] = self.share.to_wire()
        return out


# --- activity contracts ---------------------------------------------------------------------------


class RoleAssignmentInput(WireModel):
    """One role assignment to make (``assign_role``): reusable by any stage that grants access."""

    scope: str  # an ARM resource id (e.g. the gallery's)
    principal_id: str
    principal_type: PrincipalType
    role_definition_id: str  # a role definition GUID or its full id
    name: str | None = None  # default: assignment_name(scope, principal, role)

    @property
    def role_id(self) -> str:
        return self.role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()

    @property
    def assignment_name(self) -> str:
        return self.name or assignment_name(self.scope, self.principal_id, self.role_id)


class RoleAssignmentResult(WireModel):
    # "created", "existed" (this name, or another name for the same principal, role and scope), or
    # "principalNotFound" (the directory does not know the principal yet: the caller waits and asks again).
    state: Literal["created", "existed", "principalNotFound"]
    scope: str
    principal_id: str
    role_definition_id: str
    assignment_id: str | None = None
    name: str | None = None
    message: str | None = None  # Azure's message of PrincipalNotFound


class DefinitionVersionsInput(WireModel):
    subscription_id: str
    resource_group: str
    gallery: str
    definition: str


class VersionFacts(WireModel):
    """What retention judges of one version of the definition."""

    version_id: str
    name: str
    published_date: str | None = None
    provisioning_state: str | None = None
    region_states: dict[str, str] = Field(default_factory=dict)  # region -> replication state
    end_of_life_date: str | None = None
    allow_deletion_of_replicated_locations: bool | None = None
    block_deletion_before_end_of_life: bool | None = None


class DefinitionVersions(WireModel):
    versions: list[VersionFacts] = Field(default_factory=list)


class KeptVersion(WireModel):
    version_id: str
    reason: str


class RetentionReport(WireModel):
    """What RETAIN did: in the status and the result."""

    keep_latest: int
    deleted: list[str] = Field(default_factory=list)
    kept: list[KeptVersion] = Field(default_factory=list)


class ShareReport(WireModel):
    """One assignment SHARE made or found."""

    principal_id: str
    principal_type: str
    role_definition_id: str
    assignment_id: str | None = None
    state: str
    principal_not_found: int = 0  # PrincipalNotFound answers waited out
