"""The one place that turns what Azure said (azure-core exceptions, failed LRO statuses) into ``CaptureError``.

It keeps Azure's code and message as Azure spells them, decides transient or terminal (a transient one
is retried, ``orchestrators.retrying``), and adds advice; ``shared.errors`` holds the error model.
"""

from __future__ import annotations

import json
from typing import Any

from shared.errors import AzureOperationError, CaptureError, TransientAzureError

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
        # No capacity for the VM size now (a VM create or start): "retry later" (azure-capture-paths §9).
        "AllocationFailed",
        "ZonalAllocationFailed",
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
