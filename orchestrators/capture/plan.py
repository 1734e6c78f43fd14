"""The stage table and the plans made of it: a new way of making an image is a new ``Plan``.

Each ``StageSpec`` says which generator runs the stage, when it is skipped and how it is undone
(``orchestrators.capture.pipeline`` runs them). ``CAPTURE`` is today's capture:

preflight → prepare → deallocate → generalize → snapshot → publish ∥ export → cleanup
"""

from __future__ import annotations

from orchestrators.capture import branches, endings, snapshots, vm
from orchestrators.capture.pipeline import Plan, StageSpec, run_stage
from orchestrators.capture.run import CaptureRun
from orchestrators.retrying import Gen
from shared.status import Stage


def _cleanup_on_failure(run: CaptureRun) -> Gen[None]:
    """Snapshots nobody needs any more (no branch still reads them) go, as asked, so a failure leaks nothing."""
    if run.snapshots and run.branches_settled and run.progress.stage_of(Stage.CLEANUP).state == "pending":
        yield from run_stage(run, CLEANUP)


PREFLIGHT = StageSpec(Stage.PREFLIGHT, vm.preflight, safe_point=False)  # read-only: nothing to undo
PREPARE = StageSpec(Stage.PREPARE, vm.prepare, skip=vm.skip_prepare)
DEALLOCATE = StageSpec(Stage.DEALLOCATE, vm.deallocate, skip=vm.skip_generalized)
# Its safe point is the last one before the irreversible step.
GENERALIZE = StageSpec(Stage.GENERALIZE, vm.generalize, skip=vm.skip_generalized)
SNAPSHOT = StageSpec(
    Stage.SNAPSHOT, snapshots.snapshot, on_cancel=snapshots.delete_on_cancel, on_failure=_cleanup_on_failure
)
# Publish and export run together (sub-orchestrations); the stage times both entries itself.
PUBLISH_AND_EXPORT = StageSpec(
    Stage.PUBLISH, branches.publish_and_export, tracked=False, on_cancel=branches.delete_version_on_cancel
)
# No safe point: once the branches ended, a late cancel must not undo a finished image.
CLEANUP = StageSpec(Stage.CLEANUP, snapshots.cleanup, skip=snapshots.skip_cleanup, safe_point=False)

CAPTURE = Plan(
    name="capture",
    stages=(PREFLIGHT, PREPARE, DEALLOCATE, GENERALIZE, SNAPSHOT, PUBLISH_AND_EXPORT, CLEANUP),
    finish=endings.succeeded,
    canceled=endings.canceled,
    failed=endings.failed,
)
