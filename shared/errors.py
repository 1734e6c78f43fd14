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
from typing import Any

from pydantic import ConfigDict, ValidationError

from shared.model_base import WireModel
from shared.redaction import redact

_ENVELOPE = re.compile(r"CAPTURE-ERROR<<(.*?)>>", re.DOTALL)
# The envelope's keys, in their order (snake_case: failure texts recorded by earlier code carry them so).
_ENVELOPE_KEYS = ("kind", "step", "code", "message", "resource", "advice", "azure_code")


class ErrorInfo(WireModel):
    """What went wrong: the ``error`` of the status API, of the completion notice and of the failure envelope.

    On the wire (``to_wire``) it is camelCase in the field order below; the envelope (``to_dict``) keeps
    the snake_case keys it always had, and both spellings parse. The named constructors below are the
    catalog of the pipeline's own errors; errors from Azure come from ``translate_azure_error`` and
    ``operation_failure``.
    """

    model_config = ConfigDict(frozen=True)

    step: str
    code: str
    message: str
    kind: str | None = None  # "transient" | "terminal" (None in statuses written without it: terminal)
    resource: str | None = None
    advice: str | None = None
    azure_code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The envelope form (snake_case keys, absent values left out)."""
        values = {k: getattr(self, k) for k in _ENVELOPE_KEYS}
        return {k: v for k, v in values.items() if v is not None}

    @classmethod
    def from_info(cls, info: ErrorInfo) -> ErrorInfo:
        """``info`` as shown in a status or notice: message and advice redacted once more."""
        return info.model_copy(
            update={"message": redact(info.message), "advice": redact(info.advice) if info.advice else None}
        )

    @classmethod
    def terminal(
        cls,
        step: str,
        code: str,
        message: str,
        *,
        resource: str | None = None,
        advice: str | None = None,
        azure_code: str | None = None,
    ) -> ErrorInfo:
        """A failure retrying will not fix (the capture stops at once)."""
        return cls(
            kind="terminal",
            step=step,
            code=code,
            message=message,
            resource=resource,
            advice=advice,
            azure_code=azure_code,
        )

    @classmethod
    def preflight_failed(cls, resource: str, problems: list[str], vm_name: str) -> ErrorInfo:
        """The request cannot be captured as asked: every problem, and that nothing was changed."""
        return cls.terminal(
            "preflight",
            "PreflightFailed",
            "; ".join(p.rstrip(". ") for p in problems),
            resource=resource,
            advice=f"Nothing was changed: {vm_name} is untouched. Fix the request and send it again.",
        )

    @classmethod
    def timed_out(cls, step: str, code: str, message: str, *, resource: str | None, advice: str) -> ErrorInfo:
        """A wait of the pipeline's own (a power state, snapshots, replication, a deletion) ran out of time."""
        return cls.terminal(step, code, message, resource=resource, advice=advice)

    @classmethod
    def azure_failed(
        cls,
        step: str,
        azure_code: str | None,
        message: str,
        *,
        fallback_code: str,
        resource: str | None,
        advice: str,
        transient: bool = False,
    ) -> ErrorInfo:
        """An operation Azure reported as failed: Azure's code (``fallback_code`` when it gave none)."""
        info = cls.terminal(
            step,
            azure_code or fallback_code,
            message,
            resource=resource,
            advice=advice,
            azure_code=azure_code,
        )
        return info.model_copy(update={"kind": "transient"}) if transient else info

    @classmethod
    def canceled(cls, step: str, message: str, *, resource: str | None = None) -> ErrorInfo:
        """The capture (or one of its branches) stopped because a cancel was requested."""
        return cls(step=step, code="Canceled", kind="terminal", message=message, resource=resource)


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


def parse_failure(text: str) -> ErrorInfo | None:
    """Recover the ``ErrorInfo`` from a failure message the Durable SDK raised in an orchestrator."""
    m = _ENVELOPE.search(text)
    if not m:
        return None
    try:
        return ErrorInfo.model_validate(json.loads(m.group(1)))
    except (ValueError, ValidationError):
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
# Azure error codes that say "this may pass: try again" (ARM/Compute spell them so in operation
# statuses and error bodies). An LRO that ends Failed with one of them is retried, not fatal.
TRANSIENT_CODES = frozenset(
    code.lower()
    for code in (
        "InternalExecutionError",
        "InternalOperationError",
        "InternalServerError",
        "OperationPreempted",
        "RetryableError",
        "ServerBusy",
        "ServiceUnavailable",
        "TooManyRequests",
        "GatewayTimeout",
        "OperationTimedOut",
        "SubscriptionRequestsThrottled",
        "AzureTransient",
        "AzureUnreachable",
    )
)
_RETRY_HINTS = (
    "please retry later",
    "please try again later",
    "retry the operation",
    "another operation is in progress",
)
_LRO_ADVICE = (
    "Azure's operation failed for a reason a retry will not fix: check the resource's activity log for "
    "this code, fix the cause, then run the capture again."
)


def code_text(code: object) -> str | None:
    """Azure's error code as Azure spells it on the wire (an SDK enum member gives its value, not its repr)."""
    if code is None:
        return None
    value = getattr(code, "value", code)
    text = str(value).strip()
    return text or None


def is_transient(code: str | None, status: int | None = None, message: str | None = None) -> bool:
    """True when a failure with this Azure code / HTTP status / message is worth retrying later."""
    if code and code.lower() in TRANSIENT_CODES:
        return True
    if status in _TRANSIENT_STATUS or (status is not None and 500 <= status < 600):
        return True
    text = (message or "").lower()
    return any(hint in text for hint in _RETRY_HINTS)


def operation_failure(
    error: dict[str, Any] | None,
    *,
    step: str,
    resource: str | None = None,
    status: str = "Failed",
) -> CaptureError:
    """The error of a long-running operation that ended ``Failed``/``Canceled`` (its ARM operation status).

    Transient codes come back as ``TransientAzureError`` (the owner of that class retries them);
    anything else is terminal, with Azure's code, its message and advice.
    """
    error = error if isinstance(error, dict) else {}
    code = code_text(error.get("code")) or (
        "OperationCanceled" if status.lower() == "canceled" else "OperationFailed"
    )
    message = str(error.get("message") or f"the operation ended {status} without an error from Azure")
    text = (
        f"Azure's operation to {step}"
        + (f" on {resource}" if resource else "")
        + f" ended {status}: {code}: {message}"
    )
    if is_transient(code, None, message):
        return TransientAzureError(text, step=step, resource=resource, code=code, azure_code=code)
    return AzureOperationError(
        text, step=step, resource=resource, code=code, azure_code=code, advice=_ADVICE.get(code, _LRO_ADVICE)
    )


def _body_error(exc: Any) -> dict[str, Any] | None:
    """The ``error`` object of a failed response's JSON body (an ARM error or an operation status)."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    try:
        body = json.loads(response.text())
    except Exception:
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        return error
    if str(body.get("status") or "").lower() in ("failed", "canceled"):
        return {}
    return None


def translate_azure_error(exc: BaseException, *, step: str, resource: str | None = None) -> CaptureError:
    """Map an azure-core (or transport) exception onto our hierarchy. The only such place."""
    # Imported here so orchestrators (which import shared.errors for parse_failure) never load azure-core.
    from azure.core.exceptions import (
        ClientAuthenticationError,
        DecodeError,
        DeserializationError,
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
    if isinstance(exc, DecodeError | DeserializationError | json.JSONDecodeError):
        # An accepted long-running operation answers with an empty body; the start activities are
        # idempotent, so reading the outcome again (a retry) is safe.
        return TransientAzureError(
            f"Azure's answer while trying to {step}"
            + (f" on {resource}" if resource else "")
            + " could not be read (an operation still running, or a truncated response); it will be read again",
            step=step,
            resource=resource,
            code="UnreadableAzureResponse",
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
        return _translate_http(exc, step=step, resource=resource)
    return AzureOperationError(
        f"Unexpected error while trying to {step}: {type(exc).__name__}: {exc}", step=step, resource=resource
    )


def _translate_http(exc: Any, *, step: str, resource: str | None) -> CaptureError:
    status = exc.status_code or 0
    if 200 <= status < 300:
        # A poller's failure: the response is the ARM operation status (``{"status": "Failed", "error"}``).
        return operation_failure(_body_error(exc), step=step, resource=resource)
    azure_code = None
    azure_message = None
    if exc.error is not None:
        azure_code = code_text(exc.error.code)
        azure_message = exc.error.message
    azure_code = azure_code or code_text(getattr(exc, "error_code", None)) or str(status or "Error")
    azure_message = azure_message or exc.reason or str(exc)
    text = f"Azure answered {status} {azure_code} while trying to {step}"
    if resource:
        text += f" on {resource}"
    text += f": {azure_message}"
    cls: type[CaptureError] = (
        TransientAzureError if is_transient(azure_code, status, azure_message) else AzureOperationError
    )
    return cls(
        text,
        step=step,
        resource=resource,
        code=azure_code,
        azure_code=azure_code,
        advice=_ADVICE.get(azure_code),
    )
