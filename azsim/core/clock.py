"""Time for the simulator: a real monotonic clock for servers, a manual one for deterministic tests.

Simulated Azure durations are converted to real seconds by the time scale (``0`` = instant); every
timed transition is stored as a real due time and applied lazily when state is next read.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
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


def utc_iso(at: dt.datetime | None = None) -> str:
    """ARM-style UTC timestamp (``2025-01-01T00:00:00.1234567+00:00`` shape, 7 fractional digits)."""
    at = at or dt.datetime.now(dt.UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0+00:00"
