"""``POST /api/captures/{id}/cancel``: ask a running capture to stop at its next safe point and clean up.

Answers (JSON):
- **202** ``{"id", "runtimeStatus", "message", "captureStatusUri"}``: the external event ``cancel`` was raised
  to the capture and to its running sub-orchestrations (``<id>:version``, ``<id>:export:<disk>``); the
  status (``GET /api/captures/{id}``) shows the cancellation and what was cleaned up. Cancelling twice is
  harmless.
- **404** ``CaptureNotFound``: no capture with that id.
- **409** ``CaptureAlreadyFinished``: the capture already ended (Completed, Failed, Terminated): there is
  nothing left to stop, and the body says how it ended.

An optional JSON body ``{"reason": "…"}`` is recorded with the cancellation (at most 500 characters).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from shared.status import CaptureProgress, export_instance_id, version_instance_id
from triggers.starting import ACTIVE_STATES, runtime_status_name

log = logging.getLogger(__name__)
cancel_bp = df.Blueprint()

CANCEL_EVENT = "cancel"


def _json(body: Any, status: int) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, indent=2), status_code=status, mimetype="application/json")


def _not_found(instance_id: str) -> func.HttpResponse:
    return _json(
        {"error": {"code": "CaptureNotFound", "message": f"There is no capture with id {instance_id!r}."}},
        404,
    )


def _capture_url(req: func.HttpRequest, instance_id: str) -> str:
    base = req.url.split("?", 1)[0].rstrip("/")
    return base.rsplit("/captures/", 1)[0] + f"/captures/{instance_id}"


def _reason(req: func.HttpRequest) -> str | None:
    try:
        body = json.loads(req.get_body() or b"null")
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("reason"), str):
        return body["reason"][:500]
    return None


def sub_instances(capture_id: str, custom_status: Any) -> list[str]:
    """The sub-orchestrations a capture may have started, from its custom status (disks known after preflight)."""
    ids = [version_instance_id(capture_id)]
    value = custom_status
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if isinstance(value, dict):
        try:
            progress = CaptureProgress.from_wire(value)
        except ValueError:
            progress = None
        if progress is not None and progress.export:
            ids += [export_instance_id(capture_id, d.key) for d in progress.disks]
    return ids


@cancel_bp.route(route="captures/{id}/cancel", methods=["POST"])
@cancel_bp.durable_client_input(client_name="client")
async def cancel_capture(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = req.route_params.get("id", "")
    if not instance_id.startswith("capture-") or ":" in instance_id:
        return _not_found(instance_id)
    status = await client.get_status(instance_id)
    name = runtime_status_name(status)
    if status is None or name is None:
        return _not_found(instance_id)
    url = _capture_url(req, instance_id)
    if name not in ACTIVE_STATES:
        return _json(
            {
                "error": {
                    "code": "CaptureAlreadyFinished",
                    "message": f"Capture {instance_id} already ended ({name}): there is nothing to cancel. "
                    "See its status for the result.",
                },
                "id": instance_id,
                "runtimeStatus": name,
                "captureStatusUri": url,
            },
            409,
        )
    data = {"reason": _reason(req), "requestedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    try:
        await client.raise_event(instance_id, CANCEL_EVENT, data)
    except Exception as exc:  # finished between our read and the raise (410) or vanished (404)
        log.info("cancel of %s: raising the event failed: %s", instance_id, exc)
        again = runtime_status_name(await client.get_status(instance_id))
        if again is None:
            return _not_found(instance_id)
        return _json(
            {
                "error": {
                    "code": "CaptureAlreadyFinished",
                    "message": f"Capture {instance_id} ended ({again}) before the cancellation reached it.",
                },
                "id": instance_id,
                "runtimeStatus": again,
                "captureStatusUri": url,
            },
            409,
        )
    # The sub-orchestrations wait for the same event at their own safe points (copy and replication polls).
    for child in sub_instances(instance_id, status.custom_status):
        child_status = runtime_status_name(await client.get_status(child))
        if child_status in ACTIVE_STATES:
            try:
                await client.raise_event(child, CANCEL_EVENT, data)
            except Exception as exc:  # it just finished: nothing to stop there
                log.info("cancel of %s: %s did not take the event: %s", instance_id, child, exc)
    log.info("cancel of capture %s requested", instance_id)
    return _json(
        {
            "id": instance_id,
            "runtimeStatus": name,
            "message": "Cancellation requested: the capture stops at its next safe point, aborts running copies, "
            "revokes disk access and removes what it created when deleteSnapshots is true. Follow "
            "captureStatusUri for the outcome.",
            "captureStatusUri": url,
        },
        202,
    )
