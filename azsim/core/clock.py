"""Time for the simulator: a real monotonic clock, a manual one for unit tests, and the simulated clock.

In real-clock mode simulated Azure durations are converted to real seconds by the time scale
(``0`` = instant); every timed transition is stored as a due time on the clock's scale and applied
lazily when state is next read. In virtual mode (``SimClock``) the clock counts simulated seconds
and never moves with wall time: it moves only when ``advance`` is called, which the local cloud's
hosts do when nothing is runnable anywhere (see docs/virtual-time.md).
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that only moves when told to (tests)."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


# Targets this close before an event count as the event itself (clients round through epoch floats).
SNAP_S = 1e-6

# Something with timed state reports its earliest due time on the clock's scale (None: nothing due).
DueSource = Callable[[], float | None]


class SimClock:
    """The one simulated clock of a virtual-time local cloud (thread-safe).

    ``now()`` is simulated seconds since start; ``wall()`` the matching UTC epoch time (start
    wall time + simulated seconds). It tracks what would make a time skip wrong: requests in
    flight (``busy()``) and holds (``hold()``/``release()``), and asks its due sources for the
    next event. ``advance(to=..., if_idle=True)`` is the only way it moves.
    """

    virtual = True

    def __init__(self, epoch: float | None = None) -> None:
        # A whole-second epoch: a client's "epoch + seconds" then rounds the same way on every run.
        self.epoch = float(round(time.time())) if epoch is None else epoch
        self._now = 0.0
        self._lock = threading.Lock()
        self._in_flight = 0
        self._holds: dict[str, str] = {}
        self._hold_ids = itertools.count(1)
        self._sources: list[DueSource] = []
        # Bumped when a request ends: an advance that read the due times before it must not move.
        self._generation = 0

    def now(self) -> float:
        with self._lock:
            return self._now

    def wall(self) -> float:
        return self.epoch + self.now()

    def add_due_source(self, source: DueSource) -> None:
        with self._lock:
            self._sources.append(source)

    def next_due(self) -> float | None:
        """The earliest event after now that any due source reports (None: nothing pending)."""
        with self._lock:
            sources = list(self._sources)
            now = self._now
        # Transitions apply lazily: one due at or before now is not an event to skip to.
        dues = [d for d in (s() for s in sources) if d is not None and d > now]
        return min(dues) if dues else None

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Count one request in flight for its duration: no skip while any is."""
        with self._lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                self._generation += 1

    def hold(self, reason: str = "") -> str:
        with self._lock:
            hold_id = str(next(self._hold_ids))
            self._holds[hold_id] = reason
            return hold_id

    def release(self, hold_id: str) -> bool:
        with self._lock:
            return self._holds.pop(hold_id, None) is not None

    def state(self) -> dict[str, object]:
        due = self.next_due()
        with self._lock:
            return {
                "virtual": True,
                "now": self._now,
                "epoch": self.epoch,
                "nextDue": due,
                "inFlight": self._in_flight,
                "holds": len(self._holds),
            }

    def advance(self, *, to: float | None = None, by: float | None = None, if_idle: bool = False) -> bool:
        """Move time forward; return whether it moved.

        ``by`` moves exactly that far (an explicit advance). ``to`` moves to the earlier of ``to``
        and the next due event of this side; ``to=None`` with ``if_idle`` moves to that next event.
        With ``if_idle`` nothing moves while a request is in flight or a hold is open.
        """
        with self._lock:
            generation = self._generation
        due = self.next_due()
        with self._lock:
            if if_idle and (self._in_flight or self._holds or generation != self._generation):
                return False
            if by is not None:
                target = self._now + max(0.0, by)
            else:
                candidates = [t for t in (to, due) if t is not None]
                if not candidates:
                    return False
                target = min(candidates)
                if to is not None and due is not None and to < due <= to + SNAP_S:
                    # A client's time went through float epoch seconds: an event a rounding error
                    # after its target is the same instant (or a poll would miss the transition).
                    target = due
            if target <= self._now:
                return False
            self._now = target
            return True


def wall_time(clock: Clock) -> float:
    """UTC epoch seconds on ``clock``: simulated under a ``SimClock``, else the real time."""
    if isinstance(clock, SimClock):
        return clock.wall()
    return time.time()


def utc_iso(at: dt.datetime | None = None) -> str:
    """ARM-style UTC timestamp (``2025-01-01T00:00:00.1234567+00:00`` shape, 7 fractional digits)."""
    at = at or dt.datetime.now(dt.UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0+00:00"
