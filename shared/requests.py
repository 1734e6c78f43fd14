"""The capture request (``POST /api/captures``, queue messages) and its validation.

Validation collects every problem at once, each with the JSON path of the field and why,
so a caller fixes a bad request in one round trip. At intake (``validate_request``) every name and id
is held to Azure's rules and every boolean and integer must be a JSON boolean or number, so nothing the
app accepts can fail on a name after the VM is generalized. A request read back from orchestration
input (``from_wire``) is parsed leniently: inputs stored by earlier versions keep replaying.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from shared import endpoints
from shared.field_errors import FieldError, bounded_errors, pydantic_errors
from shared.ids import resource_group_problem, subscription_id_problem
from shared.marketplace_spec import MarketplaceSpec, marketplace_errors
from shared.model_base import WireModel
from shared.release_spec import RetentionSpec, ShareSpec, release_errors
from shared.request_rules import (
    CAPTURE_MODE_EFFECT,
    CAPTURE_MODES,
    CONTAINER,
    DEFINITION_NAME,
    DESCRIPTION_MAX,
    GALLERY_NAME,
    IDENTIFIER,
    IDENTIFIER_MAX,
    INTAKE,
    MAX_TAGS,
    MAX_TARGET_REGIONS,
    NOT_YET_MODES,
    REGION,
    VERSION_AUTO,
    WEBHOOK_SETTING,
    WEBHOOK_SETTING_PREFIX,
    CaptureMode,
    Consistency,
    IntakeBool,
    IntakeInt,
    IntakeVersion,
    is_intake,
    mode_option_errors,
    twice_listed,
    webhook_url_problem,
)
from shared.source_intake import is_vm_source, source_errors
from shared.sources import SourceFields
from shared.verify_spec import VerifySpec

StorageAccountType = Literal["Standard_LRS", "Standard_ZRS", "Premium_LRS", "PremiumV2_LRS"]


class GalleryRef(WireModel):
    subscription_id: str | None = None
    resource_group: str
    name: str
    create_if_missing: IntakeBool = True

    @field_validator("subscription_id")
    @classmethod
    def _subscription(cls, v: str | None, info: ValidationInfo) -> str | None:
        problem = subscription_id_problem(v) if v is not None and is_intake(info) else None
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("resource_group")
    @classmethod
    def _resource_group(cls, v: str, info: ValidationInfo) -> str:
        problem = resource_group_problem(v) if is_intake(info) else None
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str, info: ValidationInfo) -> str:
        if is_intake(info) and not GALLERY_NAME.fullmatch(v):
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
        if is_intake(info) and not DEFINITION_NAME.fullmatch(v):
            raise ValueError(
                "image definition names use letters, digits, '.', '-', '_' (not at the ends), max 80"
            )
        return v

    @field_validator("publisher", "offer", "sku")
    @classmethod
    def _identifier(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and is_intake(info) and not IDENTIFIER.fullmatch(v):
            raise ValueError(
                f"use 1-{IDENTIFIER_MAX} letters, digits, '.', '-' and '_' (the definition's identifier)"
            )
        return v

    @field_validator("description")
    @classmethod
    def _description(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and is_intake(info) and len(v) > DESCRIPTION_MAX:
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
        if is_intake(info) and not REGION.fullmatch(norm):
            raise ValueError("must be an Azure region name such as westeurope or eastus2")
        return norm


def each_region_once(
    regions: list[TargetRegion], pick: Callable[[list[str]], str] = operator.itemgetter(0)
) -> list[TargetRegion]:
    """``regions``, or a ValueError naming a region listed twice (``pick`` chooses which: by default the first
    found twice)."""
    twice = twice_listed([r.name for r in regions])
    if twice:
        raise ValueError(f"region {pick(twice)} is listed twice; list each region once")
    return regions


class VhdExport(WireModel):
    account_url: str
    container: str

    @field_validator("account_url")
    @classmethod
    def _url(cls, v: str, info: ValidationInfo) -> str:
        if is_intake(info):
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
        if not CONTAINER.match(v):
            raise ValueError("container names are 3-63 lowercase letters, digits and single hyphens")
        return v


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
        if is_intake(info):
            problem = webhook_url_problem(v)
            if problem:
                raise ValueError(problem)
        elif not re.match(r"^https?://", v):
            raise ValueError("must be an http(s) URL")
        return v

    @field_validator("webhook_setting")
    @classmethod
    def _setting(cls, v: str | None) -> str | None:
        if v is not None and not WEBHOOK_SETTING.match(v):
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


class CaptureRequest(SourceFields):
    gallery: GalleryRef
    image_definition: ImageDefinitionSpec
    version: IntakeVersion = VERSION_AUTO
    target_regions: list[TargetRegion] = Field(default_factory=list)
    end_of_life_date: date | None = None
    exclude_from_latest: IntakeBool = False
    # Required for inPlace and clone (validate_request); a specialized capture has no guest step.
    prepare: Literal["deprovision", "none"] | None = Field(
        default=None,
        description='Required with captureMode "inPlace": "deprovision" (the pipeline deprovisions the guest '
        'through Run Command) or "none" (done already); with "clone" the same, for the clone\'s guest. Not with '
        '"specialized".',
    )
    # Requests stored before capture modes existed were all in place: that is the default on replay.
    capture_mode: CaptureMode = Field(
        default="inPlace",
        description=f"How the VM becomes an image: {CAPTURE_MODE_EFFECT}. Required in every request (a 400 without it: it is never assumed).",
    )
    consistency: Consistency | None = Field(
        default=None,
        description='captureMode "specialized" or "clone" only: "crash" (default; the running VM\'s disks as they are) '
        'or "stopped" (the VM is deallocated for the snapshots, then started again if it was running).',
    )
    vhd_export: VhdExport | None = None
    delete_snapshots: IntakeBool = True
    tags: dict[str, str] = Field(default_factory=dict)
    notify: Notify | None = None
    # Release stages after publish (shared.release_spec): keep the newest versions; grant roles on the gallery.
    retention: RetentionSpec | None = None
    share: ShareSpec | None = None
    marketplace: MarketplaceSpec | None = None  # shared.marketplace_spec
    verify: VerifySpec | None = None  # the boot test before promotion (shared.verify_spec)

    @field_validator("capture_mode", mode="before")
    @classmethod
    def _mode(cls, v: Any, info: ValidationInfo) -> Any:
        if not is_intake(info) or (isinstance(v, str) and v in CAPTURE_MODES):
            return v
        if isinstance(v, str) and v in NOT_YET_MODES:
            raise ValueError(
                f'"{v}" ({NOT_YET_MODES[v]}) is not available in this version; the available modes: '
                f"{CAPTURE_MODE_EFFECT}"
            )
        raise ValueError(f"must be one of the capture modes: {CAPTURE_MODE_EFFECT}")

    @property
    def effective_consistency(self) -> Consistency:
        """The consistency asked for: "crash" unless "stopped" was asked (inPlace: always stopped)."""
        if self.capture_mode == "inPlace":
            return "stopped"
        return self.consistency or "crash"

    @field_validator("target_regions", mode="before")
    @classmethod
    def _regions_bound(cls, v: Any, info: ValidationInfo) -> Any:
        if is_intake(info) and isinstance(v, list) and len(v) > MAX_TARGET_REGIONS:
            raise ValueError(
                f"at most {MAX_TARGET_REGIONS} target regions ({len(v)} given): an image version holds at "
                "most 100 replicas, at least one per region"
            )
        return v

    @field_validator("target_regions")
    @classmethod
    def _regions(cls, v: list[TargetRegion]) -> list[TargetRegion]:
        return each_region_once(v)

    @field_validator("end_of_life_date", mode="before")
    @classmethod
    def _end_of_life_text(cls, v: Any, info: ValidationInfo) -> Any:
        if v is not None and is_intake(info) and not isinstance(v, str):
            raise ValueError("must be a date written as text, YYYY-MM-DD")
        return v

    @field_validator("end_of_life_date")
    @classmethod
    def _end_of_life_future(cls, v: date | None, info: ValidationInfo) -> date | None:
        # Intake may read the clock (orchestrators may not): a replayed request is never re-judged.
        if v is not None and is_intake(info):
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
        if is_intake(info) and isinstance(v, dict) and len(v) > MAX_TAGS:
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
    def gallery_subscription_id(self) -> str:
        return self.gallery.subscription_id or self.image_source.subscription_id


def validate_request(
    data: Any, *, require_capture_mode: bool = True
) -> tuple[CaptureRequest | None, list[FieldError]]:
    """Validate a decoded JSON body; return the request, or every field error with its path and reason.

    ``require_capture_mode``: the request must name ``captureMode`` (HTTP and queue alike: "inPlace" destroys
    the VM as a VM, so it is never a default; the Event Grid path names it in the VM's mode tag).
    """
    if not isinstance(data, dict):
        return None, [FieldError(field="(body)", message="must be a JSON object")]
    from shared.settings import get_settings  # here: settings imports this module's dependants

    errors = source_errors(data, get_settings().storage_endpoints)
    vm_source = is_vm_source(data)
    if vm_source and require_capture_mode and "captureMode" not in data:
        errors.append(
            FieldError(
                field="captureMode",
                message=f"required (never assumed): send one of the capture modes: {CAPTURE_MODE_EFFECT}",
            )
        )
    from shared.settings import get_settings  # here: settings imports this module's dependants

    data = get_settings().release.fill(data)  # the settings' retention/share where the request has none
    errors += (mode_option_errors(data) if vm_source else []) + release_errors(data)
    errors += marketplace_errors(data)
    request: CaptureRequest | None = None
    try:
        request = CaptureRequest.model_validate(data, context=INTAKE)
    except ValidationError as exc:
        errors += pydantic_errors(exc)
    if errors:
        return None, bounded_errors(errors)
    return request, []
