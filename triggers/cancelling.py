"""The opening every cancel endpoint shares (``triggers.http_cancel``, ``triggers.migration_cancel``).

Both read the id from the route (an id of the wrong kind is answered 404 before it reaches the Durable
client), the optional ``{"reason": "…"}`` body (too large or too deep: 413/400 naming the limit; any
other body: no reason), then the instance (none: 404; already ended: the endpoint's 409), and build the
event data the instance and its children are sent. Each endpoint keeps its own answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from shared.bounded_json import BodyProblem, decode_json
from shared.instances import InstanceSnapshot
from triggers.http_helpers import body_refused
from triggers.status_reader import read_instance

CANCEL_EVENT = "cancel"
REASON_CHARS = 500  # a longer reason is cut here


def cancel_reason(req: func.HttpRequest) -> tuple[str | None, BodyProblem | None]:
    """The optional reason, or why the body was refused (too large or too deep; other bodies: no reason)."""
    raw = req.get_body() or b""
    if not raw.strip():
        return None, None
    body, problem = decode_json(raw)
    if problem is not None:
        return None, problem if problem.reason in ("TooLarge", "TooDeep") else None
    if isinstance(body, dict) and isinstance(body.get("reason"), str):
        return body["reason"][:REASON_CHARS], None
    return None, None


@dataclass(frozen=True)
class CancelAsked:
    """A cancel to go ahead with: the running instance, as read, and the event data to send it."""

    instance_id: str
    status: InstanceSnapshot
    data: dict[str, Any]


async def open_cancel(
    req: func.HttpRequest,
    client: df.DurableOrchestrationClient,
    is_id: Callable[[str], bool],
    not_found: Callable[[str], func.HttpResponse],
    ended: Callable[[str, InstanceSnapshot], func.HttpResponse],
) -> CancelAsked | func.HttpResponse:
    """The cancel to go ahead with, or the answer that ends the request (404, 413/400, ``ended``'s 409)."""
    instance_id = req.route_params.get("id", "")
    if not is_id(instance_id):
        return not_found(instance_id)
    reason, problem = cancel_reason(req)
    if problem is not None:
        return body_refused(problem.message, problem.status)
    status = await read_instance(client, instance_id)
    if status is None:
        return not_found(instance_id)
    if not status.active:
        return ended(instance_id, status)
    data = {"reason": reason, "requestedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    return CancelAsked(instance_id, status, data)
