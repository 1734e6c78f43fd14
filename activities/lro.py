"""Start an ARM long-running operation without waiting, and read its outcome later.

ARM accepts a PUT/POST/DELETE with 200/201/202, often with an empty body, and reports the outcome
on the operation-status URL (``Azure-AsyncOperation``, else ``Location``): ``InProgress``, then
``Succeeded``, ``Failed`` or ``Canceled`` with Azure's ``error``. The activities here never
deserialize the accepted answer (an empty 202 body is normal, not an error): they keep the status
URL, read the resource back with a GET, and, when it is missing or ``Failed``, ask the operation
why (``read_operation``), classified by ``shared.azure_errors.is_transient``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.core.pipeline import PipelineResponse
from azure.core.rest import HttpRequest
from azure.mgmt.core.exceptions import ARMErrorFormat

from shared import clients
from shared.azure_errors import code_text, is_transient
from shared.contracts import OperationOutcome
from shared.redaction import redact


@dataclass(frozen=True)
class Accepted:
    """What ARM answered when it accepted the operation."""

    status: int | None
    operation_url: str | None


def start(begin: Callable[..., Any], *args: Any, **kwargs: Any) -> Accepted:
    """Call ``begin_*(…, polling=False)`` and keep the accepting answer's status and operation URL.

    The poller is dropped unread: its result would deserialize the (possibly empty) accepted body.
    Errors of the request itself (4xx/5xx) are raised by the SDK as usual. The hook sees every attempt
    of azure-core's retry policy, so only a 2xx answer counts, the last one: after a throttled (429) or
    failed (5xx) first attempt, the operation to follow is the one of the retry that was accepted.
    """
    captured: dict[str, Any] = {}

    def keep(response: PipelineResponse[Any, Any]) -> None:
        if response.http_request.method == "GET" or not 200 <= response.http_response.status_code < 300:
            return
        headers = response.http_response.headers
        captured["status"] = response.http_response.status_code
        captured["url"] = headers.get("Azure-AsyncOperation") or headers.get("Location")

    begin(*args, polling=False, raw_response_hook=keep, **kwargs)
    return Accepted(status=captured.get("status"), operation_url=captured.get("url"))


def read_operation(subscription_id: str, operation_url: str | None) -> OperationOutcome | None:
    """The operation's status and, when it ended Failed/Canceled, Azure's code and message.

    ``None`` without a URL. A URL Azure no longer knows (operations expire) answers ``Unknown``.
    """
    if not operation_url:
        return None
    response = clients.compute(subscription_id).send_request(HttpRequest("GET", operation_url))
    if response.status_code == 404:
        return OperationOutcome(status="Unknown")
    if response.status_code not in (200, 202):
        raise HttpResponseError(response=response, error_format=ARMErrorFormat)
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    status = str(body.get("status") or ("InProgress" if response.status_code == 202 else "Unknown"))
    error = body.get("error") if isinstance(body.get("error"), dict) else None
    if status.lower() not in ("failed", "canceled"):
        return OperationOutcome(status=status)
    code = code_text((error or {}).get("code")) or (
        "OperationCanceled" if status.lower() == "canceled" else "OperationFailed"
    )
    message = redact(str((error or {}).get("message") or f"the operation ended {status} without details"))
    return OperationOutcome(
        status=status, code=code, message=message[:2000], transient=is_transient(code, None, message)
    )


def failed(outcome: OperationOutcome | None) -> bool:
    return outcome is not None and outcome.status.lower() in ("failed", "canceled")
