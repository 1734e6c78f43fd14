"""Queue trigger: a capture request dropped on ``%CAPTURE_REQUESTS_QUEUE%`` (default ``capture-requests``).

The message body is the same JSON as ``POST /api/captures``, with one more rule: ``captureMode`` is
required (``"inPlace"``: the VM is generalized and can never start again). Whoever may write to the queue
(queue data access on the host's storage) is a wider group than function-key holders, so a message must
say explicitly that it means to consume the VM. The same bounds as on HTTP apply (``MAX_BODY_BYTES``,
``MAX_JSON_DEPTH``). The function only validates and starts
(or dedupes) the orchestration, so poison messages stay rare and redeliveries are harmless:

- valid, and the VM exists → the capture starts with the VM's deterministic instance id, trigger
  ``queue``. A redelivered or duplicated message never starts a second capture: not while one runs
  (same instance id), and not after (``guards.queue_skip_reason``); it is logged and dropped.
- invalid — too large, too deeply nested, not UTF-8, not JSON, schema errors, or a VM that does not exist or cannot be read for a
  reason retrying will not fix (404, 403) — one message goes to ``<queue>-poison`` keeping the original
  body plus the reason and every validation error; the function then returns normally, so the host does
  not retry a message that can never succeed (and does not poison it a second time). Nothing is started.
- a transient failure (ARM throttling or unreachable, the Durable client) raises: the host retries the
  message and after ``maxDequeueCount`` (host.json) moves it unchanged to the poison queue itself.

Unknown VM: checked here with one ARM read (GET of the VM), so a typo in ``sourceVmId`` lands in the
poison queue with a clear reason instead of a failed capture nobody asked to watch.

Connection: ``AzureWebJobsStorage`` (a connection string, or identity-based
``AzureWebJobsStorage__queueServiceUri``); the poison message is written through the same connection.
The app setting ``CAPTURE_REQUESTS_QUEUE`` must exist (the host resolves ``%…%`` from app settings).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from shared.bounded_json import decode_json
from shared.errors import CaptureError, TransientAzureError
from shared.field_errors import FieldError, bounded_errors
from shared.queues import queue_client
from shared.requests import CaptureRequest, validate_request
from shared.settings import get_settings
from triggers.guards import previous_capture, queue_skip_reason, read_vm
from triggers.starting import start_capture, version_conflict_message

log = logging.getLogger(__name__)
queue_bp = df.Blueprint()

CONNECTION = "AzureWebJobsStorage"
# A storage-queue message is at most 64 KiB, and the host's messages are base64 (4 bytes per 3): the poison
# message's JSON must stay under 48 KiB. The original body is shortened (and said so) to fit.
POISON_MAX_BYTES = 45 * 1024


def poison_queue_name(queue: str) -> str:
    return f"{queue}-poison"


def poison_message(
    msg: func.QueueMessage, *, queue: str, reason: str, message: str, errors: list[FieldError]
) -> dict[str, Any]:
    """The poison message: why the message was refused, and its original body (as text, or base64 if it is not
    UTF-8), shortened if needed so the whole poison message fits a queue message."""
    body = msg.get_body()
    out: dict[str, Any] = {
        "reason": reason,
        "message": message,
        "errors": [e.to_wire() for e in bounded_errors(errors)],
        "queue": queue,
        "messageId": msg.id,
        "dequeueCount": msg.dequeue_count,
        "insertionTime": msg.insertion_time.isoformat() if msg.insertion_time else None,
        "rejectedAt": datetime.now(UTC).isoformat(),
    }
    try:
        key, original = "originalBody", body.decode("utf-8")
    except UnicodeDecodeError:
        key, original = "originalBodyBase64", base64.b64encode(body).decode("ascii")
    room = POISON_MAX_BYTES - len(json.dumps(out))
    if len(json.dumps(original)) > room:
        out["originalBodyBytes"] = len(body)
        out["originalBodyTruncated"] = True
        cut = max(0, room - 200)
        while cut and len(json.dumps(original[:cut])) > room - 100:
            cut = cut * 3 // 4  # escapes (\uXXXX) make the JSON text longer than the characters
        original = original[:cut]
    out[key] = original
    return out


def _send_poison(payload: dict[str, Any], queue: str) -> None:
    queue_client(poison_queue_name(queue), connection=CONNECTION).send_message(json.dumps(payload))


async def _reject(
    msg: func.QueueMessage, queue: str, reason: str, message: str, errors: list[FieldError]
) -> None:
    payload = poison_message(msg, queue=queue, reason=reason, message=message, errors=errors)
    await asyncio.to_thread(_send_poison, payload, queue)
    details = "; ".join(f"{e.field}: {e.message}" for e in bounded_errors(errors, limit=10))
    log.error(
        "capture request %s on %s rejected (%s): %s%s — moved to %s",
        msg.id,
        queue,
        reason,
        message,
        f" [{details}]" if details else "",
        poison_queue_name(queue),
    )


async def _valid_request(msg: func.QueueMessage, queue: str) -> CaptureRequest | None:
    """The message's request, or None after poisoning it with the reason (never raises for a bad body)."""
    data, problem = decode_json(msg.get_body())
    if problem is not None:
        err = FieldError(field="(body)", message=problem.message)
        await _reject(msg, queue, problem.reason, f"the message body was refused: {problem.message}", [err])
        return None
    try:
        request, errors = validate_request(data, require_capture_mode=True)
    except Exception as exc:  # a bug in validation must not make the host retry and poison without a reason
        log.exception("validating queue message %s failed", msg.id)
        err = FieldError(field="(body)", message=f"validation failed unexpectedly ({type(exc).__name__})")
        await _reject(msg, queue, "ValidationFailed", "the capture request could not be validated", [err])
        return None
    if request is not None:
        return request
    if [e.field for e in errors] == ["captureMode"]:
        reason, text = (
            "CaptureModeRequired",
            f"captureMode is required on queue messages: {errors[0].message}",
        )
    else:
        reason, text = "InvalidRequest", "the capture request is not valid"
    await _reject(msg, queue, reason, text, errors)
    return None


async def _vm_readable(msg: func.QueueMessage, queue: str, vm_id: str) -> bool:
    """Whether the source VM exists and can be read; rejects the message (dead letter) when not."""
    try:
        vm = await asyncio.to_thread(read_vm, vm_id)
    except TransientAzureError:
        raise  # the host retries the message
    except CaptureError as exc:
        err = FieldError(
            field="sourceVmId", message=exc.info.message + (f" {exc.info.advice}" if exc.info.advice else "")
        )
        await _reject(msg, queue, "VmNotReadable", "the source VM cannot be read", [err])
        return False
    if vm is None:
        err = FieldError(
            field="sourceVmId",
            message=f"the VM {vm_id} does not exist (or the app's identity cannot see it)",
        )
        await _reject(msg, queue, "VmNotFound", "the source VM does not exist", [err])
        return False
    return True


@queue_bp.queue_trigger(arg_name="msg", queue_name="%CAPTURE_REQUESTS_QUEUE%", connection=CONNECTION)
@queue_bp.durable_client_input(client_name="client")
async def capture_from_queue(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    queue = get_settings().capture_requests_queue
    request = await _valid_request(msg, queue)
    if request is None:
        return

    # Only a VM source is read here (other sources are checked by the capture's preflight).
    if request.source_vm_id is not None and not await _vm_readable(msg, queue, request.source_vm_id):
        return

    instance_id = request.capture_id
    prev = await previous_capture(client, instance_id)
    skip = queue_skip_reason(prev, msg.insertion_time, request.to_wire())
    if skip:
        log.info("capture request %s on %s not started: %s", msg.id, queue, skip)
        return
    outcome = await start_capture(client, request, trigger="queue")
    if outcome.version_holder is not None:
        text = version_conflict_message(request, outcome.version_holder)
        await _reject(msg, queue, "VersionAlreadyTargeted", text, [FieldError(field="version", message=text)])
        return
    if outcome.started:
        log.info("capture %s started for %s from queue message %s", instance_id, request.source_id, msg.id)
    else:
        log.info(
            "capture request %s on %s not started: capture %s of this VM is already %s",
            msg.id,
            queue,
            instance_id,
            outcome.runtime_status,
        )
