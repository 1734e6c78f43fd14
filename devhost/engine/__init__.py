"""devhost's durable engine: what the Durable Task extension does around the Python SDK.

``Engine`` implements ``devhost.api.EngineAPI``. It keeps instances, histories, pending messages,
timers and activity work in SQLite under a work dir (``store``), runs orchestrator episodes
through the SDK's handle one new event at a time (``orchestrations``), runs activities in
parallel up to a limit (``activities``) and fires timers on a real or virtual clock (``clock``).

Virtual time (docs/virtual-time.md): the clock stands still while anything is runnable or a hold is
open, and otherwise skips to the next event: a durable timer, an activity's ``time.sleep`` (the
Azure SDK's LRO and retry waits; slept in virtual time), or, with a clock owner, the owner's next
event.

Threading: ``max_concurrent_orchestrations`` episode workers (never two episodes of one instance
at once), ``max_concurrent_activities`` activity workers and one timer thread, all woken through
one condition variable (no polling). Every public method is safe to call from any thread.
"""

from __future__ import annotations

import fcntl
import heapq
import json
import logging
import threading
import time
import uuid
from collections import deque
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from devhost.api import InstanceExists, InstanceNotFound, InstanceNotRunning, InstanceQuery, InstanceRecord
from devhost.engine import sdk_speedups
from devhost.engine.activities import run_activity
from devhost.engine.clock import Clock, OwnerClock, VirtualClock
from devhost.engine.history import EventType, event, fmt_status_time, parse_time
from devhost.engine.orchestrations import (
    TERMINAL_STATUSES,
    Episode,
    ExecCache,
    execution_started,
    played_text,
)
from devhost.engine.store import ACTIVE, ActivityItem, InstanceRow, NewMessage, Store
from devhost.engine.versioning import Versioning, started_version
from devhost.engine.vtime import VirtualTime, install_virtual_sleep, sleep_local
from devhost.functions import AppIndex

DB_NAME = "durable.sqlite3"
# How often (wall seconds) to ask a clock owner again after it refused a skip (busy or held).
OWNER_RETRY_S = 0.005


class Engine(VirtualTime):
    """The durable engine. See the module docstring; ``start()`` before use, ``stop()`` when done."""

    def __init__(
        self,
        index: AppIndex,
        workdir: Path,
        *,
        virtual_clock: bool = False,
        clock_url: str | None = None,
        max_concurrent_activities: int = 10,
        max_concurrent_orchestrations: int = 10,
        log: logging.Logger | None = None,
        versioning: Versioning | None = None,
    ) -> None:
        if max_concurrent_activities < 1 or max_concurrent_orchestrations < 1:
            raise ValueError(
                "maxConcurrentActivityFunctions and maxConcurrentOrchestratorFunctions must be at least 1 "
                f"(got {max_concurrent_activities} and {max_concurrent_orchestrations})"
            )
        sdk_speedups.apply()
        self.index = index
        self.workdir = Path(workdir)
        self.log = log or logging.getLogger("devhost.engine")
        self.store = Store(self.workdir / DB_NAME)
        self.clock: Clock
        if virtual_clock and clock_url:
            self.clock = OwnerClock(clock_url)
        elif virtual_clock:
            self.clock = VirtualClock(self._stored_virtual_now())
        else:
            self.clock = Clock()
        self.max_concurrent_activities = max_concurrent_activities
        self.max_concurrent_orchestrations = max_concurrent_orchestrations
        self.versioning = versioning or Versioning()
        self._rejected: set[str] = set()  # instances this worker may not run (versionFailureStrategy Reject)

        self._cv = threading.Condition()
        self._ready: deque[str] = deque()
        self._ready_set: set[str] = set()
        self._locked: set[str] = set()
        self._timers: list[tuple[float, str]] = []
        self._next_due: dict[str, float] = {}
        self._activities: deque[ActivityItem] = deque()
        self._activities_running = 0
        self._activity_workers_busy = 0  # workers holding an activity (running or waiting in virtual time)
        self._sleepers: list[tuple[float, int]] = []
        self._sleep_seq = 0
        self._holds = 0
        self._wakeups: list[tuple[float, int, Any]] = []
        self._owner_error: str | None = None
        self._caches: dict[str, ExecCache] = {}
        self._threads: list[threading.Thread] = []
        self._started = False
        self._stopping = False
        self._start_lock = threading.Lock()
        self._workdir_lock: Any = None

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker threads and resume every in-flight instance recorded in the work dir."""
        with self._cv:
            if self._started:
                return
            self._lock_workdir()
            self._started = True
            self._stopping = False
            if self.clock.virtual:
                install_virtual_sleep()
            for instance_id, due in self.store.all_due():
                self._schedule_due(instance_id, due)
            pending = self.store.pending_activities()
            self._activities.extend(pending)
        if pending:
            self.log.info("resuming %d activity executions whose completion was not recorded", len(pending))
        targets = [
            (self._orchestration_worker, f"devhost-orch-{i}")
            for i in range(self.max_concurrent_orchestrations)
        ]
        targets += [
            (self._activity_worker, f"devhost-activity-{i}") for i in range(self.max_concurrent_activities)
        ]
        targets.append((self._timer_worker, "devhost-timers"))
        for target, name in targets:
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the workers. Running activities are not interrupted; their results are kept if they
        finish within ``timeout``, otherwise they run again on the next start (at-least-once)."""
        with self._cv:
            if not self._started:
                self.store.close()
                return
            self._stopping = True
            self._cv.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        self._threads.clear()
        with self._cv:
            self._started = False
        self._unlock_workdir()
        if alive:
            self.log.warning("engine stopped with busy workers still running: %s", ", ".join(alive))
        else:
            self.store.close()

    def _lock_workdir(self) -> None:
        # Two engines on one work dir would run every episode and activity twice.
        handle = open(self.workdir / "engine.lock", "w")  # noqa: SIM115 - held until stop()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise RuntimeError(
                f"Another devhost engine is already running on the work dir {self.workdir}; stop it first "
                "or pass a different --workdir."
            ) from None
        self._workdir_lock = handle

    def _unlock_workdir(self) -> None:
        if self._workdir_lock is not None:
            self._workdir_lock.close()  # closing releases the flock
            self._workdir_lock = None

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def now(self) -> datetime:
        """The engine's current time (UTC, aware); virtual time in virtual-clock mode."""
        return self.clock.now()

    # --- waiting (tests, CLI) ---------------------------------------------------------------------
    def _idle_locked(self) -> bool:
        # Queued activities are not runnable while every worker holds an activity that waits in virtual
        # time (an SDK poller's or retry's sleep): only a skip can free a worker then.
        queued = bool(self._activities) and self._activity_workers_busy < self.max_concurrent_activities
        return not self._ready and not self._locked and not queued and self._activities_running == 0

    def run_until_idle(self, timeout: float = 30.0) -> None:
        """Block until nothing is runnable: no episode or activity ready or running, and with the
        virtual clock also no pending timer or activity sleep (time skips to each). Raises TimeoutError."""
        self.start()
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                if self._idle_locked() and not (self.clock.virtual and (self._next_due or self._sleepers)):
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"devhost engine still busy after {timeout}s: {len(self._ready)} instances ready, "
                        f"{len(self._locked)} episodes running, {len(self._activities)} activities queued, "
                        f"{self._activities_running} running, {len(self._next_due)} timers pending"
                    )
                self._cv.wait(remaining)

    def wait_for(self, instance_id: str, timeout: float = 30.0) -> InstanceRecord:
        """Block until the instance is Completed, Failed or Terminated; return its record."""
        self.start()
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                row = self.store.get_instance(instance_id)
                if row is None:
                    raise InstanceNotFound(instance_id)
                if row.runtime_status in TERMINAL_STATUSES:
                    return self._record(row)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"instance {instance_id} ({row.name}) is still {row.runtime_status} after {timeout}s"
                    )
                self._cv.wait(remaining)

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        """The recorded history of the instance's current execution, oldest first."""
        row = self.store.get_instance(instance_id)
        if row is None:
            raise InstanceNotFound(instance_id)
        return [json.loads(t) for t in self.store.history_texts(instance_id, row.execution_id)]

    # --- EngineAPI ------------------------------------------------------------------------------------
    def start_new(
        self,
        orchestrator_name: str,
        instance_id: str | None,
        input_json: str | None,
        *,
        replace_active: bool = False,
        version: str | None = None,
    ) -> str:
        """Schedule a new instance. ``input_json`` is the input's JSON text (what ``get_input`` decodes);
        its version is ``version``, or host.json's defaultVersion when None.

        Raises ``devhost.functions.FunctionNotFound`` for an unknown orchestrator and
        ``InstanceExists`` when the id belongs to an instance that has not finished, unless
        ``replace_active`` (overridableExistingInstanceStates AnyState): then a new execution replaces it.
        """
        self.index.orchestrator(orchestrator_name)
        iid = instance_id or uuid.uuid4().hex
        with self._start_lock:
            existing = self.store.get_instance(iid)
            active = existing is not None and existing.runtime_status in ACTIVE
            if existing is not None and active and not replace_active:
                raise InstanceExists(
                    f"An instance with id '{iid}' already exists and is {existing.runtime_status}; "
                    "wait for it to finish or terminate it first."
                )
            now = self.clock.timestamp()
            row = InstanceRow(iid, orchestrator_name, uuid.uuid4().hex, "Pending", now, now, input_json)
            version = self.versioning.new_version if version is None else version
            start = NewMessage(iid, row.execution_id, now, execution_started(row, now, version), kind="0")
            if active:
                with self._cv:  # no episode of the old execution may commit over the new one
                    while iid in self._locked:
                        self._cv.wait()
                    self.store.create_instance(row, start)
                    self._caches.pop(iid, None)
            else:
                self.store.create_instance(row, start)
        self.log.info("orchestrator %s scheduled (instance %s)", orchestrator_name, iid)
        with self._cv:
            self._rejected.discard(iid)  # a new execution (with its own version)
            self._make_ready(iid)
        return iid

    def get_instance(self, instance_id: str, *, with_history: bool = False) -> InstanceRecord | None:
        row = self.store.get_instance(instance_id)
        if row is None:
            return None
        record = self._record(row)
        if with_history:
            record.history = [json.loads(t) for t in self.store.history_texts(instance_id, row.execution_id)]
        return record

    def query(self, query: InstanceQuery) -> list[InstanceRecord]:
        return [self._record(r) for r in self._query_rows(query)]

    def raise_event(self, instance_id: str, event_name: str, data_json: str | None) -> None:
        """Deliver an external event; ``data_json`` becomes ``EventRaised.Input`` verbatim (JSON text)."""
        row = self._active(instance_id, "raise an event")
        now = self.clock.timestamp()
        self.store.enqueue(
            NewMessage(
                instance_id, None, now, event(EventType.EventRaised, now, Name=event_name, Input=data_json)
            )
        )
        self.log.info("event %s raised (instance %s, orchestrator %s)", event_name, instance_id, row.name)
        with self._cv:
            self._make_ready(instance_id)

    def terminate(self, instance_id: str, reason: str | None) -> None:
        row = self._active(instance_id, "terminate it")
        now = self.clock.timestamp()
        self.store.enqueue(
            NewMessage(
                instance_id,
                None,
                now,
                event(EventType.ExecutionTerminated, now, Input=reason),
                kind="terminate",
            )
        )
        self.log.info("termination requested (instance %s, orchestrator %s)", instance_id, row.name)
        with self._cv:
            self._rejected.discard(instance_id)  # a termination is never rejected
            self._make_ready(instance_id)

    def purge(self, instance_id: str) -> int:
        """Delete a finished instance with its history; 0 if it is unknown or has not finished."""
        row = self.store.get_instance(instance_id)
        if row is None or row.runtime_status not in TERMINAL_STATUSES:
            return 0
        return self.store.delete_instances([instance_id])

    def purge_many(self, query: InstanceQuery) -> int:
        """Delete the finished instances matching ``query`` (unfinished ones are never purged)."""
        ids = [r.instance_id for r in self._query_rows(query) if r.runtime_status in TERMINAL_STATUSES]
        return self.store.delete_instances(ids) if ids else 0

    # --- helpers --------------------------------------------------------------------------------------
    def _active(self, instance_id: str, what: str) -> InstanceRow:
        row = self.store.get_instance(instance_id)
        if row is None:
            raise InstanceNotFound(f"No instance with id '{instance_id}'.")
        if row.runtime_status in TERMINAL_STATUSES:
            raise InstanceNotRunning(
                f"Instance '{instance_id}' is {row.runtime_status}; cannot {what} after it finished."
            )
        return row

    def _query_rows(self, q: InstanceQuery) -> list[InstanceRow]:
        clauses: list[str] = []
        args: list[Any] = []
        if q.runtime_status:
            clauses.append(f"runtime_status IN ({','.join('?' * len(q.runtime_status))})")
            args.extend(q.runtime_status)
        if q.created_time_from:
            clauses.append("created_at >= ?")
            args.append(parse_time(q.created_time_from))
        if q.created_time_to:
            clauses.append("created_at <= ?")
            args.append(parse_time(q.created_time_to))
        if q.instance_id_prefix:
            clauses.append("substr(instance_id, 1, ?) = ?")
            args.extend([len(q.instance_id_prefix), q.instance_id_prefix])
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return self.store.query_instances(where, tuple(args), q.top)

    @staticmethod
    def _record(row: InstanceRow) -> InstanceRecord:
        return InstanceRecord(
            instance_id=row.instance_id,
            name=row.name,
            runtime_status=row.runtime_status,
            created_time=fmt_status_time(row.created_at),
            last_updated_time=fmt_status_time(row.updated_at),
            input=row.input,
            output=row.output,
            custom_status=row.custom_status,
        )

    # --- scheduling (call with self._cv held) ------------------------------------------------------------
    def _make_ready(self, instance_id: str) -> None:
        if instance_id in self._rejected:
            return  # left for a compatible worker: running it again here would only be rejected again
        if instance_id not in self._ready_set and instance_id not in self._locked:
            self._ready.append(instance_id)
            self._ready_set.add(instance_id)
        self._cv.notify_all()

    def _schedule_due(self, instance_id: str, due: float | None) -> None:
        if due is None:
            self._next_due.pop(instance_id, None)
        elif due <= self.clock.timestamp():
            self._next_due.pop(instance_id, None)
            self._make_ready(instance_id)
        elif self._next_due.get(instance_id) != due:
            self._next_due[instance_id] = due
            heapq.heappush(self._timers, (due, instance_id))
            self._cv.notify_all()

    # --- workers -----------------------------------------------------------------------------------------
    def _orchestration_worker(self) -> None:
        while True:
            with self._cv:
                while not self._stopping and not self._ready:
                    self._cv.wait()
                if self._stopping:
                    return
                iid = self._ready.popleft()
                self._ready_set.discard(iid)
                self._locked.add(iid)
            wake: list[str] = []
            try:
                wake = self._run_episode(iid)
            except Exception:
                self._caches.pop(iid, None)
                self.log.exception("devhost internal error running an episode of instance %s", iid)
                self._quarantine(iid)
            finally:
                with self._cv:
                    self._locked.discard(iid)
                    if not self._stopping:
                        self._schedule_due(iid, self.store.next_due(iid))
                        for other in wake:
                            self._make_ready(other)
                    self._cv.notify_all()

    def _quarantine(self, iid: str) -> None:
        # An engine bug must not spin on the same message forever: drop it so the rest keeps going.
        try:
            msg = self.store.next_message(iid, self.clock.timestamp())
            if msg is not None:
                self.store.drop_message(msg.id)
        except Exception:
            self.log.exception("could not drop the failing message of instance %s", iid)

    def _run_episode(self, iid: str) -> list[str]:
        msg = self.store.next_message(iid, self.clock.timestamp())
        if msg is None:
            return []
        inst = self.store.get_instance(iid)
        stale = (
            inst is None
            or inst.runtime_status in TERMINAL_STATUSES
            or (msg.execution_id is not None and msg.execution_id != inst.execution_id)
        )
        if inst is None or stale:
            self.store.drop_message(msg.id)
            return []
        cache = self._caches.get(iid)
        if cache is None or cache.execution_id != inst.execution_id:
            cache = ExecCache(
                inst.execution_id,
                [played_text(json.loads(t)) for t in self.store.history_texts(iid, inst.execution_id)],
                [json.loads(s) for s in self.store.action_sigs(iid, inst.execution_id)],
            )
            self._caches[iid] = cache
        is_start = msg.event.get("EventType") == EventType.ExecutionStarted
        if (is_start and cache.played) or (not is_start and not cache.played and msg.kind != "terminate"):
            # A duplicate start, or an event for an execution that never started: nothing to run.
            self.store.drop_message(msg.id)
            return []
        version = started_version(cache.played, msg.event)
        refusal = None if msg.kind == "terminate" else self.versioning.mismatch(iid, version)
        if refusal is not None and self.versioning.failure_strategy == "Reject":
            self.log.warning("%s Rejected (versionFailureStrategy Reject): it stays as it is.", refusal)
            with self._cv:
                self._rejected.add(iid)
            return []
        if is_start:
            self.log.info("orchestrator %s started (instance %s)", inst.name, iid)
        episode = Episode(
            self.index,
            inst,
            msg,
            cache,
            self.clock.timestamp(),
            self.log,
            version=version,
            default_version=self.versioning.new_version,
            refusal=refusal,
        )
        episode.existing_lookup = self.store.get_instance
        result = episode.run()
        created = self.store.commit_episode(result.commit)
        if result.cache is None:
            self._caches.pop(iid, None)
        else:
            self._caches[iid] = result.cache
        if created:
            with self._cv:
                self._activities.extend(created)
                self._cv.notify_all()
        return result.wake

    def _activity_worker(self) -> None:
        if self.clock.virtual:
            sleep_local.engine = self
        while True:
            with self._cv:
                while not self._stopping and not self._activities:
                    self._cv.wait()
                if self._stopping:
                    return
                item = self._activities.popleft()
                self._activities_running += 1
                self._activity_workers_busy += 1
            recorded = False
            try:
                self.log.info(
                    "activity %s started (instance %s, task %d)", item.name, item.instance_id, item.task_id
                )
                ev, ok = run_activity(self.index, item, self.clock.timestamp)
                with self._cv:
                    stopping = self._stopping
                if stopping and not self._store_open():
                    return
                recorded = self.store.complete_activity(
                    item.id,
                    NewMessage(item.instance_id, item.execution_id, self.clock.timestamp(), ev),
                )
                self.log.info(
                    "activity %s %s (instance %s, task %d)",
                    item.name,
                    "completed" if ok else "failed",
                    item.instance_id,
                    item.task_id,
                )
            except Exception:
                self.log.exception(
                    "devhost internal error running activity %s (instance %s)", item.name, item.instance_id
                )
            finally:
                with self._cv:
                    self._activities_running -= 1
                    self._activity_workers_busy -= 1
                    if recorded:
                        self._make_ready(item.instance_id)
                    self._cv.notify_all()

    def _store_open(self) -> bool:
        try:
            self.store.read("SELECT 1")
            return True
        except Exception:
            return False

    def _timer_worker(self) -> None:
        with self._cv:
            while not self._stopping:
                now = self.clock.timestamp()
                while self._timers and self._timers[0][0] <= now:
                    due, iid = heapq.heappop(self._timers)
                    if self._next_due.get(iid) == due:
                        del self._next_due[iid]
                        self._make_ready(iid)
                self._fire_wakeups_locked(now)
                target = self._next_event_locked()
                if not self.clock.virtual:
                    self._cv.wait((target - now) if target is not None else None)
                elif target is None or not self._idle_locked() or self._holds:
                    self._cv.wait()  # woken by new work, finished work or a released hold
                elif self._skip_to(target):
                    self._cv.notify_all()  # sleeping activities check the new time
                else:
                    self._cv.wait(OWNER_RETRY_S)  # the clock owner is busy or held: ask again soon


__all__ = ["Engine"]
