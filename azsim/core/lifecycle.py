"""Timed transitions without background threads.

A transition is scheduled at a due time on the clock's scale (Azure seconds x time scale in
real-clock mode; simulated seconds on a ``SimClock``, where the time scale is 1) and applied
lazily: the simulator calls ``run_due()`` before it reads or changes state, so with time scale 0
everything due "now" has happened by the next request, and a ``ManualClock`` makes tests
deterministic. ``next_due()`` tells the virtual clock when the next transition is.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from azsim.core.clock import Clock

# A transition receives the real time it was due at, so chained transitions keep exact spacing
# even when they are applied late.
Transition = Callable[[float], None]


@dataclass(order=True)
class _Entry:
    due: float
    seq: int
    fn: Transition = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class Lifecycle:
    def __init__(self, clock: Clock, time_scale: float) -> None:
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        self.clock = clock
        self.time_scale = time_scale
        self._heap: list[_Entry] = []
        self._seq = itertools.count()

    def real(self, azure_seconds: float) -> float:
        """Real seconds for a simulated Azure duration."""
        return azure_seconds * self.time_scale

    def validity(self, azure_seconds: float) -> float:
        """Clock seconds for a validity window (a SAS's lifetime): never scaled to zero.

        At time scale 0 operations are instant, but a grant must still work until a client has
        used it, so the window is kept in real seconds there.
        """
        return azure_seconds * self.time_scale if self.time_scale > 0 else float(azure_seconds)

    def now(self) -> float:
        return self.clock.now()

    def schedule(self, azure_seconds: float, fn: Transition, *, base: float | None = None) -> _Entry:
        return self._push(self.real(azure_seconds), fn, base)

    def schedule_validity_end(self, azure_seconds: float, fn: Transition) -> _Entry:
        """Schedule the end of a validity window (see ``validity``)."""
        return self._push(self.validity(azure_seconds), fn, None)

    def _push(self, clock_seconds: float, fn: Transition, base: float | None) -> _Entry:
        start = self.clock.now() if base is None else base
        entry = _Entry(start + clock_seconds, next(self._seq), fn)
        heapq.heappush(self._heap, entry)
        return entry

    def run_due(self) -> None:
        now = self.clock.now()
        while self._heap and self._heap[0].due <= now:
            entry = heapq.heappop(self._heap)
            if not entry.cancelled:
                entry.fn(entry.due)

    def next_due(self) -> float | None:
        """The due time of the earliest pending transition (None when nothing is scheduled)."""
        heap = self._heap
        while heap and heap[0].cancelled:
            heapq.heappop(heap)
        return heap[0].due if heap else None

    def clear(self) -> None:
        self._heap.clear()

    def fraction(self, start: float, azure_seconds: float) -> float:
        """How far (0..1) a transition that started at real ``start`` has progressed."""
        total = self.real(azure_seconds)
        if total <= 0:
            return 1.0
        return max(0.0, min(1.0, (self.clock.now() - start) / total))
