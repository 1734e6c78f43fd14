"""The pipeline's pieces on their own: activity declarations, poll() verdicts, the plan, run-id fields."""

from __future__ import annotations

from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

import activities
from orchestrators.capture.plan import CAPTURE
from orchestrators.models import ExportDiskInput, PublishVersionInput
from orchestrators.polling import Done, OutOfPolls, TimedOut, poll
from shared.activity_types import AZURE_ACTIVITIES, Activity
from shared.contracts import CapturePolicy, ExportStartInput, GalleryCheckInput, SnapshotInput, VersionInput
from shared.status import STAGES, CaptureProgress, Stage


class Clock:
    """Just enough of a Durable context for ``poll``: a clock that a timer moves forward."""

    def __init__(self) -> None:
        self.current_utc_datetime = datetime(2024, 1, 1, tzinfo=UTC)
        self.timers: list[float] = []

    def create_timer(self, at: datetime) -> datetime:
        return at


def drive(ctx: Clock, gen: Generator[Any, Any, Any]) -> Any:
    """Run an orchestrator sub-generator: every yielded timer fires at once (the clock jumps to it)."""
    try:
        task = next(gen)
        while True:
            ctx.timers.append((task - ctx.current_utc_datetime).total_seconds())
            ctx.current_utc_datetime = task
            task = gen.send(None)
    except StopIteration as stop:
        return stop.value


def probe_of(values: list[int]) -> Any:
    it = iter(values)

    def probe() -> Generator[Any, Any, int]:
        return next(it)
        yield  # a generator, like every probe

    return probe


def test_every_declared_activity_is_registered_under_its_name_with_its_input_type() -> None:
    assert set(activities.ACTIVITIES) == {a.name for a in AZURE_ACTIVITIES}
    for a in AZURE_ACTIVITIES:
        fn = activities.ACTIVITIES[a.name]
        assert fn.__name__ == a.name
        with pytest.raises(Exception, match=a.input.__name__):
            fn({"unexpected": 1})  # the input is validated as the declared type


def test_a_stub_decodes_its_declared_result_type() -> None:
    stub = Activity("x", SnapshotInput, CaptureProgress)
    got = stub.decode({"captureId": "c", "sourceVmId": "v"})
    assert isinstance(got, CaptureProgress) and got.stage is Stage.PREFLIGHT


def test_poll_returns_done_with_the_value_that_ended_it() -> None:
    ctx = Clock()
    verdict = drive(ctx, poll(ctx, probe_of([1, 2, 3, 4]), lambda v: v >= 3, lambda n, _: 10.0 * (n + 1)))
    assert verdict == Done(3) and ctx.timers == [10.0, 20.0]


def test_poll_times_out_from_started_and_says_how_long_it_waited() -> None:
    ctx = Clock()
    verdict = drive(ctx, poll(ctx, probe_of([0] * 10), lambda v: False, lambda n, _: 40.0, timeout=100.0))
    assert isinstance(verdict, TimedOut) and verdict.waited == 120.0 and verdict.polls == 3


def test_poll_spends_its_budget_then_says_so() -> None:
    ctx = Clock()
    verdict = drive(ctx, poll(ctx, probe_of([0] * 10), lambda v: False, lambda n, _: 5.0, max_polls=2))
    assert isinstance(verdict, OutOfPolls) and verdict.polls == 2 and ctx.timers == [5.0, 5.0]


def test_poll_probes_at_once_when_delay_says_none_without_counting_it() -> None:
    ctx = Clock()
    # value 1 asks for an immediate re-probe (a recreate): no timer, not held against the budget.
    verdict = drive(
        ctx,
        poll(
            ctx, probe_of([0, 1, 0, 2]), lambda v: v == 2, lambda n, v: None if v == 1 else 7.0, max_polls=2
        ),
    )
    assert verdict == Done(2) and ctx.timers == [7.0, 7.0]


def test_poll_deadline_can_move() -> None:
    ctx = Clock()
    start = ctx.current_utc_datetime
    marks = {"progress": start}

    def probe() -> Generator[Any, Any, int]:
        marks["progress"] = (
            ctx.current_utc_datetime
            if ctx.current_utc_datetime < start + timedelta(seconds=50)
            else marks["progress"]
        )
        return 0
        yield

    verdict = drive(
        ctx,
        poll(ctx, probe, lambda v: False, lambda n, _: 20.0, started=lambda: marks["progress"], timeout=30.0),
    )
    assert (
        isinstance(verdict, TimedOut)
        and verdict.waited >= 30.0
        and ctx.current_utc_datetime - start == timedelta(seconds=80)
    )


def test_the_capture_plan_runs_the_stages_in_the_reported_order() -> None:
    names = [s.name for s in CAPTURE.stages]
    assert names == [
        Stage.PREFLIGHT,
        Stage.PREPARE,
        Stage.DEALLOCATE,
        Stage.GENERALIZE,
        Stage.SNAPSHOT,
        Stage.PUBLISH,
        Stage.VERIFY,
        Stage.PROMOTE,
        Stage.CLEANUP,
    ]
    assert [s for s in STAGES if s not in names] == [Stage.EXPORT]  # runs beside publish
    assert not CAPTURE.stage(Stage.PREFLIGHT).safe_point and not CAPTURE.stage(Stage.CLEANUP).safe_point


def test_progress_stage_takes_only_stage_names() -> None:
    p = CaptureProgress.from_wire({"captureId": "c", "sourceVmId": "v", "stage": "canceling"})
    assert p.stage is Stage.CANCELING and p.to_wire()["stage"] == "canceling"
    with pytest.raises(ValidationError):
        CaptureProgress.from_wire({"captureId": "c", "sourceVmId": "v", "stage": "publish+export"})


def test_inputs_stored_with_capture_id_for_the_run_id_still_parse() -> None:
    policy = CapturePolicy().to_wire()
    start = {"captureId": "run-1", "snapshotId": "s", "diskKey": "os", "diskName": "d", "sizeGb": 1,
             "accountUrl": "https://localhost", "container": "c", "sasDurationSeconds": 5}  # fmt: skip
    old = ExportDiskInput.from_wire({"captureId": "run-1", "start": start, "policy": policy})
    assert old.run_id == "run-1" and old.start.run_id == "run-1"
    assert ExportDiskInput.from_wire(old.to_wire()) == old and "captureId" not in old.to_wire()
    assert ExportStartInput.from_wire(start).to_wire()["runId"] == "run-1"
    for model in (SnapshotInput, VersionInput, GalleryCheckInput, PublishVersionInput):
        assert "run_id" in model.model_fields and "capture_id" not in model.model_fields
