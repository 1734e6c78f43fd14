"""The capture request (``POST /api/captures``, queue messages) and its validation.

Validation collects every problem at once, each with the JSON path of the field and why,
so a caller fixes a bad request in one round trip.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from shared import endpoints
from shared.ids import ResourceId
from shared.model_base import WireModel

VERSION_AUTO = "auto"
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_INT32_MAX = 2**31 - 1
_REGION = re.compile(r"^[a-z][a-z0-9]{1,39}$")
_GALLERY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]{0,78}[A-Za-z0-9]$|^[A-Za-z0-9]$")
_DEFINITION_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,78}[A-Za-z0-9])?$")
_CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
StorageAccountType = Literal["Standard_LRS", "Standard_ZRS", "Premium_LRS", "PremiumV2_LRS"]


def parse_version(value: str) -> tuple[int, int, int]:
    """Parse ``Major.Minor.Patch`` (each a non-negative 32-bit int); raise ValueError otherwise."""
    m = _VERSION.match(value)
    if not m:
        raise ValueError("must be 'auto' or Major.Minor.Patch, e.g. 1.4.0")
    parts = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    if any(p > _INT32_MAX for p in parts):
        raise ValueError(f"each part of a version must be at most {_INT32_MAX}")
    return parts


class GalleryRef(WireModel):
    subscription_id: str | None = None
    resource_group: str
    name: str
    create_if_missing: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _GALLERY_NAME.match(v):
            raise ValueError("gallery names use letters, digits, '.' and '_' (not at the ends), max 80")
        return v


class ImageDefinitionSpec(WireModel):
    name: str
    publisher: str | None = None
    offer: str | None = None
    sku: str | None = None
    create_if_missing: bool = True
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _DEFINITION_NAME.match(v):
            raise ValueError(
                "image definition names use letters, digits, '.', '-', '_' (not at the ends), max 80"
            )
        return v

    @model_validator(mode="after")
    def _identifier_when_creating(self) -> ImageDefinitionSpec:
        if self.create_if_missing:
            missing = [n for n in ("publisher", "offer", "sku") if not getattr(self, n)]
            if missing:
                raise ValueError(
                    f"{', '.join(missing)} required when createIfMissing is true (the definition's identifier)"
                )
        return self


class TargetRegion(WireModel):
    name: str
    replica_count: int = Field(default=1, ge=1, le=100)
    storage_account_type: StorageAccountType | None = None

    @field_validator("name")
    @classmethod
    def _region(cls, v: str) -> str:
        norm = v.replace(" ", "").lower()
        if not _REGION.match(norm):
            raise ValueError("must be an Azure region name such as westeurope or eastus2")
        return norm


class VhdExport(WireModel):
    account_url: str
    container: str

    @field_validator("account_url")
    @classmethod
    def _url(cls, v: str, info: ValidationInfo) -> str:
        if (info.context or {}).get("intake"):
            # The named host gets the app's storage token and the snapshot's SAS: only an allow-listed
            # account's blob endpoint of this cloud (shared.endpoints).
            from shared.settings import get_settings  # here: settings imports this module's dependants

            canonical, problem = endpoints.export_url_problem(v, get_settings().storage_endpoints)
            if canonical is None:
                raise ValueError(problem)
            return canonical
        if not v.startswith("https://"):
            raise ValueError(
                "must be the storage account's https blob endpoint, e.g. https://acct.blob.core.windows.net"
            )
        if "?" in v:
            raise ValueError("must not carry a query string (no SAS: the app uses its managed identity)")
        return v.rstrip("/")

    @field_validator("container")
    @classmethod
    def _container(cls, v: str) -> str:
        if not _CONTAINER.match(v):
            raise ValueError("container names are 3-63 lowercase letters, digits and single hyphens")
        return v


# App settings a request may name as its webhook (notify.webhookSetting): only these, so a request can never
# point the app at an unrelated setting (a storage connection string, a client secret) and have it used as a URL.
WEBHOOK_SETTING_PREFIX = "NOTICE_WEBHOOK_"
_WEBHOOK_SETTING = re.compile(rf"^{WEBHOOK_SETTING_PREFIX}[A-Za-z0-9_]{{1,100}}$")
# Strict checks run when a request comes in (validate_request passes this context). A request read back
# from the orchestration input (CaptureInput.from_wire on replay) is not re-checked: an in-flight capture
# started before a check existed must still replay.
INTAKE = {"intake": True}


def webhook_url_problem(url: str, *, allow_loopback: bool | None = None) -> str | None:
    """Why a webhook URL may not be stored in a request (the request is orchestration input: plain text
    in the task hub) or be delivered to, or None. Any query string (Logic Apps' ``sig=``, Functions'
    ``code=``, tokens) or user:password in the URL counts; so does a host only the app's network can reach
    (``shared.endpoints``). ``allow_loopback`` defaults to the app setting."""
    if allow_loopback is None:
        from shared.settings import get_settings  # here: settings imports this module's dependants

        allow_loopback = get_settings().webhook_allow_loopback
    return endpoints.webhook_url_problem(url, allow_loopback=allow_loopback)


class Notify(WireModel):
    """Where the completion notice goes besides the results queue: a plain URL, or an app setting holding one."""

    webhook_url: str | None = None
    # Name of an app setting whose value is the webhook URL (may carry a key); read only by publish_notice.
    webhook_setting: str | None = None

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        if (info.context or {}).get("intake"):
            problem = webhook_url_problem(v)
            if problem:
                raise ValueError(problem)
        elif not re.match(r"^https?://", v):
            raise ValueError("must be an http(s) URL")
        return v

    @field_validator("webhook_setting")
    @classmethod
    def _setting(cls, v: str | None) -> str | None:
        if v is not None and not _WEBHOOK_SETTING.match(v):
            raise ValueError(
                f"must be the name of an app setting starting with {WEBHOOK_SETTING_PREFIX} (letters, digits "
                f"and _ after it), e.g. {WEBHOOK_SETTING_PREFIX}TEAMS; its value is the webhook URL"
            )
        return v

    @model_validator(mode="after")
    def _one_target(self) -> Notify:
        if self.webhook_url and self.webhook_setting:
            raise ValueError("give either webhookUrl or webhookSetting, not both")
        return self


class CaptureRequest(WireModel):
    source_vm_id: str
    gallery: GalleryRef
    image_definition: ImageDefinitionSpec
    version: str = VERSION_AUTO
    target_regions: list[TargetRegion] = Field(default_factory=list)
    end_of_life_date: date | None = None
    exclude_from_latest: bool = False
    prepare: Literal["deprovision", "none"]
    vhd_export: VhdExport | None = None
    delete_snapshots: bool = True
    tags: dict[str, str] = Field(default_factory=dict)
    notify: Notify | None = None

    @field_validator("source_vm_id")
    @classmethod
    def _vm_id(cls, v: str) -> str:
        rid = ResourceId.parse(v)
        if rid.namespace.lower() != "microsoft.compute" or rid.type.lower() != "virtualmachines":
            raise ValueError("must be the id of a Microsoft.Compute/virtualMachines resource")
        return str(rid)

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        if v != VERSION_AUTO:
            parse_version(v)
        return v

    @field_validator("target_regions")
    @classmethod
    def _regions(cls, v: list[TargetRegion]) -> list[TargetRegion]:
        seen: set[str] = set()
        for r in v:
            if r.name in seen:
                raise ValueError(f"region {r.name} is listed twice; list each region once")
            seen.add(r.name)
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > 40:
            raise ValueError("at most 40 tags (Azure allows 50 and the pipeline adds its own)")
        for k, val in v.items():
            if not k or len(k) > 512 or any(c in k for c in "<>%&\\?/"):
                raise ValueError(f"tag name {k!r} is not valid in Azure (1-512 chars, none of <>%&\\?/)")
            if len(val) > 256:
                raise ValueError(f"tag {k!r}: values are at most 256 characters")
        return v

    @property
    def vm(self) -> ResourceId:
        return ResourceId.parse(self.source_vm_id)

    @property
    def gallery_subscription_id(self) -> str:
        return self.gallery.subscription_id or self.vm.subscription_id


class FieldError(WireModel):
    field: str
    message: str


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + part
    return path or "(body)"


def validate_request(data: Any) -> tuple[CaptureRequest | None, list[FieldError]]:
    """Validate a decoded JSON body; return the request, or every field error with its path and reason."""
    if not isinstance(data, dict):
        return None, [FieldError(field="(body)", message="must be a JSON object")]
    try:
        return CaptureRequest.model_validate(data, context=INTAKE), []
    except ValidationError as exc:
        errors = []
        for e in exc.errors():
            loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            msg = e["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            if e["type"] == "extra_forbidden":
                msg = "unknown field"
            errors.append(FieldError(field=_loc_to_path(loc), message=msg))
        return None, errors
