"""``POST /api/migrations/{id}/cancel``: stop starting captures, and cancel the running ones.

The event ``cancel`` goes to the migration, then (once it took it: it starts no batch after that) to
its running batches, then (once each took it: it starts no capture after that) to each batch's running
captures and, through ``triggers.http_cancel``, to their own sub-orchestrations. Each capture stops at
its next safe point and cleans up as a canceled capture does; no source image is deleted after the
cancel. Answers as the capture's cancel: **202**, **404** ``MigrationNotFound``, **409**
``MigrationAlreadyFinished``; an optional body ``{"reason": "…"}`` is recorded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from shared.api_bodies import ErrorDetail
from shared.ids import is_capture_id
from shared.instances import InstanceSnapshot
from shared.migration_api import MigrationAlreadyFinished, MigrationCancelAccepted
from shared.migrations import is_migration_id
from triggers.cancelling import CANCEL_EVENT, open_cancel
from triggers.http_cancel import _forward
from triggers.http_helpers import json_response
from triggers.http_migrations import migration_not_found
from triggers.migration_view import batch_entries, migration_url, root_progress
from triggers.status_reader import is_active, read_instance

log = logging.getLogger(__name__)
migration_cancel_bp = df.Blueprint()
ACK_TIMEOUT_SECONDS = 5.0


async def _raise(client: df.DurableOrchestrationClient, instance_id: str, data: dict[str, Any]) -> bool:
    try:
        await client.raise_event(instance_id, CANCEL_EVENT, data)
        return True
    except Exception as exc:  # it just ended: nothing to stop there
        log.info("cancel: %s did not take the event: %s", instance_id, exc)
        return False


async def _acked(client: df.DurableOrchestrationClient, instance_id: str, busy: tuple[str, ...]) -> Any:
    """The instance's custom status once it took the cancel (or ended), waiting at most ACK_TIMEOUT_SECONDS."""
    deadline = time.monotonic() + ACK_TIMEOUT_SECONDS
    while True:
        snap = await read_instance(client, instance_id)
        cs = snap.custom_status if snap else None
        taken = isinstance(cs, dict) and (cs.get("cancelRequested") or cs.get("state") not in busy)
        if snap is None or not snap.active or taken or time.monotonic() > deadline:
            return snap
        await asyncio.sleep(0.2)


async def _cancel_batch(client: df.DurableOrchestrationClient, batch_id: str, data: dict[str, Any]) -> None:
    if not await is_active(client, batch_id) or not await _raise(client, batch_id, data):
        return
    await _acked(client, batch_id, ("running",))
    batch = await batch_entries(client, batch_id)
    running = [
        e.capture_id for e in (batch.entries if batch else []) if e.state == "running" and e.capture_id
    ]
    await asyncio.gather(*(_cancel_capture(client, c, data) for c in running if is_capture_id(c)))


async def _cancel_capture(
    client: df.DurableOrchestrationClient, capture_id: str, data: dict[str, Any]
) -> None:
    if await is_active(client, capture_id) and await _raise(client, capture_id, data):
        await _forward(client, capture_id, data)


def _finished(mid: str, message: str, runtime_status: str | None, url: str) -> func.HttpResponse:
    body = MigrationAlreadyFinished(
        error=ErrorDetail(code="MigrationAlreadyFinished", message=message),
        id=mid,
        runtime_status=runtime_status,
        migration_status_uri=url,
    )
    return json_response(body.to_wire(), 409)


def _ended(req: func.HttpRequest, mid: str, status: InstanceSnapshot) -> func.HttpResponse:
    message = f"Migration {mid} already ended ({status.runtime_status}): there is nothing to cancel."
    return _finished(mid, message, status.runtime_status, migration_url(req, mid))


@migration_cancel_bp.route(route="migrations/{id}/cancel", methods=["POST"])
@migration_cancel_bp.durable_client_input(client_name="client")
async def cancel_migration(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    asked = await open_cancel(
        req, client, is_migration_id, migration_not_found, lambda i, s: _ended(req, i, s)
    )
    if isinstance(asked, func.HttpResponse):
        return asked
    mid, data = asked.instance_id, asked.data
    url = migration_url(req, mid)
    if not await _raise(client, mid, data):
        return _finished(mid, f"Migration {mid} ended before the cancellation reached it.", None, url)
    root = await _acked(client, mid, ("listing", "running"))
    progress = root_progress(root) if root is not None else None
    await asyncio.gather(*(_cancel_batch(client, b, data) for b in (progress.batches if progress else [])))
    log.info("cancel of migration %s requested", mid)
    accepted = MigrationCancelAccepted(
        id=mid,
        runtime_status=asked.status.runtime_status,
        message="Cancellation requested: no capture is started any more and no source image deleted; the "
        "running captures stop at their next safe point and clean up. Follow migrationStatusUri.",
        migration_status_uri=url,
    )
    return json_response(accepted.to_wire(), 202)
