"""The Durable Task extension's client side: the durable client binding JSON and the HTTP management API.

Two URL families reach the same handler, as in the real extension:

- the public webhooks ``{base}/runtime/webhooks/durabletask/...`` that ``statusQueryGetUri`` and friends
  point at (system key ``durabletask_extension`` when keys are required);
- the local RPC listener ``http://127.0.0.1:<rpc port>/durabletask/...`` that ``DurableOrchestrationClient``
  calls (the binding JSON's ``rpcBaseUrl``), open like the extension's localhost listener.

Routes, status codes and payloads follow the extension's ``HttpApiHandler``:
start ``POST orchestrators/{name}[/{id}]`` (202 + check-status payload, 400 unknown orchestrator or bad
JSON, 409 when the id is still active); status ``GET instances/{id}`` (202 running, 200 terminal, 404);
list ``GET instances``; raise event (404/410/400/202); terminate (404/410/202); purge ``DELETE`` (200/404).
Every body is JSON or empty, because the Python client parses each response with ``json()``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from aiohttp import web

from devhost.api import (
    EngineAPI,
    InstanceExists,
    InstanceNotFound,
    InstanceNotRunning,
    InstanceQuery,
    InstanceRecord,
)

log = logging.getLogger("devhost.durable")

T = TypeVar("T")
RunBlocking = Callable[[Callable[[], T]], Awaitable[T]]

TERMINAL = {"Completed", "Failed", "Terminated", "Canceled"}
ACTIVE = {"Running", "Pending", "ContinuedAsNew", "Suspended"}
ALL_STATUSES = [
    "Running",
    "Completed",
    "ContinuedAsNew",
    "Failed",
    "Canceled",
    "Terminated",
    "Pending",
    "Suspended",
]

# DTFx EventType numbers (azure.durable_functions HistoryEventType)
_EVENT_NAMES = {
    0: "ExecutionStarted",
    1: "ExecutionCompleted",
    2: "ExecutionFailed",
    3: "ExecutionTerminated",
    4: "TaskScheduled",
    5: "TaskCompleted",
    6: "TaskFailed",
    7: "SubOrchestrationInstanceCreated",
    8: "SubOrchestrationInstanceCompleted",
    9: "SubOrchestrationInstanceFailed",
    10: "TimerCreated",
    11: "TimerFired",
    12: "OrchestratorStarted",
    13: "OrchestratorCompleted",
    14: "EventSent",
    15: "EventRaised",
    16: "ContinueAsNew",
    17: "GenericEvent",
    18: "HistoryState",
    19: "ExecutionSuspended",
    20: "ExecutionResumed",
}


@dataclass
class DurableUrls:
    """Where the management API is reachable, for the binding JSON and check-status payloads."""

    base_url: str  # http://127.0.0.1:7071 (public host)
    rpc_base_url: str  # http://127.0.0.1:<rpc>/durabletask/  (ends with '/')
    hub_name: str
    connection_name: str = "Storage"
    system_key: str | None = None  # appended as code=... when keys are required

    @property
    def webhook_base(self) -> str:
        return f"{self.base_url}/runtime/webhooks/durabletask"

    @property
    def query_suffix(self) -> str:
        q = f"taskHub={quote(self.hub_name)}&connection={quote(self.connection_name)}"
        if self.system_key:
            q += f"&code={quote(self.system_key)}"
        return q

    def management_urls(self, instance_id: str) -> dict[str, str]:
        base = f"{self.webhook_base}/instances/{instance_id}"
        q = self.query_suffix
        return {
            "id": instance_id,
            "statusQueryGetUri": f"{base}?{q}",
            "sendEventPostUri": f"{base}/raiseEvent/{{eventName}}?{q}",
            "terminatePostUri": f"{base}/terminate?reason={{text}}&{q}",
            "rewindPostUri": f"{base}/rewind?reason={{text}}&{q}",
            "purgeHistoryDeleteUri": f"{base}?{q}",
            "restartPostUri": f"{base}/restart?{q}",
            "suspendPostUri": f"{base}/suspend?reason={{text}}&{q}",
            "resumePostUri": f"{base}/resume?reason={{text}}&{q}",
        }

    def client_binding_json(self, task_hub: str | None = None) -> str:
        """The string a ``durableClient`` input binding receives (BindingHelper + HttpApiHandler shape)."""
        code = f"code={quote(self.system_key)}" if self.system_key else ""
        suffix = f"?{self.query_suffix}"
        creation = f"{self.webhook_base}/orchestrators/{{functionName}}[/{{instanceId}}]"
        payload: dict[str, Any] = {
            "taskHubName": task_hub or self.hub_name,
            "connectionName": None,
            "creationUrls": {
                "createNewInstancePostUri": f"{creation}{suffix}",
                "createAndWaitOnNewInstancePostUri": (
                    f"{creation}?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&{self.query_suffix}"
                ),
            },
            "managementUrls": self.management_urls("INSTANCEID"),
            "baseUrl": self.webhook_base,
            "requiredQueryStringParameters": code,
            "rpcBaseUrl": self.rpc_base_url,
        }
        return json.dumps(payload)


def _json_or_raw(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return text


def _status_time(iso: str | None) -> str | None:
    """``yyyy-MM-ddTHH:mm:ssZ`` as the extension formats status times (``ToString("s") + "Z"``)."""
    if not iso:
        return iso
    core = iso.rstrip("Z")
    if "+" in core[10:]:
        core = core[: 10 + core[10:].index("+")]
    return core.split(".")[0] + "Z"


_TRACKED = {4: "TaskScheduled", 7: "SubOrchestrationInstanceCreated"}
_COMPLETIONS = {5: 4, 6: 4, 8: 7, 9: 7}  # completion type -> the type of the event it completes


def convert_history(
    events: list[dict[str, Any]], *, show_input: bool, show_output: bool
) -> list[dict[str, Any]]:
    """History as the status API shows it, by the rules of the extension's DurableClient
    (GetDurableOrchestrationStatusAsync):

    - ``EventType`` becomes its name; ``EventId`` and ``IsPlayed`` go; OrchestratorStarted/Completed go.
    - A TaskScheduled / SubOrchestrationInstanceCreated that has a completion is folded into it: the
      completion gets ``ScheduledTime``, ``FunctionName`` and (with ``showInput``) the scheduled ``Input``
      and loses ``TaskScheduledId``. One still waiting stays, without ``Version``.
    - ExecutionStarted: ``Name`` becomes ``FunctionName``; ``OrchestrationInstance``, ``ParentInstance``,
      ``Version`` and ``Tags`` go. TimerFired loses ``TimerId``.
    - ``Result`` of TaskCompleted, SubOrchestrationInstanceCompleted and ExecutionCompleted is shown, as
      JSON, only with ``showHistoryOutput``; ``Input`` of every event only with ``showInput``.
    """
    items: list[dict[str, Any] | None] = []
    scheduled: dict[tuple[int, int], int] = {}  # (type, EventId) -> index in items
    for ev in events:
        et = ev.get("EventType")
        if et in (12, 13):
            items.append(None)
            continue
        item = {k: v for k, v in ev.items() if k not in ("EventId", "IsPlayed")}
        item["EventType"] = _EVENT_NAMES.get(et, str(et)) if isinstance(et, int) else str(et)
        if et in _TRACKED:
            scheduled[(et, int(ev.get("EventId", -1)))] = len(items)
            item.pop("Version", None)
        elif et in _COMPLETIONS:
            _fold_scheduled(item, ev, events, scheduled, items, _COMPLETIONS[et], show_input)
            _show_result(item, show_output and et in (5, 8))
        elif et == 0:
            item["FunctionName"] = item.pop("Name", None)
            for key in ("OrchestrationInstance", "ParentInstance", "Version", "Tags"):
                item.pop(key, None)
        elif et == 1:
            _show_result(item, show_output)
        elif et == 11:
            item.pop("TimerId", None)
        if not show_input:
            item.pop("Input", None)
        items.append(item)
    return [i for i in items if i is not None]


def _fold_scheduled(
    item: dict[str, Any],
    ev: dict[str, Any],
    events: list[dict[str, Any]],
    scheduled: dict[tuple[int, int], int],
    items: list[dict[str, Any] | None],
    source_type: int,
    show_input: bool,
) -> None:
    at = scheduled.get((source_type, int(ev.get("TaskScheduledId", -1))))
    item.pop("TaskScheduledId", None)
    if at is None:
        return
    src = events[at]
    item["ScheduledTime"] = src.get("Timestamp")
    item["FunctionName"] = src.get("Name")
    if show_input:
        item["Input"] = src.get("Input")
    items[at] = None


def _show_result(item: dict[str, Any], show: bool) -> None:
    if not show:
        item.pop("Result", None)
    elif "Result" in item:
        item["Result"] = _json_or_raw(item["Result"])


def status_payload(
    rec: InstanceRecord,
    *,
    show_input: bool = True,
    show_history: bool = False,
    show_history_output: bool = False,
) -> dict[str, Any]:
    """The extension's StatusResponsePayload; ``historyEvents`` is left out unless history was asked for
    and exists (the field is not emitted when null; a Pending instance has no history yet)."""
    payload: dict[str, Any] = {
        "name": rec.name,
        "instanceId": rec.instance_id,
        "runtimeStatus": rec.runtime_status,
        # The extension shows the parsed start body: for Python-started instances that is the input's JSON
        # text as a string, which is what the engine stores.
        "input": rec.input if show_input else None,
        "customStatus": _json_or_raw(rec.custom_status),
        "output": _json_or_raw(rec.output),
        "createdTime": _status_time(rec.created_time),
        "lastUpdatedTime": _status_time(rec.last_updated_time),
    }
    if show_history and rec.runtime_status != "Pending" and rec.history:
        payload["historyEvents"] = convert_history(
            rec.history, show_input=show_input, show_output=show_history_output
        )
    return payload


def _query_value(request: web.Request, name: str) -> str | None:
    # query parameter names compare case-insensitively in the extension
    for key, value in request.query.items():
        if key.lower() == name.lower():
            return value
    return None


def _bool_param(request: web.Request, name: str, default: bool) -> bool:
    # .NET bool.TryParse: case-insensitive true/false, anything else → default
    for key, value in request.query.items():
        if key.lower() == name.lower():
            v = value.strip().lower()
            if v == "true":
                return True
            if v == "false":
                return False
    return default


def _json_response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> web.Response:
    if body is None:
        return web.Response(status=status, headers=headers)
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


def _error(status: int, message: str, exc: Exception | None = None) -> web.Response:
    body: dict[str, Any] = {"Message": message}
    if exc is not None:
        body["ExceptionMessage"] = str(exc)
        body["ExceptionType"] = type(exc).__name__
    return _json_response(status, body)


class DurableApi:
    """Serves the management API on top of an ``EngineAPI``. ``run`` runs blocking engine calls off the loop."""

    def __init__(
        self,
        engine: EngineAPI,
        urls: DurableUrls,
        run: Callable[[Callable[[], Any]], Awaitable[Any]],
        orchestrator_names: Callable[[], set[str]],
    ) -> None:
        self.engine = engine
        self.urls = urls
        self._run = run
        self._orchestrators = orchestrator_names
        # host.json durableTask.overridableExistingInstanceStates == AnyState: a start may replace a
        # running instance with the same id (default NonRunningStates: 409).
        self.any_state_overridable = False

    async def handle(self, request: web.Request, path: str) -> web.StreamResponse:
        """``path`` is what follows ``/runtime/webhooks/durabletask/`` or ``/durabletask/``."""
        try:
            return await self._dispatch(request, path.strip("/"))
        except Exception as exc:  # the extension answers 500 with a JSON error body
            log.exception("durable management API %s %s failed", request.method, request.path)
            return _error(500, "Something went wrong while processing your request", exc)

    async def _dispatch(self, request: web.Request, path: str) -> web.StreamResponse:
        parts = [unquote(p) for p in path.split("/")] if path else []
        method = request.method.upper()
        hub = _query_value(request, "taskHub")
        if hub and hub.lower() != self.urls.hub_name.lower():
            return self._other_hub(parts, method, hub)
        if parts and parts[0].lower() == "orchestrators" and method == "POST" and len(parts) >= 2:
            instance_id = "/".join(parts[2:]) if len(parts) > 2 else None
            return await self._start(request, parts[1], instance_id or None)
        if parts and parts[0].lower() == "entities":
            return _error(501, "Durable entities are not supported by devhost.")
        if not parts or parts[0].lower() != "instances":
            return _error(400, "No such API")
        if len(parts) == 1:
            if method == "GET":
                return await self._list(request)
            if method == "DELETE":
                return await self._purge_many(request)
            return _error(400, "No such API")
        instance_id = parts[1]
        if len(parts) == 2:
            if method == "GET":
                return await self._status(request, instance_id)
            if method == "DELETE":
                return await self._purge(instance_id)
            return _error(400, "No such API")
        if method != "POST":
            return _error(400, "No such API")
        op = parts[2].lower()
        if op == "raiseevent" and len(parts) == 4:
            return await self._raise_event(request, instance_id, parts[3])
        if op == "terminate" and len(parts) == 3:
            return await self._terminate(request, instance_id)
        if op == "restart" and len(parts) == 3:
            return await self._restart(request, instance_id)
        if op in ("rewind", "suspend", "resume") and len(parts) == 3:
            rec = await self._run(lambda: self.engine.get_instance(instance_id))
            if rec is None:
                return _json_response(404)
            return _error(501, f"'{op}' is not supported by devhost (instance '{instance_id}' is unchanged).")
        return _error(400, "No such API")

    def _other_hub(self, parts: list[str], method: str, hub: str) -> web.Response:
        """A request for another task hub (the ``taskHub`` query parameter, as HttpApiHandler.GetClient
        reads it): devhost serves only the app's own hub, so none of its instances are visible there."""
        if parts and parts[0].lower() == "orchestrators":
            return _error(
                400,
                f"Task hub '{hub}' is not served here: devhost runs the task hub '{self.urls.hub_name}' "
                "(host.json extensions.durableTask.hubName) only, so an instance started in another hub "
                "would never run. Leave out taskHub or pass the app's hub.",
            )
        if len(parts) == 1 and parts[0].lower() == "instances" and method == "GET":
            return _json_response(200, [])
        return _json_response(404)

    async def _start(self, request: web.Request, name: str, instance_id: str | None) -> web.StreamResponse:
        body = (await request.text()).strip()
        input_json: str | None = None
        if body:
            try:
                value = json.loads(body)
            except ValueError as exc:
                return _error(400, "Invalid JSON content", exc)
            # The extension parses the body once and hands the orchestrator that value as its input. The
            # Python client double-encodes (the body is a JSON string holding df_dumps(input)), so the
            # input text is the decoded string; any other JSON body is itself the input text.
            input_json = value if isinstance(value, str) else body
        if name not in self._orchestrators():
            message = f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator function."
            return _json_response(
                400,
                {
                    "Message": "One or more of the arguments submitted is incorrect",
                    "ExceptionMessage": message,
                    "ExceptionType": "System.ArgumentException",
                },
            )
        new_id = instance_id or uuid.uuid4().hex
        try:
            started = await self._run(
                lambda: self.engine.start_new(
                    name,
                    new_id,
                    input_json,
                    replace_active=self.any_state_overridable,
                    version=request.query.get("version"),  # the client's start_new(version=...)
                )
            )
        except InstanceExists as exc:
            return _json_response(
                409,
                {
                    "Message": f"An instance with ID '{new_id}' already exists and is still active.",
                    "ExceptionMessage": str(exc)
                    or f"An Orchestration instance with the ID '{new_id}' is active.",
                    "ExceptionType": "DurableTask.Core.Exceptions.OrchestrationAlreadyExistsException",
                },
            )
        log.info("started orchestration %s (instance %s)", name, started)
        payload = self.urls.management_urls(started)
        timeout = request.query.get("timeout")
        polling = request.query.get("pollingInterval")
        if timeout and polling:
            waited = await self._wait(started, float(timeout), float(polling))
            if waited is not None:
                return waited
        return _json_response(
            202, payload, headers={"Location": payload["statusQueryGetUri"], "Retry-After": "10"}
        )

    async def _wait(self, instance_id: str, timeout: float, interval: float) -> web.StreamResponse | None:
        import asyncio
        import time

        deadline = time.monotonic() + timeout
        while True:
            rec = await self._run(lambda: self.engine.get_instance(instance_id))
            if rec is not None and rec.runtime_status == "Completed":
                return _json_response(200, status_payload(rec))
            if rec is not None and rec.runtime_status in TERMINAL:
                return self._status_response(rec, f"{self.urls.webhook_base}/instances/{instance_id}", False)
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))

    def _status_response(
        self, rec: InstanceRecord, location: str, fail_500: bool, **kw: bool
    ) -> web.Response:
        payload = status_payload(rec, **kw)
        status = rec.runtime_status
        if status in ACTIVE:
            return _json_response(202, payload, headers={"Location": location, "Retry-After": "5"})
        if status == "Failed":
            return _json_response(500 if fail_500 else 200, payload)
        return _json_response(200, payload)

    async def _status(self, request: web.Request, instance_id: str) -> web.StreamResponse:
        show_history = _bool_param(request, "showHistory", False)
        show_history_output = _bool_param(request, "showHistoryOutput", False)
        show_input = _bool_param(request, "showInput", True)
        fail_500 = _bool_param(request, "returnInternalServerErrorOnFailure", False)
        rec = await self._run(lambda: self.engine.get_instance(instance_id, with_history=show_history))
        if rec is None:
            return _json_response(404)
        return self._status_response(
            rec,
            str(request.url),
            fail_500,
            show_input=show_input,
            show_history=show_history,
            show_history_output=show_history_output,
        )

    def _query(self, request: web.Request) -> InstanceQuery:
        q = InstanceQuery()
        statuses: list[str] = []
        for key, value in request.query.items():
            lk = key.lower()
            if lk == "runtimestatus":
                for s in value.split(","):
                    match = next((x for x in ALL_STATUSES if x.lower() == s.strip().lower()), None)
                    if match:  # unknown names are ignored, like Enum.TryParse in the extension
                        statuses.append(match)
            elif lk == "createdtimefrom" and value:
                q.created_time_from = value
            elif lk == "createdtimeto" and value:
                q.created_time_to = value
            elif lk == "instanceidprefix" and value:
                q.instance_id_prefix = value
            elif lk == "top" and value.isdigit() and int(value) > 0:
                q.top = int(value)
        q.runtime_status = statuses or None
        return q

    async def _list(self, request: web.Request) -> web.StreamResponse:
        q = self._query(request)
        show_input = _bool_param(request, "showInput", False)
        recs = await self._run(lambda: self.engine.query(q))
        return _json_response(200, [status_payload(r, show_input=show_input) for r in recs])

    async def _purge(self, instance_id: str) -> web.StreamResponse:
        rec = await self._run(lambda: self.engine.get_instance(instance_id))
        if rec is None:
            return _json_response(404)
        if rec.runtime_status not in TERMINAL:
            # Azure Storage provider: purging a running instance is refused (412 Precondition Failed)
            return _error(
                412,
                f"Instance '{instance_id}' is {rec.runtime_status}; only finished instances can be purged.",
            )
        n = await self._run(lambda: self.engine.purge(instance_id))
        log.info("purged instance %s", instance_id)
        return _json_response(200, {"instancesDeleted": n})

    async def _purge_many(self, request: web.Request) -> web.StreamResponse:
        q = self._query(request)
        if not q.created_time_from:
            return _error(400, "Please provide value for 'createdTimeFrom' parameter.")
        n = await self._run(lambda: self.engine.purge_many(q))
        if n == 0:
            return _json_response(404)
        return _json_response(200, {"instancesDeleted": n})

    async def _raise_event(
        self, request: web.Request, instance_id: str, event_name: str
    ) -> web.StreamResponse:
        rec = await self._run(lambda: self.engine.get_instance(instance_id))
        if rec is None:
            return _json_response(404)
        if rec.runtime_status in TERMINAL:
            return _json_response(410)
        if request.content_type.lower() != "application/json":
            return _error(400, "Only application/json request content is supported")
        text = (await request.text()).strip()
        data_json: str | None = None
        if text:
            try:
                # parsed to a JToken and re-serialized into EventRaised.Input by the extension
                data_json = json.dumps(json.loads(text))
            except ValueError as exc:
                return _error(400, "Invalid JSON content", exc)
        try:
            await self._run(lambda: self.engine.raise_event(instance_id, event_name, data_json))
        except InstanceNotFound:
            return _json_response(404)
        except InstanceNotRunning:
            return _json_response(410)
        log.info("raised event %s on instance %s", event_name, instance_id)
        return _json_response(202)

    async def _terminate(self, request: web.Request, instance_id: str) -> web.StreamResponse:
        rec = await self._run(lambda: self.engine.get_instance(instance_id))
        if rec is None:
            return _json_response(404)
        if rec.runtime_status in TERMINAL:
            return _json_response(410)
        reason = request.query.get("reason")
        try:
            await self._run(lambda: self.engine.terminate(instance_id, reason))
        except InstanceNotFound:
            return _json_response(404)
        except InstanceNotRunning:
            return _json_response(410)
        log.info("terminated instance %s", instance_id)
        return _json_response(202)

    async def _restart(self, request: web.Request, instance_id: str) -> web.StreamResponse:
        rec = await self._run(lambda: self.engine.get_instance(instance_id))
        if rec is None:
            return _json_response(404)
        new_ids = request.query.get("restartWithNewInstanceId", "true").lower() != "false"
        new_id = uuid.uuid4().hex if new_ids else instance_id
        if not new_ids and rec.runtime_status not in TERMINAL:
            return _error(
                409, f"Instance '{instance_id}' is still {rec.runtime_status}; it cannot restart in place."
            )
        try:
            started = await self._run(lambda: self.engine.start_new(rec.name, new_id, rec.input))
        except InstanceExists as exc:
            return _error(409, f"Instance '{new_id}' is still active.", exc)
        log.info("restarted instance %s as %s", instance_id, started)
        return _json_response(202, started)
