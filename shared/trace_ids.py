"""A capture run's trace identity, derived from its run id alone (pure: orchestrators use it).

Orchestrator code replays, so it may not draw random ids. Every id of a capture's trace is a hash
instead: the trace id from the run id, the root span's id from the run id, a stage span's id from
(run id, stage, attempt). An activity is handed a ``TraceRef`` (the run id and its stage) inside its
payload, under ``TRACE_KEY``, and derives from it the stage span it is a child of; the activity's own
span and the Azure HTTP spans under it get random ids (they do not replay). Nothing here is secret:
a run id is already in every resource name and tag of the run.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import Field

from shared.model_base import WireModel

# The payload key an activity's trace reference travels under (removed before the input is validated).
TRACE_KEY = "traceRef"
ROOT = "capture"  # the root span's "stage" in the derivation


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(parts).encode()).digest()


def _nonzero(value: int) -> int:
    return value or 1  # an all-zero id is invalid in W3C trace context


def trace_id(run_id: str) -> int:
    """The 128-bit trace id of a capture run."""
    return _nonzero(int.from_bytes(_digest("trace", run_id)[:16], "big"))


def span_id(run_id: str, stage: str = ROOT, attempt: int = 1) -> int:
    """The 64-bit span id of the run's root span (``stage`` = ``ROOT``) or of one stage's attempt."""
    return _nonzero(int.from_bytes(_digest("span", run_id, stage, str(attempt))[:8], "big"))


def traceparent(run_id: str, stage: str = ROOT, attempt: int = 1) -> str:
    """The W3C ``traceparent`` of that span (sampled), e.g. to hand to a process that does not import us."""
    return f"00-{trace_id(run_id):032x}-{span_id(run_id, stage, attempt):016x}-01"


class TraceRef(WireModel):
    """Which span an activity's span is a child of: a stage's (``stage``) or the run's root (``None``)."""

    run_id: str
    stage: str | None = None
    attempt: int = Field(default=1, ge=1)

    @property
    def parent_span_id(self) -> int:
        return span_id(self.run_id, self.stage or ROOT, self.attempt)

    def with_payload(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, TRACE_KEY: self.to_wire()}


def pop_trace(payload: Any) -> TraceRef | None:
    """Take the trace reference out of an activity payload (in place); ``None`` if it has none or a bad one."""
    if not isinstance(payload, dict) or TRACE_KEY not in payload:
        return None
    raw = payload.pop(TRACE_KEY)
    try:
        return TraceRef.from_wire(raw)
    except Exception:  # a malformed reference must never fail the activity
        return None


class StageSpan(WireModel):
    """One stage of a run as the progress timed it (``shared.status.StageTiming``'s times and state)."""

    name: str
    state: str
    started: str
    ended: str
    note: str | None = None


class RunTrace(WireModel):
    """What the run's root span and stage spans are written from, once the run ended."""

    run_id: str
    capture_id: str
    plan: str
    started: str
    ended: str
    outcome: str  # succeeded | failed | canceled
    error_code: str | None = None
    stages: list[StageSpan] = Field(default_factory=list)


class TraceWritten(WireModel):
    """How many spans ``record_trace`` wrote (0 with tracing off)."""

    spans: int
