"""The Marketplace hand-off (``marketplace`` in a capture request): what is asked, what the capture hands over.

Two routes end in Partner Center (docs/azure-facts.md, "Marketplace hand-off"):

- ``gallery``: the image version stays in the gallery; Partner Center reads it there. The gallery's
  subscription must be in the publisher's tenant (checked in preflight, before anything changes), and the
  Partner Center service principals get Compute Gallery Image Reader on the gallery (the HANDOFF stage).
- ``vhd`` (Partner Center's legacy SAS-URI route): the capture exports the disks as VHDs (``vhdExport`` is
  required), checks each against the rules a file can be checked for (fixed VHD, 1 MiB-aligned virtual
  size, disk size within Marketplace's range), and a SAS is handed out only by
  ``POST /api/captures/{id}/marketplace-sas`` (never stored by the capture).

``sasValidDays``: Partner Center's 2021 SAS page asks for a SAS valid at least three weeks; Azure limits a
user delegation key, and so every user-delegation SAS, to seven days from the time it is requested. The
app issues only user-delegation SAS (it holds no account key), so the days are 1-7 (default 7) and the SAS
endpoint can be called again for a fresh one. See docs/azure-facts.md for the sources.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from shared.field_errors import FieldError
from shared.model_base import WireModel
from shared.request_rules import IntakeInt, is_intake

MarketplaceRoute = Literal["gallery", "vhd"]
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Built-in role Compute Gallery Image Reader (images/read, images/versions/read): what Partner Center needs.
GALLERY_IMAGE_READER = "cf7c76d2-98a3-4358-a134-615aa78bf44d"
# Azure: a user delegation key (and so a user-delegation SAS) expires at most 7 days after it is requested.
SAS_MAX_DAYS = 7
SAS_DEFAULT_DAYS = 7
# Partner Center's legacy SAS-URI page: the SAS must stay valid at least three weeks (not reachable, above).
PARTNER_CENTER_SAS_DAYS = 21
MAX_PRINCIPALS = 10
SETTING_TENANT = "MARKETPLACE_PUBLISHER_TENANT_ID"
SETTING_PRINCIPALS = "MARKETPLACE_PARTNER_CENTER_PRINCIPALS"


def guid_problem(value: str) -> str | None:
    return None if _GUID.fullmatch(value) else "must be a GUID (an object or tenant id)"


class MarketplaceSpec(WireModel):
    """``marketplace`` in a capture request."""

    route: MarketplaceRoute = Field(
        description='"gallery": Partner Center reads the version from the gallery (tenant checked, read role '
        'granted to the Partner Center principals); "vhd": the disks are exported (vhdExport required), '
        "checked against Marketplace's VHD rules, and SAS URIs come only from POST "
        "/api/captures/{id}/marketplace-sas."
    )
    publisher_tenant_id: str | None = Field(
        default=None,
        description=f"gallery route: the publisher's tenant (default: the setting {SETTING_TENANT}); the "
        "gallery's subscription must be in it.",
    )
    partner_center_principals: list[str] | None = Field(
        default=None,
        description="gallery route: object ids of the Partner Center service principals in the publisher's "
        f"tenant (default: the setting {SETTING_PRINCIPALS}); each gets Compute Gallery Image Reader on "
        "the gallery.",
    )
    sas_valid_days: IntakeInt | None = Field(
        default=None,
        ge=1,
        le=SAS_MAX_DAYS,
        description=f"vhd route: how long the SAS issued by the endpoint is valid, 1-{SAS_MAX_DAYS} days "
        f"(default {SAS_DEFAULT_DAYS}: Azure's limit for a user-delegation SAS; Partner Center's legacy page "
        f"asks for {PARTNER_CENTER_SAS_DAYS}, so ask the endpoint again for a fresh SAS when needed).",
    )

    @field_validator("publisher_tenant_id")
    @classmethod
    def _tenant(cls, v: str | None, info: ValidationInfo) -> str | None:
        problem = guid_problem(v) if v is not None and is_intake(info) else None
        if problem:
            raise ValueError(problem)
        return v.lower() if v is not None else v

    @field_validator("partner_center_principals")
    @classmethod
    def _principals(cls, v: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if v is None or not is_intake(info):
            return v
        if not v or len(v) > MAX_PRINCIPALS:
            raise ValueError(f"list 1-{MAX_PRINCIPALS} object ids (omit the field to use the setting)")
        bad = [p[:40] for p in v if guid_problem(p)]
        if bad:
            raise ValueError(f"object ids are GUIDs; not: {', '.join(bad)}")
        lowered = [p.lower() for p in v]
        if len(set(lowered)) != len(lowered):
            raise ValueError("list each principal once")
        return lowered

    @property
    def days(self) -> int:
        return self.sas_valid_days or SAS_DEFAULT_DAYS


def marketplace_errors(data: dict[str, Any]) -> list[FieldError]:
    """The rules between ``marketplace`` and the rest of a raw request (intake only)."""
    mp = data.get("marketplace")
    if not isinstance(mp, dict):
        return []
    route = mp.get("route")
    errors: list[FieldError] = []
    if route == "vhd":
        if not data.get("vhdExport"):
            errors.append(
                FieldError(
                    field="marketplace.route",
                    message='"vhd" hands Partner Center exported VHDs: add vhdExport (an allow-listed export '
                    'account and container), or use route "gallery"',
                )
            )
        for name in ("publisherTenantId", "partnerCenterPrincipals"):
            if name in mp:
                errors.append(FieldError(field=f"marketplace.{name}", message='only with route "gallery"'))
    elif route == "gallery" and "sasValidDays" in mp:
        errors.append(FieldError(field="marketplace.sasValidDays", message='only with route "vhd"'))
    return errors


class RoleGrant(WireModel):
    """A role assignment the hand-off made (or found) on the gallery."""

    principal_id: str
    role_definition_id: str
    assignment_id: str | None = None


class VhdCheck(WireModel):
    """One exported VHD against Marketplace's file-checkable rules (``problems`` empty: it passes)."""

    disk_key: str
    disk_name: str
    blob_url: str  # without query: no SAS is ever stored
    blob_type: str | None = None
    virtual_size: int | None = None
    size_gb: int | None = None
    problems: list[str] = Field(default_factory=list)


class MarketplaceHandoff(WireModel):
    """What Partner Center needs, in the capture's status and result (no secret in it)."""

    route: MarketplaceRoute
    tenant_id: str | None = None  # the gallery subscription's tenant (gallery route)
    gallery_id: str | None = None
    image_definition_id: str | None = None
    image_version_id: str | None = None
    grants: list[RoleGrant] = Field(default_factory=list)
    vhds: list[VhdCheck] = Field(default_factory=list)
    container_url: str | None = None  # vhd route: the export container (no query)
    sas_valid_days: int | None = None
    sas_endpoint: str | None = None  # the app route that issues the SAS (relative; no key in it)


# --- Activity contracts (shared.activity_types) ---


class MarketplaceCheckInput(WireModel):
    """Preflight of the gallery route: the gallery's subscription, and what the request named."""

    subscription_id: str
    publisher_tenant_id: str | None = None
    partner_center_principals: list[str] | None = None


class MarketplaceCheckResult(WireModel):
    """The subscription's tenant, the tenant and principals in effect (request, else settings), problems."""

    subscription_tenant_id: str | None = None
    publisher_tenant_id: str | None = None
    principals: list[str] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)


class VhdToCheck(WireModel):
    disk_key: str
    disk_name: str
    blob_url: str
    os_disk: bool
    os_type: str | None = None
    size_gb: int | None = None


class VhdRulesInput(WireModel):
    vhds: list[VhdToCheck]


class VhdRulesResult(WireModel):
    checks: list[VhdCheck] = Field(default_factory=list)
