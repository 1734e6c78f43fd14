"""Event Grid webhook ``capture_on_deallocation``: a tagged VM that was deallocated is captured.

An HTTP-triggered function (``POST, OPTIONS /api/eventgrid/deallocations``, function key), not the
Functions Event Grid trigger binding: with the binding, the host answers the delivery itself, a
malformed ``eventTime`` fails in the worker before any code of ours runs, and any failure answers
500, so Event Grid redelivers the whole batch, garbage included, for a day. Here the app answers:

- ``OPTIONS`` with ``WebHook-Request-Origin`` (the CloudEvents handshake) → 200 allowing that origin;
- ``aeg-event-type: SubscriptionValidation`` → 200 ``{"validationResponse": <code>}``, or 400 when the
  delivery holds no validation event with a ``data.validationCode`` string;
- a delivery that cannot be read at all (``shared.events.load_delivery``: too large, not JSON, nested
  too deeply, not an array or object, too many events) → 400 / 413, which Event Grid does not retry;
- otherwise (``Notification``, or no header for CloudEvents) every event is handled alone and the
  answer is 200 — a malformed, forged or stale event is logged in one line and skipped — unless one
  event hit a transient failure (ARM throttling, the Durable client): then 503, so Event Grid redelivers
  the batch and the duplicate checks skip the events already handled.

For each event:

1. not a successful VM deallocation (``shared.events``) → debug log; malformed, in the future or older
   than Event Grid's time-to-live → one warning; nothing starts;
2. one ARM read of the VM (tags + instance view); a VM that is gone → warning;
3. no ``image-pipeline:*`` tag → debug log; ``image-pipeline:enabled=false`` → info; invalid tags, or no
   ``image-pipeline:mode`` (``inPlace`` or ``specialized``) → one ERROR naming every bad tag and why;
   nothing starts. A ``specialized`` VM is captured as it is (its snapshots are stopped-consistent:
   it is deallocated) and stays deallocated;
4. the VM is not deallocated now (started again since: the event is stale) → warning, nothing —
   capturing a running VM with ``prepare: none`` would capture a guest that was not deprovisioned;
5. duplicate, out-of-order or replayed delivery (``guards.event_skip_reason``: judged against the VM's
   last capture) → info, nothing;
6. otherwise the capture starts with ``prepare: none``, trigger ``eventgrid``; the request's tags
   record ``image-pipeline:event-id`` and ``image-pipeline:deallocated-at`` (they land on the snapshots
   and the image version too, and are what step 5 compares against next time).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from shared.errors import CaptureError
from shared.events import (
    DeallocationEvent,
    DeliveryRefused,
    IgnoredEvent,
    load_delivery,
    parse_event,
    validation_code,
)
from shared.ids import capture_instance_id
from shared.vm_tags import TAG_DEALLOCATED_AT, TAG_EVENT_ID, TagParse, request_from_tags
from triggers.guards import VmView, event_skip_reason, previous_capture, read_vm
from triggers.http_helpers import error_body, json_response
from triggers.starting import start_capture, version_conflict_message

log = logging.getLogger(__name__)
eventgrid_bp = df.Blueprint()

ROUTE = "eventgrid/deallocations"
RETRY = "retry"  # the outcome of an event that hit a transient failure: the delivery answers 503
VM_CONCURRENCY = 8  # VMs handled at once; the events of one VM are handled in time order, one by one
_ORIGIN = re.compile(r"^[A-Za-z0-9.\-:*]{1,253}$")


def _json(body: Any, status: int, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return json_response(body, status, headers, compact=True)  # Event Grid reads it, not people


def _error(status: int, code: str, message: str) -> func.HttpResponse:
    return _json(error_body(code, message), status)


async def handle_event(client: df.DurableOrchestrationClient, raw: Any, now: datetime | None = None) -> str:
    """Act on one event; return what was done (``ignored`` | ``refused`` | … | ``started``)."""
    parsed = parse_event(raw, now or datetime.now(UTC))
    if isinstance(parsed, IgnoredEvent):
        return _skipped(parsed)
    return await _guarded(client, parsed)


def _skipped(event: IgnoredEvent) -> str:
    """Log an event that starts nothing (one line) and name its outcome."""
    if event.refused:
        log.warning("event %r (%r) skipped: %s", event.event_id, event.event_type, event.reason)
        return "refused"
    log.debug("event %r (%r) ignored: %s", event.event_id, event.event_type, event.reason)
    return "ignored"


async def _guarded(client: df.DurableOrchestrationClient, event: DeallocationEvent) -> str:
    """``_handle_deallocation``, with failures sorted into retry-later (transient) and skip (terminal)."""
    try:
        return await _handle_deallocation(client, event)
    except CaptureError as exc:
        if exc.info.kind == "transient":
            log.warning(
                "deallocation event %s: %s; Event Grid will redeliver it", event.event_id, exc.info.message
            )
            return RETRY
        log.error(
            "deallocation event %s for %s was not handled: %s %s",
            event.event_id,
            event.vm_id,
            exc.info.message,
            exc.info.advice or "",
        )
        return "failed"
    except Exception as exc:  # the Durable client or the host: worth a redelivery
        log.warning(
            "deallocation event %s: %s: %s; Event Grid will redeliver it",
            event.event_id,
            type(exc).__name__,
            str(exc)[:300],
        )
        return RETRY


def _not_capturable(event: DeallocationEvent, vm: VmView, parse: TagParse) -> str | None:
    """Why the VM an event names is not captured (its tags, or it runs again), logged; None if it is."""
    if not parse.opted_in:
        log.debug("deallocation event %s: %s has no image-pipeline tags; ignored", event.event_id, vm.name)
        return "untagged"
    if not parse.enabled:
        log.info(
            "deallocation event %s: %s has image-pipeline:enabled=false; not captured",
            event.event_id,
            vm.name,
        )
        return "disabled"
    if parse.request is None:
        log.error(
            "deallocation event %s: %s is tagged for capture but its tags are invalid, so it was not captured. "
            "Fix these tags, then start and deallocate the VM again (or POST /api/captures): %s",
            event.event_id,
            vm.id,
            parse.describe_errors(),
        )
        return "invalid-tags"
    if vm.power_state != "deallocated":
        log.warning(
            "deallocation event %s (%s): %s is %s now, so the event is stale; not captured",
            event.event_id,
            event.event_time_iso,
            vm.name,
            vm.power_state,
        )
        return "stale"
    return None


async def _handle_deallocation(client: df.DurableOrchestrationClient, event: DeallocationEvent) -> str:
    vm = await asyncio.to_thread(read_vm, event.vm_id)
    if vm is None:
        log.warning(
            "deallocation event %s: VM %s no longer exists; nothing to capture", event.event_id, event.vm_id
        )
        return "vm-gone"
    parse = request_from_tags(
        vm.id, vm.tags, extra_tags={TAG_EVENT_ID: event.event_id, TAG_DEALLOCATED_AT: event.event_time_iso}
    )
    refused = _not_capturable(event, vm, parse)
    if refused is not None or parse.request is None:  # (a request of None is refused: "invalid-tags")
        return refused or "invalid-tags"
    instance_id = capture_instance_id(vm.id)
    prev = await previous_capture(client, instance_id)
    skip = event_skip_reason(prev, event, vm_generalized=vm.generalized)
    if skip:
        log.info("deallocation event %s for %s: not started: %s", event.event_id, vm.name, skip)
        return "duplicate"
    outcome = await start_capture(client, parse.request, trigger="eventgrid")
    if outcome.version_holder is not None:
        log.error(
            "deallocation event %s for %s: not started: %s",
            event.event_id,
            vm.name,
            version_conflict_message(parse.request, outcome.version_holder),
        )
        return "version-taken"
    if not outcome.started:
        log.info(
            "deallocation event %s for %s: capture %s is already %s",
            event.event_id,
            vm.name,
            instance_id,
            outcome.runtime_status,
        )
        return "duplicate"
    log.info(
        "capture %s started for %s by deallocation event %s (%s)",
        instance_id,
        vm.id,
        event.event_id,
        event.event_time_iso,
    )
    return "started"


async def handle_events(
    client: df.DurableOrchestrationClient, events: list[Any], now: datetime
) -> dict[str, int]:
    """Handle every event of a delivery; return how many ended how (by ``handle_event``'s outcome)."""
    counts: dict[str, int] = {}
    by_vm: dict[str, list[DeallocationEvent]] = {}
    for raw in events:
        parsed = parse_event(raw, now)
        if isinstance(parsed, DeallocationEvent):
            by_vm.setdefault(parsed.vm_id.lower(), []).append(parsed)
        else:
            outcome = _skipped(parsed)
            counts[outcome] = counts.get(outcome, 0) + 1
    gate = asyncio.Semaphore(VM_CONCURRENCY)

    async def one_vm(vm_events: list[DeallocationEvent]) -> list[str]:
        async with gate:
            return [await _guarded(client, e) for e in sorted(vm_events, key=lambda e: e.event_time)]

    for outcomes in await asyncio.gather(*(one_vm(v) for v in by_vm.values())):
        for outcome in outcomes:
            counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _header(headers: Mapping[str, str], name: str) -> str:
    return next((str(v) for k, v in headers.items() if k.lower() == name.lower()), "")


def _options(headers: Mapping[str, str]) -> func.HttpResponse:
    origin = _header(headers, "WebHook-Request-Origin").strip()
    if not _ORIGIN.match(origin):
        return _error(400, "InvalidHandshake", "OPTIONS needs a WebHook-Request-Origin header naming a host")
    allowed = {"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*", "Allow": "POST, OPTIONS"}
    return func.HttpResponse(status_code=200, headers=allowed)


async def handle_request(
    client: df.DurableOrchestrationClient,
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime | None = None,
) -> func.HttpResponse:
    """Answer one request to the webhook (see the module docstring). Never raises."""
    if method.upper() == "OPTIONS":
        return _options(headers)
    kind = _header(headers, "aeg-event-type").strip().lower()
    loaded = load_delivery(body)
    if isinstance(loaded, DeliveryRefused):
        log.warning("event grid delivery refused with %s: %s", loaded.status, loaded.message)
        name = "DeliveryTooLarge" if loaded.status == 413 else "InvalidDelivery"
        return _error(loaded.status, name, loaded.message)
    if kind == "subscriptionvalidation":
        code = validation_code(loaded)
        if code is None:
            return _error(
                400,
                "InvalidHandshake",
                "a SubscriptionValidation delivery must hold a Microsoft.EventGrid.SubscriptionValidationEvent "
                "whose data.validationCode is a string",
            )
        log.info("event grid subscription validation answered")
        return _json({"validationResponse": code}, 200)
    if kind in ("subscriptiondeletion", "unsubscribe"):
        return _json({}, 200)
    if kind not in ("notification", ""):
        return _error(400, "InvalidDelivery", f"unsupported aeg-event-type {kind[:64]!r}")
    counts = await handle_events(client, loaded, now or datetime.now(UTC))
    summary = {"received": len(loaded), "outcomes": counts}
    if counts.get(RETRY):
        return _json(summary, 503, headers={"Retry-After": "30"})
    return _json(summary, 200)


@eventgrid_bp.route(route=ROUTE, methods=["POST", "OPTIONS"], auth_level=func.AuthLevel.FUNCTION)
@eventgrid_bp.durable_client_input(client_name="client")
async def capture_on_deallocation(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    return await handle_request(client, req.method, req.headers, req.get_body() or b"")
