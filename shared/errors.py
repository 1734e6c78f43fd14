"""The capture's error hierarchy and the one place that translates azure-core exceptions.

Activities raise ``CaptureError`` subclasses. Their message carries a machine-readable
envelope so the orchestrator, which only ever sees the failure text the Durable host
passes back (``"Activity function 'x' failed: CaptureError: …"``), can recover the error's
class (transient or terminal), the step, the resource and Azure's code without parsing prose.

Retry ownership (one owner per failure class):
- a single transient HTTP failure (429 with Retry-After, 5xx, connection reset) is retried by
  azure-core's RetryPolicy inside the activity (configured in ``shared.clients``);
- a transient failure that outlasts those retries surfaces as ``TransientAzureError`` and is
  retried by the orchestrator with a durable timer (``orchestrators.retrying``);
- everything else is terminal and fails the capture at once, with Azure's code and message.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from shared.redaction import redact

_ENVELOPE = re.compile(r"CAPTURE-ERROR<<(.*?)>>", re.DOTALL)


@dataclass(frozen=True)
class ErrorInfo:
    """What went wrong, in the shape the status API and the completion notice show."""

    kind: str  # "transient" | "terminal"
    step: str
    code: str
    message: str
    resource: str | None = None
    advice: str | None = None
    azure_code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class CaptureError(Exception):
    """Base of every error the capture reports. ``str()`` embeds the envelope for the orchestrator."""

    kind = "terminal"
    default_code = "CaptureFailed"

    def __init__(
        self,
        message: str,
        *,
        step: str,
        code: str | None = None,
        resource: str | None = None,
        advice: str | None = None,
        azure_code: str | None = None,
    ) -> None:
        self.info = ErrorInfo(
            kind=self.kind,
            step=step,
            code=code or self.default_code,
            message=redact(message),
            resource=resource,
            advice=redact(advice) if advice else None,
            azure_code=azure_code,
        )
        super().__init__(self._render())

    def _render(self) -> str:
        human = self.info.message + (f" {self.info.advice}" if self.info.advice else "")
        payload = json.dumps(self.info.to_dict(), ensure_ascii=True).replace(">", "\\u003e")
        return f"{human} CAPTURE-ERROR<<{payload}>>"


class TransientAzureError(CaptureError):
    """Azure kept failing in a way that may pass (throttling, 5xx, timeouts): worth retrying later."""

    kind = "transient"
    default_code = "AzureTransient"


class AzureOperationError(CaptureError):
    """Azure refused or failed an operation for a reason that retrying will not fix."""

    default_code = "AzureOperationFailed"


class PreflightError(CaptureError):
    """The request cannot be captured as asked; nothing irreversible has happened."""

    default_code = "PreflightFailed"


class GuestPreparationError(CaptureError):
    """The in-guest deprovision/sysprep step failed or did not stop the VM in time."""

    default_code = "GuestPreparationFailed"


class CopyFailedError(CaptureError):
    """A VHD export copy failed, was aborted, or stalled."""

    default_code = "VhdExportFailed"


class ReplicationFailedError(CaptureError):
    """The image version failed to replicate to one or more regions."""

    default_code = "ReplicationFailed"


def parse_failure(text: str) -> ErrorInfo | None:
    """Recover the ``ErrorInfo`` from a failure message the Durable SDK raised in an orchestrator."""
    m = _ENVELOPE.search(text)
    if not m:
        return None
    try:
        data = json.loads(m.group(1))
        return ErrorInfo(**data)
    except (ValueError, TypeError):
        return None


_ADVICE = {
    "AuthorizationFailed": "Grant the Function App's identity the role that includes this action on that scope "
    "(see README: roles).",
    "ResourceNotFound": "Check the resource id and that the identity can see the subscription.",
    "ResourceGroupNotFound": "Check the resource group name, or create it first.",
    "OperationNotAllowed": "The resource is not in a state that allows this operation.",
    "InvalidAuthenticationToken": "Check the Function App's managed identity and the ARM endpoint setting.",
}

_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def translate_azure_error(exc: BaseException, *, step: str, resource: str | None = None) -> CaptureError:
    """Map an azure-core (or transport) exception onto our hierarchy. The only such place."""
    # Imported here so orchestrators (which import shared.errors for parse_failure) never load azure-core.
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, CaptureError):
        return exc
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return TransientAzureError(
            f"Could not reach Azure while trying to {step} {resource or ''}: {exc}".replace("  ", " "),
            step=step,
            resource=resource,
            code="AzureUnreachable",
        )
    if isinstance(exc, ClientAuthenticationError) and not isinstance(exc, HttpResponseError):
        return AzureOperationError(
            f"Could not get a token to {step}: {exc}",
            step=step,
            resource=resource,
            code="AuthenticationFailed",
            advice=_ADVICE["InvalidAuthenticationToken"],
        )
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        azure_code = None
        azure_message = None
        if exc.error is not None:
            azure_code = exc.error.code
            azure_message = exc.error.message
        azure_code = azure_code or getattr(exc, "error_code", None) or str(status or "Error")
        azure_message = azure_message or exc.reason or str(exc)
        text = f"Azure answered {status} {azure_code} while trying to {step}"
        if resource:
            text += f" on {resource}"
        text += f": {azure_message}"
        cls: type[CaptureError] = TransientAzureError if status in _TRANSIENT_STATUS else AzureOperationError
        return cls(
            text,
            step=step,
            resource=resource,
            code=azure_code,
            azure_code=azure_code,
            advice=_ADVICE.get(azure_code),
        )
    return AzureOperationError(
        f"Unexpected error while trying to {step}: {type(exc).__name__}: {exc}", step=step, resource=resource
    )
