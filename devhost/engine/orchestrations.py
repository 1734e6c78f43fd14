"""One orchestrator episode: deliver one new event, run the SDK's handle, apply the returned actions.

This is what the extension's out-of-proc shim and DTFx do between two invocations of the
Python orchestrator: build the context JSON from the recorded history plus
``OrchestratorStarted`` and the one new event, invoke the orchestrator, parse its
OrchestratorState (or the ``$OutOfProcData$`` failure), check the replayed actions against the
recorded ones (non-determinism), perform host-side retry bookkeeping, turn new actions into
history events with sequence ids, and decide the instance's new status. The result is an
``EpisodeCommit`` the store writes in one transaction.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devhost.engine.history import ActionType, Event, EventType, event, fmt_time, parse_time
from devhost.engine.store import EpisodeCommit, InstanceRow, Message, NewActivity, NewMessage
from devhost.functions import AppIndex, FunctionNotFound, call_orchestrator

OOP_MARKER = "\n\n$OutOfProcData$:"

# Azure Storage's limits: the SDK splits timers longer than 6 days into 3-day pieces.
MAX_SHORT_TIMER = "6.00:00:00"
LONG_TIMER_INTERVAL = "3.00:00:00"

TERMINAL_STATUSES = ("Completed", "Failed", "Terminated")


@dataclass
class ExecCache:
    """The recorded state of one execution kept in memory between episodes (avoids re-reading SQLite).

    ``played`` holds each recorded event's JSON text with ``IsPlayed: true``, ready to splice into
    the next context. ``sigs`` holds the flattened actions already applied: [actionType, name, id, canceled].
    """

    execution_id: str
    played: list[str] = field(default_factory=list)
    sigs: list[list[Any]] = field(default_factory=list)


@dataclass
class EpisodeResult:
    commit: EpisodeCommit
    cache: ExecCache | None  # None once the instance is finished
    wake: list[str] = field(default_factory=list)  # other instances that got messages
    finished: bool = False


def played_text(ev: Event) -> str:
    return json.dumps({**ev, "IsPlayed": True})


def flatten(actions: list[Any]) -> list[dict[str, Any]]:
    """Depth-first leaves of the (cumulative) action list; compound WhenAll/WhenAny are expanded."""
    out: list[dict[str, Any]] = []

    def walk(items: list[Any]) -> None:
        for a in items:
            if isinstance(a, list):
                walk(a)
            elif a.get("actionType") in (ActionType.WhenAll, ActionType.WhenAny):
                walk(a.get("compoundActions") or [])
            else:
                out.append(a)

    walk(actions)
    return out


def signature(a: dict[str, Any]) -> list[Any]:
    t = int(a.get("actionType", -1))
    name = a.get("functionName") or a.get("externalEventName") or ""
    if t in (ActionType.CallEntity, ActionType.SignalEntity):
        name = f"{a.get('instanceId')}:{a.get('operation')}"
    elif t == ActionType.CallHttp:
        name = str((a.get("httpRequest") or {}).get("uri", ""))
    return [t, name, None, False]


def describe_action(sig: list[Any]) -> str:
    try:
        kind = ActionType(sig[0]).name
    except ValueError:
        kind = f"action type {sig[0]}"
    return f"{kind} '{sig[1]}'" if sig[1] else kind


def describe_recorded(sig: list[Any]) -> str:
    t = sig[0]
    where = f" (id {sig[2]})" if sig[2] is not None else ""
    if t in (ActionType.CallActivity, ActionType.CallActivityWithRetry):
        return f"TaskScheduled of activity '{sig[1]}'{where}"
    if t in (ActionType.CallSubOrchestrator, ActionType.CallSubOrchestratorWithRetry):
        return f"SubOrchestrationInstanceCreated of orchestrator '{sig[1]}'{where}"
    if t == ActionType.CreateTimer:
        return f"TimerCreated{where}"
    if t == ActionType.WaitForExternalEvent:
        return f"a wait for external event '{sig[1]}'"
    return describe_action(sig) + where


def retry_delay_ms(opts: dict[str, Any], attempt: int) -> float:
    """DTFx RetryInterceptor delay after failed attempt ``attempt`` (1-based).

    The Python SDK only sends ``firstRetryIntervalInMilliseconds``/``maxNumberOfAttempts``; the
    other RetryOptions fields are honoured when present (other SDKs, future versions).
    """
    first = float(opts.get("firstRetryIntervalInMilliseconds") or 0)
    backoff = float(opts.get("backoffCoefficient") or 1.0)
    delay = first * backoff ** (attempt - 1)
    cap = opts.get("maxRetryIntervalInMilliseconds")
    if cap:
        delay = min(delay, float(cap))
    return max(delay, 0.0)


class Episode:
    """Runs one episode for one instance. Not thread-safe; the engine runs one per instance at a time."""

    def __init__(
        self,
        index: AppIndex,
        inst: InstanceRow,
        msg: Message,
        cache: ExecCache,
        now: float,
        log: logging.Logger,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        *,
        version: str | None = None,
        default_version: str = "",
        refusal: str | None = None,
    ) -> None:
        self.index = index
        self.inst = inst
        self.msg = msg
        self.cache = cache
        self.now = now
        self.log = log
        self.new_id = new_id
        self.version = version  # this execution's ExecutionStarted.Version
        self.default_version = default_version  # host.json defaultVersion ("" when none)
        self.refusal = refusal  # why this worker may not run the instance (versionFailureStrategy Fail)
        self.state: dict[str, Any] = dict(inst.state)
        self.state.setdefault("next_seq", 0)
        self.state["retries"] = dict(self.state.get("retries") or {})
        self.commit = EpisodeCommit(instance=inst, consumed_message_id=msg.id)
        self.recorded: list[Event] = []
        self.new_sigs: list[list[Any]] = []
        self.changed_sigs: list[int] = []
        self.wake: list[str] = []

    # --- helpers ------------------------------------------------------------------------------
    def _seq(self) -> int:
        n = int(self.state["next_seq"])
        self.state["next_seq"] = n + 1
        return n

    def _record(self, ev: Event) -> None:
        self.recorded.append(ev)

    def _message(self, instance_id: str, execution_id: str | None, at: float, ev: Event, **kw: Any) -> None:
        self.commit.messages.append(NewMessage(instance_id, execution_id, at, ev, **kw))
        if instance_id != self.inst.instance_id:
            self.wake.append(instance_id)

    def _context_json(self, new_events: list[Event]) -> str:
        texts = [*self.cache.played, *(json.dumps(e) for e in new_events)]
        rest = {
            "input": self.inst.input,
            "instanceId": self.inst.instance_id,
            "isReplaying": bool(self.cache.played),
            "parentInstanceId": self.inst.parent_instance_id,
            "upperSchemaVersion": 1,
            "upperSchemaVersionNew": 2,
            "maximumShortTimerDuration": MAX_SHORT_TIMER,
            "longRunningTimerIntervalDuration": LONG_TIMER_INTERVAL,
            "defaultHttpAsyncRequestSleepTimeMillseconds": 30000,
        }
        return '{"history": [' + ", ".join(texts) + "], " + json.dumps(rest)[1:]

    # --- entry point --------------------------------------------------------------------------
    def run(self) -> EpisodeResult:
        inst, ev = self.inst, dict(self.msg.event)
        started = event(EventType.OrchestratorStarted, self.now)
        ev["IsPlayed"] = False
        self._record(started)
        self._record(ev)
        if self.msg.kind == "terminate":
            reason = ev.get("Input")
            return self._finish("Terminated", json.dumps(reason), reason_for_parent=f"terminated: {reason}")

        if inst.runtime_status in ("Pending", "ContinuedAsNew"):
            inst.runtime_status = "Running"
        if self.refusal is not None:
            return self._fail(self.refusal)
        try:
            info = self.index.orchestrator(inst.name)
        except FunctionNotFound as exc:
            return self._fail(str(exc))
        if info.disabled:
            return self._fail(disabled_orchestrator_message(inst.name, sorted(self.index.orchestrators)))
        ctx = self._context_json([started, ev])
        try:
            out = call_orchestrator(info, ctx)
            state = json.loads(out)
        except Exception as exc:  # the SDK's failure path
            text = str(exc)
            if OOP_MARKER in text:
                try:
                    state = json.loads(text.split(OOP_MARKER, 1)[1])
                except ValueError:
                    state = {"error": text.split(OOP_MARKER, 1)[0]}
            else:
                state = {"error": f"{type(exc).__name__}: {exc}"}
            state.setdefault("error", text.split(OOP_MARKER, 1)[0])
        if not isinstance(state, dict):
            return self._fail(
                f"the orchestrator returned {type(state).__name__}, not an OrchestratorState object"
            )

        if "customStatus" in state:  # only sent when truthy; absence never clears
            inst.custom_status = json.dumps(state["customStatus"])

        actions = state.get("actions") or []
        flat = flatten(actions)
        problem = self._check_replay(flat)
        if problem:
            return self._fail(problem)
        if state.get("error") is not None:
            return self._fail(str(state["error"]))
        new = flat[len(self.cache.sigs) :]
        if state.get("isDone"):
            can = next((a for a in new if a.get("actionType") == ActionType.ContinueAsNew), None)
            if can is not None:
                return self._continue_as_new(can)
            output = json.dumps(state["output"]) if "output" in state else None
            return self._finish("Completed", output)

        self._retry_bookkeeping(ev)
        problem = self._apply_new_actions(new)
        if problem:
            return self._fail(problem)
        return self._keep_running()

    # --- replay check ---------------------------------------------------------------------------
    def _check_replay(self, flat: list[dict[str, Any]]) -> str | None:
        known = self.cache.sigs
        for i, sig in enumerate(known):
            if i >= len(flat):
                break
            now_sig = signature(flat[i])
            if now_sig[0] != sig[0] or now_sig[1] != sig[1]:
                return (
                    f"Non-deterministic workflow detected: the history of instance '{self.inst.instance_id}' "
                    f"recorded {describe_recorded(sig)} as step {i + 1}, but orchestrator '{self.inst.name}' "
                    f"now schedules {describe_action(now_sig)} there. An orchestrator must make the same calls "
                    "in the same order on every replay: let in-flight instances finish (or purge them) before "
                    "changing an orchestrator, or start the new logic under a new orchestrator name."
                )
            if sig[0] == ActionType.CreateTimer and flat[i].get("isCanceled") and not sig[3]:
                sig[3] = True
                self.commit.cancel_timers.append(int(sig[2]))
                self.changed_sigs.append(i)
        return None

    # --- retries -----------------------------------------------------------------------------------
    def _retry_bookkeeping(self, ev: Event) -> None:
        retries: dict[str, dict[str, Any]] = self.state["retries"]
        et = ev.get("EventType")
        if et in (EventType.TaskFailed, EventType.SubOrchestrationInstanceFailed):
            key = str(ev.get("TaskScheduledId"))
            r = retries.get(key)
            if r is not None and r["state"] == "task":
                # After every failed attempt, the last one included, DTFx waits on a retry timer;
                # the SDK counts on that timer before it reports the final failure.
                fire_at = self.now + retry_delay_ms(r["options"], int(r["attempt"])) / 1000.0
                tid = self._seq()
                self._record(event(EventType.TimerCreated, self.now, tid, FireAt=fmt_time(fire_at)))
                self._message(
                    self.inst.instance_id,
                    self.inst.execution_id,
                    fire_at,
                    event(EventType.TimerFired, fire_at, TimerId=tid, FireAt=fmt_time(fire_at)),
                    task_id=tid,
                )
                del retries[key]
                retries[str(tid)] = {**r, "state": "timer"}
        elif et in (EventType.TaskCompleted, EventType.SubOrchestrationInstanceCompleted):
            retries.pop(str(ev.get("TaskScheduledId")), None)
        elif et == EventType.TimerFired:
            key = str(ev.get("TimerId"))
            r = retries.get(key)
            if r is not None and r["state"] == "timer":
                del retries[key]
                if int(r["attempt"]) < int(r["options"].get("maxNumberOfAttempts") or 1):
                    nid = self._seq()
                    r = {**r, "state": "task", "attempt": int(r["attempt"]) + 1}
                    retries[str(nid)] = r
                    if r["kind"] == "activity":
                        self._schedule_activity(nid, r["name"], r["input"])
                    else:
                        self._schedule_sub(nid, r["name"], r["input"], r.get("instanceId"), r.get("version"))

    # --- new actions -----------------------------------------------------------------------------
    def _apply_new_actions(self, new: list[dict[str, Any]]) -> str | None:
        for a in new:
            t = a.get("actionType")
            sig = signature(a)
            if t in (ActionType.CallActivity, ActionType.CallActivityWithRetry):
                sig[2] = tid = self._seq()
                self._schedule_activity(tid, str(a.get("functionName")), a.get("input"))
                if t == ActionType.CallActivityWithRetry:
                    self._remember_retry(tid, "activity", a)
            elif t in (ActionType.CallSubOrchestrator, ActionType.CallSubOrchestratorWithRetry):
                sig[2] = tid = self._seq()
                name, child_id = str(a.get("functionName")), a.get("instanceId")
                self._schedule_sub(tid, name, a.get("input"), child_id, a.get("version"))
                if t == ActionType.CallSubOrchestratorWithRetry:
                    self._remember_retry(tid, "sub", a)
            elif t == ActionType.CreateTimer:
                sig[2] = tid = self._seq()
                fire_at = parse_time(str(a.get("fireAt")))
                fire_text = fmt_time(fire_at)
                self._record(event(EventType.TimerCreated, self.now, tid, FireAt=fire_text))
                if a.get("isCanceled"):
                    sig[3] = True
                else:
                    self._message(
                        self.inst.instance_id,
                        self.inst.execution_id,
                        fire_at,
                        event(EventType.TimerFired, fire_at, TimerId=tid, FireAt=fire_text),
                        task_id=tid,
                    )
            elif t == ActionType.WaitForExternalEvent:
                pass  # takes no sequence id; the event is matched by name
            elif t == ActionType.ContinueAsNew:
                self._seq()  # the SDK counts it too
            elif t == ActionType.CallHttp:
                return (
                    f"Orchestrator '{self.inst.name}' called context.call_http({sig[1]!r}); devhost does not "
                    "support durable HTTP calls. Call the endpoint from an activity function instead."
                )
            elif t in (ActionType.CallEntity, ActionType.SignalEntity):
                return (
                    f"Orchestrator '{self.inst.name}' used a durable entity ({sig[1]}); devhost does not "
                    "support durable entities."
                )
            else:
                return f"Orchestrator '{self.inst.name}' returned an action of unknown type {t!r}: {a!r}"
            self.new_sigs.append(sig)
        return None

    def _remember_retry(self, tid: int, kind: str, a: dict[str, Any]) -> None:
        self.state["retries"][str(tid)] = {
            "kind": kind,
            "name": str(a.get("functionName")),
            "input": a.get("input"),
            "instanceId": a.get("instanceId"),
            "version": a.get("version"),
            "options": dict(a.get("retryOptions") or {}),
            "attempt": 1,
            "state": "task",
            "first": self.now,
        }

    def _schedule_activity(self, tid: int, name: str, input_text: str | None) -> None:
        self._record(event(EventType.TaskScheduled, self.now, tid, Name=name, Version="", Input=input_text))
        self.commit.activities.append(
            NewActivity(self.inst.instance_id, self.inst.execution_id, tid, name, input_text)
        )

    def _schedule_sub(
        self, tid: int, name: str, input_text: str | None, child_id: str | None, version: str | None = None
    ) -> None:
        # DTFx (TaskOrchestrationContext) names a child started without an id "<parent execution id>:<task
        # id>"; every retry attempt is a new call with a new task id, hence a new child id.
        child_id = child_id or f"{self.inst.execution_id}:{tid}"
        # A child started without a version gets the worker's defaultVersion, not the parent's version.
        child_version = version if version is not None else self.default_version
        self._record(
            event(
                EventType.SubOrchestrationInstanceCreated,
                self.now,
                tid,
                Name=name,
                Version=child_version,
                InstanceId=child_id,
                Input=input_text,
            )
        )
        failure: str | None = None
        if child_id.lower() in (self.inst.instance_id.lower(), (self.inst.parent_instance_id or "").lower()):
            # The extension compares (ignoring case) with the instance and its own parent only.
            failure = (
                "The instance ID of a sub-orchestration must be different than the instance ID of a parent "
                f"orchestration ('{child_id}')."
            )
        else:
            existing = self._existing(child_id)
            if existing is not None and existing.runtime_status not in TERMINAL_STATUSES:
                failure = f"an instance with id '{child_id}' already exists and is {existing.runtime_status}"
        if failure is not None:
            self._message(
                self.inst.instance_id,
                self.inst.execution_id,
                self.now,
                event(
                    EventType.SubOrchestrationInstanceFailed,
                    self.now,
                    TaskScheduledId=tid,
                    Reason=f"Orchestrator function '{name}' could not be started: {failure}",
                    Details=None,
                ),
            )
            return
        exec_id = self.new_id()
        child = InstanceRow(
            instance_id=child_id,
            name=name,
            execution_id=exec_id,
            runtime_status="Pending",
            created_at=self.now,
            updated_at=self.now,
            input=input_text,
            parent_instance_id=self.inst.instance_id,
            parent_execution_id=self.inst.execution_id,
            parent_task_id=tid,
            parent_name=self.inst.name,
        )
        self.commit.new_instances.append(child)
        self._message(
            child_id,
            exec_id,
            self.now,
            execution_started(child, self.now, child_version),
            kind=str(int(EventType.ExecutionStarted)),
        )

    existing_lookup: Callable[[str], InstanceRow | None] | None = None

    def _existing(self, instance_id: str) -> InstanceRow | None:
        return self.existing_lookup(instance_id) if self.existing_lookup else None

    # --- outcomes ----------------------------------------------------------------------------------
    def _texts(self) -> list[tuple[str, str]]:
        return [(self.inst.execution_id, json.dumps(e)) for e in self.recorded]

    def _keep_running(self) -> EpisodeResult:
        self._record(event(EventType.OrchestratorCompleted, self.now))
        inst = self.inst
        inst.updated_at = self.now
        inst.state = self.state
        self.commit.history = self._texts()
        base = len(self.cache.sigs)
        self.cache.sigs.extend(self.new_sigs)
        idxs = sorted({*self.changed_sigs, *range(base, len(self.cache.sigs))})
        self.commit.actions = [(inst.execution_id, i, json.dumps(self.cache.sigs[i])) for i in idxs]
        self.cache.played.extend(played_text(e) for e in self.recorded)
        return EpisodeResult(self.commit, self.cache, self.wake)

    def _fail(self, error: str) -> EpisodeResult:
        reason = f"Orchestrator function '{self.inst.name}' failed: {error}"
        self.log.warning("orchestrator %s failed (instance %s)", self.inst.name, self.inst.instance_id)
        return self._finish("Failed", json.dumps(reason), reason_for_parent=reason, error=error)

    def _finish(
        self, status: str, output: str | None, reason_for_parent: str | None = None, error: str | None = None
    ) -> EpisodeResult:
        inst = self.inst
        if status == "Terminated":
            pass  # the ExecutionTerminated event is already recorded
        else:
            completed = event(
                EventType.ExecutionCompleted, self.now, OrchestrationStatus=status, Result=output
            )
            if error is not None:
                completed["FailureDetails"] = {
                    "ErrorType": "OrchestrationFailureException",
                    "ErrorMessage": error,
                }
            self._record(completed)
        self._record(event(EventType.OrchestratorCompleted, self.now))
        inst.runtime_status = status
        inst.output = output
        inst.updated_at = self.now
        inst.state = {"next_seq": self.state["next_seq"], "retries": {}}
        self.commit.history = self._texts()
        self.commit.clear_pending = True
        self.commit.consumed_message_id = self.msg.id
        if inst.parent_instance_id and inst.parent_task_id is not None:
            if status == "Completed":
                notice = event(
                    EventType.SubOrchestrationInstanceCompleted,
                    self.now,
                    TaskScheduledId=inst.parent_task_id,
                    Result=output if output is not None else "null",
                )
            else:
                notice = event(
                    EventType.SubOrchestrationInstanceFailed,
                    self.now,
                    TaskScheduledId=inst.parent_task_id,
                    Reason=reason_for_parent
                    if status == "Failed"
                    else f"Orchestrator function '{inst.name}' was {reason_for_parent}",
                    Details=f"Message: {error}, StackTrace: " if error is not None else None,
                )
            self._message(inst.parent_instance_id, inst.parent_execution_id, self.now, notice)
        if status == "Completed":
            self.log.info("orchestrator %s completed (instance %s)", inst.name, inst.instance_id)
        elif status == "Terminated":
            self.log.info("orchestrator %s terminated (instance %s)", inst.name, inst.instance_id)
        return EpisodeResult(self.commit, None, self.wake, finished=True)

    def _continue_as_new(self, action: dict[str, Any]) -> EpisodeResult:
        inst = self.inst
        new_input = action.get("input")
        self._record(event(EventType.ContinueAsNew, self.now, Result=new_input))
        self._record(event(EventType.OrchestratorCompleted, self.now))
        old_exec = inst.execution_id
        self.commit.history = self._texts()
        new_exec = self.new_id()
        # Undelivered external events go to the new execution; completions of the old one are void.
        self.commit.clear_pending = True
        self.commit.keep_event_messages = True
        self.commit.drop_executions_except = (old_exec, new_exec)
        inst.execution_id = new_exec
        inst.runtime_status = "ContinuedAsNew"
        inst.input = new_input
        inst.output = None
        inst.updated_at = self.now
        inst.state = {"next_seq": 0, "retries": {}}
        self.commit.messages.append(
            NewMessage(
                inst.instance_id,
                new_exec,
                self.now,
                execution_started(inst, self.now, self.version or ""),  # continue-as-new keeps the version
                kind=str(int(EventType.ExecutionStarted)),
            )
        )
        self.log.info("orchestrator %s continued as new (instance %s)", inst.name, inst.instance_id)
        return EpisodeResult(self.commit, ExecCache(new_exec), self.wake)


def disabled_orchestrator_message(name: str, known: list[str]) -> str:
    """The extension's text for an orchestration whose function is disabled or unknown."""
    listed = "', '".join(known)
    return (
        f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator function. "
        f"Additional info: The following are the known orchestrator functions: '{listed}'."
    )


def execution_started(inst: InstanceRow, now: float, version: str = "") -> Event:
    parent = None
    if inst.parent_instance_id:
        parent = {
            "Name": inst.parent_name,
            "Version": "",
            "TaskScheduleId": inst.parent_task_id,
            "OrchestrationInstance": {
                "InstanceId": inst.parent_instance_id,
                "ExecutionId": inst.parent_execution_id,
            },
        }
    return event(
        EventType.ExecutionStarted,
        now,
        Name=inst.name,
        Version=version,
        Input=inst.input,
        OrchestrationInstance={"InstanceId": inst.instance_id, "ExecutionId": inst.execution_id},
        ParentInstance=parent,
        Tags=None,
    )
