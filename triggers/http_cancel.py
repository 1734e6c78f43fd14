"""``POST /api/captures/{id}/cancel``: ask a running capture to stop at its next safe point and clean up.

Answers (JSON):
- **202** ``{"id", "runtimeStatus", "message", "captureStatusUri"}``: the external event ``cancel`` was raised
  to the capture and to its running sub-orchestrations (``<run-id>:version``, ``<run-id>:export:<disk>``,
  the run id read from the capture's custom status); the
  status (``GET /api/captures/{id}``) shows the cancellation and what was cleaned up. Cancelling twice is
  harmless.
- **404** ``CaptureNotFound``: no capture with that id.
- **409** ``CaptureAlreadyFinished``: the capture already ended (Completed, Failed, Terminated): there is
  nothing left to stop, and the body says how it ended.

An optional JSON body ``{"reason": "…"}`` is recorded with the cancellation (at most 500 characters).
The body has the same bounds as a capture request (size, nesting depth: 413/400 naming the limit); an id
that cannot be a capture id is answered 404 before it reaches the Durable client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from shared.ids import is_capture_id
from shared.instances import InstanceSnapshot
from shared.status_view import capture_progress, shown_runtime_status, sub_instance_ids
from triggers.cancelling import CANCEL_EVENT, open_cancel
from triggers.http_helpers import capture_url, error_body, json_response, not_found
from triggers.status_reader import is_active, read_instance

log = logging.getLogger(__name__)
cancel_bp = df.Blueprint()

# How long to wait for the capture to acknowledge the cancel before forwarding it to its sub-orchestrations
# (see _forward): the capture never creates a sub-orchestration after it has seen the event.
ACK_TIMEOUT_SECONDS = 5.0


# The sub-orchestrations a capture's current run may have started (the name the tests know it by).
sub_instances = sub_instance_ids


async def _forward(client: df.DurableOrchestrationClient, instance_id: str, data: dict[str, Any]) -> None:
    """Raise ``cancel`` to the capture's running sub-orchestrations (they wait for it at their own safe points).

    An orchestrator cannot raise events itself, so the endpoint does it. It first waits (briefly) until
    the capture has taken the event or ended: after that the capture starts no new sub-orchestration,
    so the ones found then are all there will be.
    """
    deadline = time.monotonic() + ACK_TIMEOUT_SECONDS
    status = await read_instance(client, instance_id)
    while time.monotonic() < deadline:
        cs = status.custom_status if status else None
        acked = isinstance(cs, dict) and (cs.get("cancelRequested") or cs.get("state") != "running")
        if acked or status is None or not status.active:
            break
        await asyncio.sleep(0.2)
        status = await read_instance(client, instance_id)
    for child in sub_instance_ids(instance_id, status.custom_status if status else None):
        if await is_active(client, child):
            try:
                await client.raise_event(child, CANCEL_EVENT, data)
            except Exception as exc:  # it just finished: nothing to stop there
                log.info("cancel of %s: %s did not take the event: %s", instance_id, child, exc)


def _finished(instance_id: str, message: str, runtime_status: str, url: str) -> func.HttpResponse:
    body = {
        **error_body("CaptureAlreadyFinished", message),
        "id": instance_id,
        "runtimeStatus": runtime_status,
        "captureStatusUri": url,
    }
    return json_response(body, 409)


def _ended(req: func.HttpRequest, instance_id: str, status: InstanceSnapshot) -> func.HttpResponse:
    name = shown_runtime_status(status.runtime_status, capture_progress(status.custom_status))
    message = (
        f"Capture {instance_id} already ended ({name}): there is nothing to cancel. "
        "See its status for the result."
    )
    return _finished(instance_id, message, name, capture_url(req, instance_id))


@cancel_bp.route(route="captures/{id}/cancel", methods=["POST"])
@cancel_bp.durable_client_input(client_name="client")
async def cancel_capture(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    asked = await open_cancel(req, client, is_capture_id, not_found, lambda i, s: _ended(req, i, s))
    if isinstance(asked, func.HttpResponse):
        return asked
    instance_id, data = asked.instance_id, asked.data
    url = capture_url(req, instance_id)
    try:
        await client.raise_event(instance_id, CANCEL_EVENT, data)
    except Exception as exc:  # finished between our read and the raise (410) or vanished (404)
        log.info("cancel of %s: raising the event failed: %s", instance_id, exc)
        again = await read_instance(client, instance_id)
        if again is None:
            return not_found(instance_id)
        message = f"Capture {instance_id} ended ({again.runtime_status}) before the cancellation reached it."
        return _finished(instance_id, message, again.runtime_status, url)
    await _forward(client, instance_id, data)
    log.info("cancel of capture %s requested", instance_id)
    return json_response(
        {
            "id": instance_id,
            "runtimeStatus": asked.status.runtime_status,
            "message": "Cancellation requested: the capture stops at its next safe point, aborts running copies, "
            "revokes disk access and removes what it created when deleteSnapshots is true. Follow "
            "captureStatusUri for the outcome.",
            "captureStatusUri": url,
        },
        202,
    )
