"""The engine's virtual time (docs/virtual-time.md): holds, skips, wake-ups and activity sleeps.

``VirtualTime`` is the part of ``devhost.engine.Engine`` that moves a virtual clock: it keeps the
activity threads' ``time.sleep`` waits, the scheduled calls (``call_at``) and the holds, finds the
next event and skips to it (asking the clock owner, when there is one). The engine's threads and
state (``_cv``, ``_timers``, ``_activities_running``, ...) are the engine's; this class only declares
the ones it uses.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from devhost.engine.clock import Clock, ClockOwnerError, OwnerClock
from devhost.engine.store import Store

VIRTUAL_OFFSET_KEY = "virtual_clock_offset"  # written by older devhosts: virtual minus real time
VIRTUAL_NOW_KEY = "virtual_clock_now"

_real_sleep = time.sleep
sleep_local = threading.local()


def _sleep(seconds: float) -> None:
    """``time.sleep`` in a devhost process: virtual in the activity threads of a virtual-clock engine."""
    engine: VirtualTime | None = getattr(sleep_local, "engine", None)
    if engine is None or seconds <= 0:
        _real_sleep(seconds)
    else:
        engine._virtual_sleep(seconds)


_real_thread_start = threading.Thread.start


def _thread_start(self: threading.Thread) -> None:
    # A thread started by an activity sleeps in virtual time too: the SDK's LROPoller.result() polls
    # in a thread of its own while the activity waits for it.
    engine = getattr(sleep_local, "engine", None)
    if engine is not None:
        run = self.run

        def run_in_virtual_time() -> None:
            sleep_local.engine = engine
            run()

        self.run = run_in_virtual_time  # type: ignore[method-assign]
    _real_thread_start(self)


def install_virtual_sleep() -> None:
    # The Azure SDKs wait between LRO polls and retries with time.sleep (through the transport);
    # under a virtual clock those waits must pass in virtual time, or the clock could never skip.
    time.sleep = _sleep  # type: ignore[assignment]
    threading.Thread.start = _thread_start  # type: ignore[method-assign]


class VirtualTime:
    """Virtual-time methods of the engine (a mixin: the engine owns the state declared here)."""

    store: Store
    clock: Clock
    log: logging.Logger
    _cv: threading.Condition
    _stopping: bool
    _timers: list[tuple[float, str]]
    _next_due: dict[str, float]
    _activities_running: int
    _sleepers: list[tuple[float, int]]
    _sleep_seq: int
    _holds: int
    _wakeups: list[tuple[float, int, Any]]
    _owner_error: str | None

    def _stored_virtual_now(self) -> float | None:
        stored = self.store.get_meta(VIRTUAL_NOW_KEY)
        if stored is not None:
            return float(stored)
        offset = self.store.get_meta(VIRTUAL_OFFSET_KEY)
        return time.time() + float(offset) if offset is not None else None

    # --- virtual time ------------------------------------------------------------------------------
    @contextmanager
    def hold_clock(self) -> Iterator[None]:
        """Keep virtual time still for the block, e.g. to deliver an event before a racing timer fires."""
        with self._cv:
            self._holds += 1
        try:
            yield
        finally:
            with self._cv:
                self._holds -= 1
                self._cv.notify_all()

    def advance_clock(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds`` now, whatever is runnable (an explicit advance)."""
        if not self.clock.virtual:
            raise RuntimeError("the real clock cannot jump; start the engine with virtual_clock=True")
        with self._cv:
            self._skip_to(self.clock.timestamp() + seconds)
            self._cv.notify_all()

    def call_at(self, when: float, fn: Any) -> None:
        """Run ``fn()`` in a thread of its own once the engine's clock reaches ``when`` (epoch s).

        For host features that fire at a time (timer triggers): ``when`` is an event the virtual
        clock skips to, and ``fn`` counts as running work until it returns. On the real clock it
        simply runs at that time.
        """
        with self._cv:
            self._sleep_seq += 1
            heapq.heappush(self._wakeups, (when, self._sleep_seq, fn))
            self._cv.notify_all()

    def _fire_wakeups_locked(self, now: float) -> None:
        while self._wakeups and self._wakeups[0][0] <= now:
            _due, _seq, fn = heapq.heappop(self._wakeups)
            self._activities_running += 1  # counted as running until fn returns
            threading.Thread(target=self._run_wakeup, args=(fn,), name="devhost-call-at", daemon=True).start()

    def _run_wakeup(self, fn: Any) -> None:
        if self.clock.virtual:
            sleep_local.engine = self
        try:
            fn()
        except Exception:
            self.log.exception("devhost: a scheduled call failed")
        finally:
            with self._cv:
                self._activities_running -= 1
                self._cv.notify_all()

    def _virtual_sleep(self, seconds: float) -> None:
        # An activity thread waiting in virtual time: it does not count as running meanwhile.
        with self._cv:
            wake = self.clock.timestamp() + seconds
            self._sleep_seq += 1
            entry = (wake, self._sleep_seq)
            heapq.heappush(self._sleepers, entry)
            self._activities_running -= 1
            self._cv.notify_all()
            try:
                while not self._stopping and self.clock.timestamp() < wake:
                    self._cv.wait()
            finally:
                self._sleepers.remove(entry)
                heapq.heapify(self._sleepers)
                self._activities_running += 1
        if self._stopping:
            _real_sleep(min(seconds, 0.05))

    def _next_event_locked(self) -> float | None:
        # Drop timer entries superseded by a later schedule for the same instance.
        while self._timers and self._next_due.get(self._timers[0][1]) != self._timers[0][0]:
            heapq.heappop(self._timers)
        events = [self._timers[0][0]] if self._timers else []
        if self._sleepers:
            events.append(self._sleepers[0][0])
        if self._wakeups:
            events.append(self._wakeups[0][0])
        return min(events) if events else None

    def _skip_to(self, target: float) -> bool:
        """Move virtual time to ``target`` (a clock owner may stop earlier or refuse). Call with _cv held."""
        if isinstance(self.clock, OwnerClock):
            self._cv.release()  # never hold the engine while waiting on another process
            try:
                moved = self.clock.advance_to(target)
                self._owner_error = None
            except ClockOwnerError as exc:
                if str(exc) != self._owner_error:
                    self.log.warning("virtual clock: cannot skip time: %s", exc)
                self._owner_error = str(exc)
                moved = False
            finally:
                self._cv.acquire()
        else:
            moved = self.clock.advance_to(target)
        if moved and self.clock.persist:
            self.store.set_meta(VIRTUAL_NOW_KEY, repr(self.clock.timestamp()))
        return moved


__all__ = ["VIRTUAL_NOW_KEY", "VirtualTime", "install_virtual_sleep", "sleep_local"]
