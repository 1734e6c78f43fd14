"""The run's trace, handed to ``record_trace`` once the run ended (its spans: ``shared.telemetry``).

One activity per run, after the ending: the stage spans carry the progress's own times (what the
status shows), and the activity spans written during the run already point at their ids.
"""

from __future__ import annotations

from orchestrators.capture.run import CaptureRun
from orchestrators.retrying import Gen
from shared.activity_types import RECORD_TRACE
from shared.trace_ids import RunTrace, StageSpan


def run_trace(run: CaptureRun, plan: str, outcome: str, error_code: str | None = None) -> RunTrace:
    """The run's trace record: every stage that started, with its state and times."""
    ended = run.t.now()
    stages = [
        StageSpan(name=s.name, state=s.state, started=s.started, ended=s.ended or ended, note=s.note)
        for s in run.progress.stages
        if s.started is not None
    ]
    return RunTrace(
        run_id=run.run_id,
        capture_id=run.inp.capture_id,
        plan=plan,
        started=run.started_at,
        ended=ended,
        outcome=outcome,
        error_code=error_code,
        stages=stages,
    )


def record(run: CaptureRun, plan: str, outcome: str, error_code: str | None = None) -> Gen[None]:
    """Write the run's root and stage spans; a failure to do so never changes how the run ends."""
    try:
        yield from run.calls("trace").once(RECORD_TRACE, run_trace(run, plan, outcome, error_code))
    except Exception:  # tracing is an observer: its own failure is in its activity's log line
        pass
