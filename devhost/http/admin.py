"""``POST /admin/functions/{name}``: run a non-HTTP function on demand, as the host's admin API does.

The body is ``{"input": "<text>"}`` (an empty body counts as ``{"input": ""}``). The host answers
``202 Accepted`` at once and runs the function in the background; so does devhost:

- a timer function runs with ``past_due`` False (the input is ignored, as by the host), also when it is
  disabled (``AzureWebJobs.<name>.Disabled``): the host lets the master key run a disabled function;
- a queue function runs with the input as the message body (no lease, no retries, no poison queue:
  the message never was on the queue), and its output bindings are written when it succeeds.

Other triggers are refused with 400 and what to call instead; an unknown function (or one "in error",
such as a timer with a bad schedule) is 404. The route is an admin route: when devhost runs with
``--require-keys`` only the master key opens it (checked by the server).
"""

from __future__ import annotations

import json
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from azure.storage.queue import QueueMessage as StorageMessage

from devhost.functions import FunctionInfo
from devhost.triggers.bindings import Invoker
from devhost.triggers.queues import build_queue_message, write_queue_outputs
from devhost.triggers.timers import TimerTriggers, build_timer_request, timer_info_json

log = logging.getLogger("devhost.admin")

PREFIX = "/admin/functions/"
_ELSEWHERE = {
    "httpTrigger": "it is an HTTP function: call its route",
    "eventGridTrigger": "post the event to /runtime/webhooks/eventgrid?functionName=<name>",
    "orchestrationTrigger": "start orchestrations through the durable client or the Durable management API",
    "activityTrigger": "activities run when an orchestrator calls them",
}


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


class AdminApi:
    def __init__(
        self,
        functions: dict[str, FunctionInfo],
        timers: TimerTriggers | None,
        invoker: Invoker,
        pool: ThreadPoolExecutor,
        queue_encoding: str,
    ) -> None:
        self.functions = functions
        self.timers = timers
        self.invoker = invoker
        self.pool = pool
        self.queue_encoding = queue_encoding

    def _find(self, name: str) -> FunctionInfo | None:
        found = self.functions.get(name)
        if found is None:
            found = next((f for n, f in self.functions.items() if n.lower() == name.lower()), None)
        return found

    async def handle(self, request: web.Request, name: str) -> web.StreamResponse:
        if request.method != "POST":
            return _json(405, {"error": "run a function with POST /admin/functions/{name}"})
        info = self._find(name)
        if info is None:
            return _json(404, {"error": f"No function named '{name}'."})
        in_error = self.timers.errors.get(info.name) if self.timers is not None else None
        if in_error:
            return _json(404, {"error": f"The '{info.name}' function is in error: {in_error}"})
        if info.trigger_type in _ELSEWHERE:
            return _json(
                400,
                {
                    "error": f"'{info.name}' cannot run from the admin endpoint: {_ELSEWHERE[info.trigger_type]}."
                },
            )
        try:
            raw = await request.text()
            body = json.loads(raw) if raw.strip() else {"input": ""}
        except ValueError as exc:
            return _json(400, {"error": f'the body must be JSON like {{"input": ""}}: {exc}'})
        if not isinstance(body, dict) or not isinstance(body.get("input", ""), str):
            return _json(400, {"error": 'the body must be a JSON object whose "input" is a string'})
        text = str(body.get("input", ""))
        if info.trigger_type == "timerTrigger":
            if self.timers is None or not self.timers.run_now(info.name):
                # a disabled timer function has no schedule running; the master key still runs it
                self.pool.submit(self._run_timer_once, info)
            return web.Response(status=202)
        if info.trigger_type == "queueTrigger":
            self.pool.submit(self._run_queue, info, text)
            return web.Response(status=202)
        return _json(
            400, {"error": f"devhost does not run {info.trigger_type or 'untriggered'} functions on demand."}
        )

    def _run_timer_once(self, info: FunctionInfo) -> None:
        request = build_timer_request(timer_info_json(past_due=False, last=None, nxt=None, monitor=False))
        try:
            result = self.invoker.invoke(info, request)
            write_queue_outputs(result.queue_writes, self.queue_encoding)
            log.info("admin run of %s: succeeded", info.name)
        except Exception as exc:
            log.error("admin run of %s: function failed: %s: %s", info.name, type(exc).__name__, exc)

    def _run_queue(self, info: FunctionInfo, text: str) -> None:
        now = datetime.now(UTC)
        msg = StorageMessage(content=text)
        msg.id, msg.pop_receipt, msg.dequeue_count = str(uuid.uuid4()), "", 1
        msg.inserted_on, msg.expires_on, msg.next_visible_on = now, now + timedelta(days=7), now
        try:
            result = self.invoker.invoke(info, build_queue_message(msg, text.encode("utf-8")))
            write_queue_outputs(result.queue_writes, self.queue_encoding)
            log.info("admin run of %s: succeeded", info.name)
        except Exception as exc:
            log.error("admin run of %s: function failed: %s: %s", info.name, type(exc).__name__, exc)
