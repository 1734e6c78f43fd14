"""The field rules of the capture request: Azure's name rules, the limits, and the intake switch.

Strict checks run when a request comes in (``shared.requests.validate_request`` passes ``INTAKE`` as the
validation context). A request read back from orchestration input is not re-checked: an in-flight capture
started before a check existed must still replay. The validators here are therefore lenient unless
``is_intake`` says otherwise.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ValidationInfo

from shared import endpoints
from shared.field_errors import FieldError
from shared.model_base import WireModel

INTAKE = {"intake": True}

# Patterns are used with fullmatch (``$`` accepts a trailing newline) and spell ASCII classes out (``\d``
# accepts Arabic-Indic or fullwidth digits, which Azure refuses in a version).
VERSION_AUTO = "auto"
_VERSION = re.compile(r"([0-9]+)\.([0-9]+)\.([0-9]+)")
_INT32_MAX = 2**31 - 1
REGION = re.compile(r"[a-z][a-z0-9]{1,39}")
GALLERY_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.]{0,78}[A-Za-z0-9])?")
DEFINITION_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,78}[A-Za-z0-9])?")
CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]\Z")
# The image definition's identifier (publisher, offer, sku): the portal's rule (letters, digits, '.', '-',
# '_', 1-128 characters); the ARM spec states no limit.
IDENTIFIER_MAX = 128
IDENTIFIER = re.compile(rf"[A-Za-z0-9._-]{{1,{IDENTIFIER_MAX}}}")
DESCRIPTION_MAX = 1024
# Each target region holds at least one replica, and an image version has at most 100 replicas.
MAX_TARGET_REGIONS = 100
MAX_TAGS = 40

# App settings a request may name as its webhook (notify.webhookSetting): only these, so a request can never
# point the app at an unrelated setting (a storage connection string, a client secret) and have it used as a URL.
WEBHOOK_SETTING_PREFIX = "NOTICE_WEBHOOK_"
WEBHOOK_SETTING = re.compile(rf"^{WEBHOOK_SETTING_PREFIX}[A-Za-z0-9_]{{1,100}}\Z")


def parse_version(value: str) -> tuple[int, int, int]:
    """Parse ``Major.Minor.Patch`` (ASCII digits, each a non-negative 32-bit int); raise ValueError otherwise."""
    m = _VERSION.fullmatch(value)
    if not m:
        raise ValueError("must be 'auto' or Major.Minor.Patch with ASCII digits 0-9, e.g. 1.4.0")
    parts = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    if any(p > _INT32_MAX for p in parts):
        raise ValueError(f"each part of a version must be at most {_INT32_MAX}")
    return parts


def is_intake(info: ValidationInfo) -> bool:
    """Whether this validation is of a request coming in (strict) rather than one read back (lenient)."""
    return bool((info.context or {}).get("intake"))


def _intake_version(value: str, info: ValidationInfo) -> str:
    if value != VERSION_AUTO and is_intake(info):
        parse_version(value)
    return value


def twice_listed(names: list[str]) -> list[str]:
    """The names listed more than once, in the order of their second listing."""
    seen: set[str] = set()
    twice: list[str] = []
    for name in names:
        if name in seen and name not in twice:
            twice.append(name)
        seen.add(name)
    return twice


def _strict_bool(value: Any, info: ValidationInfo) -> Any:
    if is_intake(info) and not isinstance(value, bool):
        raise ValueError("must be true or false (a JSON boolean, not a string or a number)")
    return value


def _strict_int(value: Any, info: ValidationInfo) -> Any:
    if is_intake(info) and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError("must be a whole number (a JSON number, not a string or a boolean)")
    return value


# Strict at intake, lenient on replay (pydantic's strict=True would refuse stored inputs too).
IntakeBool = Annotated[bool, BeforeValidator(_strict_bool)]
IntakeInt = Annotated[int, BeforeValidator(_strict_int)]
# A version field: "auto" (the pipeline picks the next one), or Major.Minor.Patch (checked at intake).
IntakeVersion = Annotated[str, AfterValidator(_intake_version)]


def webhook_url_problem(url: str, *, allow_loopback: bool | None = None) -> str | None:
    """Why a webhook URL may not be stored in a request (the request is orchestration input: plain text
    in the task hub) or be delivered to, or None. Any query string (Logic Apps' ``sig=``, Functions'
    ``code=``, tokens) or user:password in the URL counts; so does a host only the app's network can reach
    (``shared.endpoints``). ``allow_loopback`` defaults to the app setting."""
    if allow_loopback is None:
        from shared.settings import get_settings  # here: settings imports this module's dependants

        allow_loopback = get_settings().webhook_allow_loopback
    return endpoints.webhook_url_problem(url, allow_loopback=allow_loopback)


# How the VM becomes an image. "inPlace": the VM itself is generalized (it can never start again) and its
# disks are snapshotted. "specialized": the VM's disks are snapshotted as they are, into an osState
# Specialized definition; the VM is not generalized (with consistency "stopped" it is deallocated for
# the snapshots and started again). "clone": the VM's disks are copied into a build resource group, a VM
# made of the copies is deprovisioned and generalized instead of the VM, and deleted again.
CaptureMode = Literal["inPlace", "specialized", "clone"]
CAPTURE_MODES: dict[str, str] = {
    "inPlace": "generalizes the VM itself: it can never be started again. The guest must already be "
    'deprovisioned, or send prepare: "deprovision" to let the pipeline do it',
    "specialized": "leaves the VM as it is (no guest step, no generalize) and makes a specialized image "
    '(osState Specialized) of its disks; with consistency "stopped" the VM is deallocated for the '
    "snapshots and started again if it was running",
    "clone": "leaves the VM as it is and makes a generalized image (osState Generalized) of a copy: its disks "
    'are snapshotted (crash-consistent, or with consistency "stopped" deallocated and started again), a VM '
    "made of the copies in the build resource group is deprovisioned (prepare), generalized and captured, "
    "then deleted with everything made for it",
}
CAPTURE_MODE_EFFECT = "; ".join(f'"{m}" {what}' for m, what in CAPTURE_MODES.items())
NOT_YET_MODES: dict[str, str] = {}  # modes named in the API but not built yet (none now)
# "crash": the running VM's disks as they are at that instant; "stopped": the VM deallocated first.
Consistency = Literal["crash", "stopped"]


class CaptureKind(WireModel):
    """How a capture makes its image (status and result): its mode, the snapshots' consistency, the source."""

    capture_mode: str = "inPlace"
    # "crash-consistent" (a running VM's disks) or "stopped"; known once preflight read the power state.
    consistency: str | None = None
    # The source VM: "untouched" (specialized and clone, always), "deprovisioned" or "generalized" (inPlace).
    source_state: str | None = None


def mode_option_errors(data: dict[str, Any]) -> list[FieldError]:
    """The fields that depend on the capture mode: ``prepare`` and ``consistency``."""
    # A null field is an absent one (the model reads it as None); pydantic takes snake_case names too.
    mode = data.get("captureMode", data.get("capture_mode", "inPlace"))
    if mode == "clone" and data.get("prepare") is None:
        return [
            FieldError(
                field="prepare",
                message='required with captureMode "clone": "deprovision" (the pipeline deprovisions the '
                "clone's guest) or \"none\" (the source's guest was deprovisioned already, so its copy is too)",
            )
        ]
    if mode == "inPlace":
        errors = []
        if data.get("prepare") is None:
            errors.append(
                FieldError(
                    field="prepare",
                    message='required with captureMode "inPlace": "deprovision" (the pipeline deprovisions '
                    'the guest) or "none" (the guest was deprovisioned already)',
                )
            )
        if data.get("consistency") is not None:
            errors.append(
                FieldError(
                    field="consistency",
                    message='only with captureMode "specialized" or "clone": "inPlace" always stops the VM (its guest '
                    "shuts down) before the snapshots",
                )
            )
        return errors
    if mode == "specialized" and data.get("prepare") == "deprovision":
        return [
            FieldError(
                field="prepare",
                message='"deprovision" cannot go with captureMode "specialized", which leaves the guest as it '
                'is: leave prepare out (or send "none"), or use captureMode "inPlace"',
            )
        ]
    return []
