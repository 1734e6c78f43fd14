"""Event Grid trigger webhook: ``/runtime/webhooks/eventgrid?functionName=<name>``, as the host's extension.

- ``OPTIONS`` with ``WebHook-Request-Origin`` (CloudEvents abuse protection) → 200 with
  ``WebHook-Allowed-Origin`` echoing the origin.
- ``POST`` with ``aeg-event-type: SubscriptionValidation`` (Event Grid schema) → 200
  ``{"validationResponse": "<validationCode>"}``.
- ``POST`` with ``aeg-event-type: Notification``: an Event Grid schema array, or CloudEvents as a single
  object or an array. The function runs once per event with ``func.EventGridEvent`` (or the worker's
  ``CloudEvent`` for CloudEvents). All succeeded → 202; any failed → 500 so Event Grid retries.
  A CloudEvents body without the header is accepted too (tools often omit it).
- ``SubscriptionDeletion`` → 202; unknown function → 404; other headers/bodies → 400.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from azure.functions import meta

from devhost.functions import FunctionInfo

log = logging.getLogger("devhost.eventgrid")

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"


def build_event(event: dict[str, Any]) -> Any:
    converter = meta.get_binding_registry().get("eventGridTrigger")
    return converter.decode(meta.Datum(json.dumps(event), "json"), trigger_metadata={})


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


async def handle_eventgrid(
    request: web.Request,
    find_function: Callable[[str], FunctionInfo | None],
    invoke: Callable[[FunctionInfo, Any], Awaitable[Any]],
) -> web.StreamResponse:
    if request.method == "OPTIONS":
        origin = request.headers.get("WebHook-Request-Origin")
        if not origin:
            return _json(
                400, {"error": "OPTIONS needs a WebHook-Request-Origin header (CloudEvents handshake)."}
            )
        headers = {"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*", "Allow": "POST, OPTIONS"}
        return web.Response(status=200, headers=headers)
    if request.method != "POST":
        return _json(405, {"error": "Event Grid deliveries are POST requests."})
    name = request.query.get("functionName", "")
    info = find_function(name)
    if info is None:
        return _json(404, {"error": f"No Event Grid trigger function named '{name}'."})
    kind = request.headers.get("aeg-event-type", "")
    try:
        body = json.loads(await request.text() or "null")
    except ValueError as exc:
        return _json(400, {"error": f"request body is not JSON: {exc}"})
    is_cloud = (isinstance(body, dict) and "specversion" in body) or (
        isinstance(body, list) and bool(body) and isinstance(body[0], dict) and "specversion" in body[0]
    )
    if kind == "SubscriptionValidation":
        events = body if isinstance(body, list) else [body]
        for ev in events:
            if isinstance(ev, dict) and ev.get("eventType") == VALIDATION_EVENT:
                code = (ev.get("data") or {}).get("validationCode")
                if code:
                    log.info("event grid %s: subscription validation answered", info.name)
                    return _json(200, {"validationResponse": code})
        return _json(400, {"error": "SubscriptionValidation without a validationCode."})
    if kind == "SubscriptionDeletion":
        return web.Response(status=202)
    if kind != "Notification" and not (kind == "" and is_cloud):
        return _json(400, {"error": f"unsupported aeg-event-type '{kind}'."})
    events = body if isinstance(body, list) else [body]
    if not events or not all(isinstance(e, dict) for e in events):
        return _json(400, {"error": "expected an event object or an array of events."})
    failed = 0
    for ev in events:
        log.info(
            "event grid %s: event %s (%s)", info.name, ev.get("id"), ev.get("eventType") or ev.get("type")
        )
        try:
            await invoke(info, build_event(ev))
        except Exception as exc:
            failed += 1
            log.error(
                "event grid %s: function failed for event %s: %s: %s",
                info.name,
                ev.get("id"),
                type(exc).__name__,
                exc,
            )
    if failed:
        return _json(
            500, {"error": f"{failed} of {len(events)} events failed; Event Grid will retry the delivery."}
        )
    return web.Response(status=202)
