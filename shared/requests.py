"""The capture request (``POST /api/captures``, queue messages) and its validation.

Validation collects every problem at once, each with the JSON path of the field and why,
so a caller fixes a bad request in one round trip. At intake (``validate_request``) every name and id
is held to Azure's rules and every boolean and integer must be a JSON boolean or number, so nothing the
app accepts can fail on a name after the VM is generalized. A request read back from orchestration
input (``from_wire``) is parsed leniently: inputs stored by earlier versions keep replaying.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared import endpoints
from shared.ids import ResourceId, resource_group_problem, subscription_id_problem, vm_name_problem
from shared.model_base import WireModel

VERSION_AUTO = "auto"
# Patterns are used with fullmatch (``$`` accepts a trailing newline) and spell ASCII classes out (``\d``
# accepts Arabic-Indic or fullwidth digits, which Azure refuses in a version).
_VERSION = re.compile(r"([0-9]+)\.([0-9]+)\.([0-9]+)")
_INT32_MAX = 2**31 - 1
_REGION = re.compile(r"[a-z][a-z0-9]{1,39}")
_GALLERY_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.]{0,78}[A-Za-z0-9])?")
_DEFINITION_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,78}[A-Za-z0-9])?")
_CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]\Z")
# The image definition's identifier (publisher, offer, sku): the portal's rule (letters, digits, '.', '-',
# '_', 1-128 characters); the ARM spec states no limit.
IDENTIFIER_MAX = 128
_IDENTIFIER = re.compile(rf"[A-Za-z0-9._-]{{1,{IDENTIFIER_MAX}}}")
DESCRIPTION_MAX = 1024
# Each target region holds at least one replica, and an image version has at most 100 replicas.
MAX_TARGET_REGIONS = 100
MAX_TAGS = 40
MAX_FIELD_ERRORS = 50
MAX_ERROR_TEXT = 1000
StorageAccountType = Literal["Standard_LRS", "Standard_ZRS", "Premium_LRS", "PremiumV2_LRS"]
# How the VM becomes an image. "inPlace": the VM itself is generalized (it can never start again) and its
# disks are snapshotted.
CaptureMode = Literal["inPlace"]
CAPTURE_MODE_EFFECT = (
    '"inPlace" generalizes the VM itself: it can never be started again. The guest must already be '
    'deprovisioned, or send prepare: "deprovision" to let the pipeline do it'
)


def parse_version(value: str) -> tuple[int, int, int]:
    """Parse ``Major.Minor.Patch`` (ASCII digits, each a non-negative 32-bit int); raise ValueError otherwise."""
    m = _VERSION.fullmatch(value)
    if not m:
        raise ValueError("must be 'auto' or Major.Minor.Patch with ASCII digits 0-9, e.g. 1.4.0")
    parts = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    if any(p > _INT32_MAX for p in parts):
        raise ValueError(f"each part of a version must be at most {_INT32_MAX}")
    return parts


def _intake(info: ValidationInfo) -> bool:
    return bool((info.context or {}).get("intake"))


def _strict_bool(value: Any, info: ValidationInfo) -> Any:
    if _intake(info) and not isinstance(value, bool):
        raise ValueError("must be true or false (a JSON boolean, not a string or a number)")
    return value


def _strict_int(value: Any, info: ValidationInfo) -> Any:
    if _intake(info) and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError("must be a whole number (a JSON number, not a string or a boolean)")
    return value


# Strict at intake, lenient on replay (pydantic's strict=True would refuse stored inputs too).
IntakeBool = Annotated[bool, BeforeValidator(_strict_bool)]
IntakeInt = Annotated[int, BeforeValidator(_strict_int)]


class GalleryRef(WireModel):
    subscription_id: str | None = None
    resource_group: str
    name: str
    create_if_missing: IntakeBool = True

    @field_validator("subscription_id")
    @classmethod
    def _subscription(cls, v: str | None, info: ValidationInfo) -> str | None:
        problem = subscription_id_problem(v) if v is not None and _intake(info) else None
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("resource_group")
    @classmethod
    def _resource_group(cls, v: str, info: ValidationInfo) -> str:
        problem = resource_group_problem(v) if _intake(info) else None
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str, info: ValidationInfo) -> str:
        if _intake(info) and not _GALLERY_NAME.fullmatch(v):
            raise ValueError("gallery names use letters, digits, '.' and '_' (not at the ends), max 80")
        return v


class ImageDefinitionSpec(WireModel):
    name: str
    publisher: str | None = None
    offer: str | None = None
    sku: str | None = None
    create_if_missing: IntakeBool = True
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str, info: ValidationInfo) -> str:
        if _intake(info) and not _DEFINITION_NAME.fullmatch(v):
            raise ValueError(
                "image definition names use letters, digits, '.', '-', '_' (not at the ends), max 80"
            )
        return v

    @field_validator("publisher", "offer", "sku")
    @classmethod
    def _identifier(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and _intake(info) and not _IDENTIFIER.fullmatch(v):
            raise ValueError(
                f"use 1-{IDENTIFIER_MAX} letters, digits, '.', '-' and '_' (the definition's identifier)"
            )
        return v

    @field_validator("description")
    @classmethod
    def _description(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and _intake(info) and len(v) > DESCRIPTION_MAX:
            raise ValueError(f"at most {DESCRIPTION_MAX} characters (it is {len(v)})")
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
    replica_count: IntakeInt = Field(default=1, ge=1, le=100)
    storage_account_type: StorageAccountType | None = None

    @field_validator("name")
    @classmethod
    def _region(cls, v: str, info: ValidationInfo) -> str:
        norm = v.replace(" ", "").lower()
        if _intake(info) and not _REGION.fullmatch(norm):
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
_WEBHOOK_SETTING = re.compile(rf"^{WEBHOOK_SETTING_PREFIX}[A-Za-z0-9_]{{1,100}}\Z")
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
    exclude_from_latest: IntakeBool = False
    prepare: Literal["deprovision", "none"]
    # Requests stored before capture modes existed were all in place: that is the default on replay.
    capture_mode: CaptureMode = "inPlace"
    vhd_export: VhdExport | None = None
    delete_snapshots: IntakeBool = True
    tags: dict[str, str] = Field(default_factory=dict)
    notify: Notify | None = None

    @field_validator("source_vm_id")
    @classmethod
    def _vm_id(cls, v: str, info: ValidationInfo) -> str:
        rid = ResourceId.parse(v)
        if rid.namespace.lower() != "microsoft.compute" or rid.type.lower() != "virtualmachines":
            raise ValueError("must be the id of a Microsoft.Compute/virtualMachines resource")
        if _intake(info):
            problems = rid.problems()
            name = vm_name_problem(rid.name)
            if name:
                problems.append(f"VM name {rid.name[:80]!r}: {name}")
            if problems:
                raise ValueError("; ".join(problems))
        return str(rid)

    @field_validator("version")
    @classmethod
    def _version(cls, v: str, info: ValidationInfo) -> str:
        if v != VERSION_AUTO and _intake(info):
            parse_version(v)
        return v

    @field_validator("capture_mode", mode="before")
    @classmethod
    def _mode(cls, v: Any, info: ValidationInfo) -> Any:
        if _intake(info) and v != "inPlace":
            raise ValueError(f'must be "inPlace", the only capture mode so far: {CAPTURE_MODE_EFFECT}')
        return v

    @field_validator("target_regions", mode="before")
    @classmethod
    def _regions_bound(cls, v: Any, info: ValidationInfo) -> Any:
        if _intake(info) and isinstance(v, list) and len(v) > MAX_TARGET_REGIONS:
            raise ValueError(
                f"at most {MAX_TARGET_REGIONS} target regions ({len(v)} given): an image version holds at "
                "most 100 replicas, at least one per region"
            )
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

    @field_validator("end_of_life_date", mode="before")
    @classmethod
    def _end_of_life_text(cls, v: Any, info: ValidationInfo) -> Any:
        if v is not None and _intake(info) and not isinstance(v, str):
            raise ValueError("must be a date written as text, YYYY-MM-DD")
        return v

    @field_validator("end_of_life_date")
    @classmethod
    def _end_of_life_future(cls, v: date | None, info: ValidationInfo) -> date | None:
        # Intake may read the clock (orchestrators may not): a replayed request is never re-judged.
        if v is not None and _intake(info):
            today = datetime.now(UTC).date()
            if v <= today:
                raise ValueError(
                    f"must be in the future (today is {today.isoformat()} UTC): a version whose end of life "
                    "has passed is refused"
                )
        return v

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_bound(cls, v: Any, info: ValidationInfo) -> Any:
        if _intake(info) and isinstance(v, dict) and len(v) > MAX_TAGS:
            raise ValueError(f"at most {MAX_TAGS} tags (Azure allows 50 and the pipeline adds its own)")
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > MAX_TAGS:
            raise ValueError(f"at most {MAX_TAGS} tags (Azure allows 50 and the pipeline adds its own)")
        for k, val in v.items():
            if not k or len(k) > 512 or any(c in k for c in "<>%&\\?/"):
                raise ValueError(
                    f"tag name {k[:100]!r} is not valid in Azure (1-512 chars, none of <>%&\\?/)"
                )
            if len(val) > 256:
                raise ValueError(f"tag {k[:100]!r}: values are at most 256 characters")
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


_MORE = "… ("


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded_errors(errors: list[FieldError], limit: int = MAX_FIELD_ERRORS) -> list[FieldError]:
    """At most ``limit`` errors, each with a bounded path and message; the rest counted in a last entry.
    Idempotent: a list bounded already (its count entry last) is returned as is."""
    if len(errors) == limit + 1 and errors[-1].message.startswith(_MORE):
        return list(errors)
    out = [
        FieldError(field=_clip(e.field, 300), message=_clip(e.message, MAX_ERROR_TEXT))
        for e in errors[:limit]
    ]
    if len(errors) > limit:
        out.append(FieldError(field="(body)", message=f"{_MORE}{len(errors) - limit} more errors not shown)"))
    return out


def _pydantic_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    for e in exc.errors(include_url=False, include_input=False):
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        errors.append(FieldError(field=_loc_to_path(loc), message=msg))
    return errors


def validate_request(
    data: Any, *, require_capture_mode: bool = False
) -> tuple[CaptureRequest | None, list[FieldError]]:
    """Validate a decoded JSON body; return the request, or every field error with its path and reason.

    ``require_capture_mode``: the request must name ``captureMode`` (queue messages: whoever may write to
    the queue is not necessarily someone who may destroy a VM by accident).
    """
    if not isinstance(data, dict):
        return None, [FieldError(field="(body)", message="must be a JSON object")]
    errors: list[FieldError] = []
    if require_capture_mode and "captureMode" not in data:
        errors.append(
            FieldError(
                field="captureMode",
                message=f'required on queue messages: send "captureMode": "inPlace". {CAPTURE_MODE_EFFECT}',
            )
        )
    request: CaptureRequest | None = None
    try:
        request = CaptureRequest.model_validate(data, context=INTAKE)
    except ValidationError as exc:
        errors += _pydantic_errors(exc)
    if errors:
        return None, bounded_errors(errors)
    return request, []
