"""Cancellation of a running capture: the external event ``cancel`` and the safe points that notice it.

``POST /api/captures/{id}/cancel`` raises the event ``cancel`` to the capture and to its running
sub-orchestrations. Each orchestration makes one ``CancelWatch`` per execution and waits on it in
every polling wait (``task_any`` of a fresh timer and the same event task — re-yielding an external
event wait is safe, a timer is never reused). An event that arrives while an activity runs is kept by
the SDK and noticed at the next wait, or at an explicit ``check()`` before an irreversible step.
``Canceled`` then unwinds to the orchestrator's compensation.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from datetime import timedelta
from typing import Any, TypeAlias, TypeVar

import azure.durable_functions as df

CANCEL_EVENT = "cancel"
T = TypeVar("T")
Gen: TypeAlias = Generator[Any, Any, T]  # as orchestrators.retrying.Gen (which imports this module)


class Canceled(Exception):
    """The capture was asked to stop; carries the caller's reason (may be None)."""

    def __init__(self, reason: str | None, requested_at: str | None = None) -> None:
        self.reason = reason
        self.requested_at = requested_at
        super().__init__(f"canceled{': ' + reason if reason else ''}")


def _event_data(value: Any) -> dict[str, Any]:
    # Raised event data reaches Python orchestrators as JSON text (sometimes twice encoded).
    for _ in range(2):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return {}
    return value if isinstance(value, dict) else {}


class CancelWatch:
    """The ``cancel`` event of one orchestration execution."""

    def __init__(self, context: df.DurableOrchestrationContext) -> None:
        self.context = context
        self.task = context.wait_for_external_event(CANCEL_EVENT)

    @property
    def requested(self) -> bool:
        return bool(self.task.is_completed)

    def error(self) -> Canceled:
        data = _event_data(self.task.result if self.task.is_completed else None)
        reason = data.get("reason")
        at = data.get("requestedAt")
        return Canceled(str(reason) if reason else None, str(at) if at else None)

    def arm(self) -> Gen[None]:
        """Register the event wait with the SDK now (one zero-length timer), so ``check()`` sees a cancel
        that arrives while an activity runs, even before the first polling wait."""
        yield self.context.task_any([self.context.create_timer(self.context.current_utc_datetime), self.task])

    def check(self) -> None:
        """Raise ``Canceled`` if the event has already been received."""
        if self.requested:
            raise self.error()

    def sleep(self, seconds: float) -> Gen[None]:
        """Wait on a fresh durable timer, or until ``cancel`` arrives (then raise ``Canceled``)."""
        self.check()
        timer = self.context.create_timer(
            self.context.current_utc_datetime + timedelta(seconds=max(seconds, 0.0))
        )
        yield self.context.task_any([timer, self.task])
        if self.requested:
            if not timer.is_completed:
                timer.cancel()
            raise self.error()

    def race(self, task: Any) -> Gen[bool]:
        """Wait for ``task`` or ``cancel``, whichever comes first; return True if cancel came first."""
        if self.requested:
            return True
        yield self.context.task_any([task, self.task])
        return bool(self.requested and not task.is_completed)
