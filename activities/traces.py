"""The run's own spans: its root and one per stage, written once the run ended (``shared.telemetry``).

The orchestrator cannot write spans (it replays, and may not do I/O), so it hands its progress's
stage times to this activity, which writes them with the ids derived from the run id: the activity
spans written during the run already point at them.
"""

from __future__ import annotations

from activities._common import activity
from shared import telemetry
from shared.activity_types import RECORD_TRACE
from shared.trace_ids import RunTrace, TraceWritten


@activity(RECORD_TRACE)
def record_trace(inp: RunTrace) -> TraceWritten:
    """Write the run's root span and stage spans (nothing with tracing off)."""
    return TraceWritten(spans=telemetry.emit_run(inp))
