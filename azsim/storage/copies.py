"""A Copy Blob played out in simulated time: the state the blob front shows for its destination.

Azurite finishes an async copy at once; Azure's copies take minutes and can fail. ``SimulatedCopy``
holds one copy's timeline: pending with advancing progress for ``CopyBehaviour.copy_seconds(size)``,
then ``success``; or, for an injected ``CopyFaultKind``, ``failed``, ``aborted`` or a stall at
``FAULT_AT_FRACTION`` of the duration. ``azsim.storage.proxy`` rewrites the answers with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from azsim.interfaces import CopyBehaviour, CopyFaultKind

# Where in the simulated duration an injected fault strikes (and where a stall freezes).
FAULT_AT_FRACTION = 0.5
_FAILED_DESCRIPTION = (
    '500 InternalError "Copy failed: the service could not complete the copy (azsim injected fault)."'
)


@dataclass
class SimulatedCopy:
    """One destination blob whose copy is being played out in simulated time."""

    copy_id: str
    source_url: str  # holds a SAS: never log it
    fault: CopyFaultKind | None
    started: float  # monotonic
    started_wall: float
    duration: float | None = None  # known once the size is
    size: int | None = None
    final_status: str | None = None  # "aborted" | "failed" once ended early
    final_bytes: int = 0
    final_wall: float = 0.0
    description: str | None = None
    last_source_check: float = field(default=-1e9)

    def learn_size(self, size: int, behaviour: CopyBehaviour) -> None:
        if self.size is None:
            self.size = size
            self.duration = max(0.0, float(behaviour.copy_seconds(size)))

    def _end(self, status: str, now: float, copied: int, description: str | None) -> None:
        self.final_status = status
        self.final_bytes = copied
        self.final_wall = self.started_wall + (now - self.started)
        self.description = description

    def view(self, now: float) -> tuple[str, int, float | None, str | None]:
        """``(status, bytes copied, completion wall time or None, description)`` at monotonic ``now``."""
        size = self.size or 0
        duration = self.duration or 0.0
        if self.final_status is not None:
            return self.final_status, self.final_bytes, self.final_wall, self.description
        if self.duration is None:
            return "pending", 0, None, None  # size not known yet: the copy has only just begun
        elapsed = now - self.started
        fraction = 1.0 if duration <= 0 else min(1.0, elapsed / duration)
        if self.fault is not None and fraction >= FAULT_AT_FRACTION:
            copied = int(size * FAULT_AT_FRACTION)
            if self.fault == "stall":
                return "pending", copied, None, None
            if self.fault == "fail":
                self._end("failed", self.started + duration * FAULT_AT_FRACTION, copied, _FAILED_DESCRIPTION)
            else:
                self._end("aborted", self.started + duration * FAULT_AT_FRACTION, copied, None)
            return self.view(now)
        if fraction >= 1.0:
            return "success", size, self.started_wall + duration, None
        return "pending", min(int(size * fraction), max(size - 1, 0)), None, None

    def next_due(self) -> float | None:
        """When this copy's state next changes by itself (its end or its fault), on the clock's scale."""
        if self.final_status is not None or self.duration is None:
            return None
        if self.fault is None:
            return self.started + self.duration
        if self.fault == "stall":
            return None
        return self.started + self.duration * FAULT_AT_FRACTION

    def abort(self, now: float) -> None:
        _, copied, _, _ = self.view(now)
        self._end("aborted", now, copied, None)

    def fail(self, now: float, description: str) -> None:
        _, copied, _, _ = self.view(now)
        self._end("failed", now, copied, description)
