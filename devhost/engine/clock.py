"""The engine's clock: real UTC time, or a virtual clock that can jump forward to the next timer.

The virtual clock runs at real speed plus an offset. The engine calls ``jump_to`` only when
nothing else is runnable, so time never moves past work that is still to be done. The offset
is persisted by the engine so that virtual time never goes backwards across restarts.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock:
    """Real time. ``virtual`` is False and ``jump_to`` is not supported."""

    virtual = False

    def now(self) -> datetime:
        return utcnow()

    def timestamp(self) -> float:
        return self.now().timestamp()

    def jump_to(self, when: float) -> None:  # pragma: no cover - real time cannot jump
        raise RuntimeError("the real clock cannot jump; start the engine with virtual_clock=True")

    @property
    def offset(self) -> float:
        return 0.0


class VirtualClock(Clock):
    """Real time plus an offset that only grows; ``jump_to(t)`` moves now to ``t`` if it is later."""

    virtual = True

    def __init__(self, offset: float = 0.0) -> None:
        self._offset = offset
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)

    def timestamp(self) -> float:
        with self._lock:
            return utcnow().timestamp() + self._offset

    def jump_to(self, when: float) -> None:
        with self._lock:
            real = utcnow().timestamp()
            if when > real + self._offset:
                self._offset = when - real

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset
