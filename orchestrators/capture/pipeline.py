"""Running a plan: an ordered list of stages, with safe points, progress, compensation done once here.

A ``StageSpec`` names a stage (``shared.status.Stage``), the generator that runs it, when it is
skipped, and its compensations. ``run_plan`` runs every stage of a ``Plan`` in order:

- a cancel safe point before the stage (``safe_point``; the shell's ``CancelWatch``);
- skipped with its reason when ``skip`` says so, else begun and ended in the progress (a stage with
  ``tracked=False`` times itself, e.g. the parallel branches whose sub-orchestrations know their times);
- on ``Canceled``: ``on_cancel`` of every stage that started, latest first, until one fails;
- on any other failure: ``on_failure`` of every stage that started, latest first, each on its own.

The plan's ``finish`` builds the output once every stage succeeded; ``canceled`` and ``failed``
report the other two endings (``orchestrators.capture.endings``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrators.calls import Calls
from orchestrators.cancellation import Canceled
from orchestrators.capture import traces
from orchestrators.capture.run import CaptureRun
from orchestrators.retrying import Gen, StepFailed, failure_info
from shared.errors import ErrorInfo
from shared.status import Stage

Compensation = Callable[[CaptureRun, Calls], Gen[None]]


def _never(run: CaptureRun) -> str | None:
    return None


@dataclass(frozen=True)
class StageSpec:
    """One stage of a plan: its name, how it runs, when it is skipped, how it is undone."""

    name: Stage
    run: Callable[[CaptureRun], Gen[Any]]  # may return a note for the stage's entry
    skip: Callable[[CaptureRun], str | None] = _never  # the reason to skip it, or None to run it
    safe_point: bool = True  # check for a received cancel before it starts
    tracked: bool = True  # False: the stage begins and ends its own progress entries
    on_cancel: Compensation | None = None
    on_failure: Callable[[CaptureRun], Gen[None]] | None = None


@dataclass(frozen=True)
class Plan:
    """A path through the stages, and the three endings of a run of it."""

    name: str
    stages: tuple[StageSpec, ...]
    finish: Callable[[CaptureRun], Gen[dict[str, Any]]]
    canceled: Callable[[CaptureRun, Plan, Canceled], Gen[dict[str, Any]]]
    failed: Callable[[CaptureRun, Plan, ErrorInfo], Gen[ErrorInfo]]  # the error to end with

    def stage(self, name: Stage) -> StageSpec:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)


def run_stage(run: CaptureRun, spec: StageSpec) -> Gen[None]:
    """Run one stage with its safe point and progress tracking (see the module doc)."""
    if spec.safe_point:
        run.watch.check()
    reason = spec.skip(run)
    if reason is not None:
        run.t.skip(spec.name, reason)
        return
    if not spec.tracked:
        yield from spec.run(run)
        return
    run.t.begin(spec.name)
    note = yield from spec.run(run)
    run.t.end(spec.name, note=note if isinstance(note, str) else None)


def _started(run: CaptureRun, plan: Plan) -> list[StageSpec]:
    """The plan's stages that started (latest first): the ones whose work may need undoing."""
    begun = [s for s in plan.stages if run.progress.stage_of(s.name).state not in ("pending", "skipped")]
    return begun[::-1]


def compensate_cancel(run: CaptureRun, plan: Plan) -> Gen[None]:
    """Undo the started stages, latest first; stop at the first compensation that fails and say so."""
    calls = run.calls("cancel")
    try:
        for spec in _started(run, plan):
            if spec.on_cancel is not None:
                yield from spec.on_cancel(run, calls)
    except Exception as exc:  # report what could not be cleaned; the capture still ends canceled
        info = failure_info(exc, step="cancel")
        run.progress.cleaned.append(f"cleanup incomplete: {info.message}")


def compensate_failure(run: CaptureRun, plan: Plan) -> Gen[None]:
    """Undo what the failed run leaves that nobody needs; the original error matters more than theirs."""
    for spec in _started(run, plan):
        if spec.on_failure is not None:
            try:
                yield from spec.on_failure(run)
            except Exception:  # the compensation's own state is in the status
                pass


def run_plan(run: CaptureRun, plan: Plan) -> Gen[dict[str, Any]]:
    """Run ``plan``'s stages in order and end the run as succeeded, canceled or failed."""
    try:
        for spec in plan.stages:
            yield from run_stage(run, spec)
        if run.deferred is not None:
            raise StepFailed(run.deferred)
        output = yield from plan.finish(run)
        yield from traces.record(run, plan.name, "succeeded")
        return output
    except Canceled as c:
        output = yield from plan.canceled(run, plan, c)
        yield from traces.record(run, plan.name, "canceled")
        return output
    except Exception as exc:
        info = yield from plan.failed(run, plan, failure_info(exc, step=run.progress.stage))
        yield from traces.record(run, plan.name, "failed", info.azure_code or info.code)
        raise StepFailed(info) from None
