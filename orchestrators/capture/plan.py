"""The stage table and the plans made of it: a new way of making an image is a new ``Plan``.

Each ``StageSpec`` says which generator runs the stage, when it is skipped and how it is undone
(``orchestrators.capture.pipeline`` runs them). ``CAPTURE`` is the inPlace capture:

preflight → prepare → deallocate → generalize → snapshot → publish ∥ export → cleanup

``SPECIALIZED`` leaves the VM as it is (no guest step, no generalize); with consistency "stopped" a
running VM is deallocated for the snapshots and started again right after them (not after the
replication, which can take hours), and by the compensation on a failure or cancel:

preflight → [deallocate] → snapshot → [restart] → publish ∥ export → cleanup
"""

from __future__ import annotations

from orchestrators.capture import branches, endings, snapshots, sources, specialized, vm
from orchestrators.capture.pipeline import Plan, StageSpec, run_stage
from orchestrators.capture.run import CaptureRun
from orchestrators.retrying import Gen
from shared.requests import CaptureRequest
from shared.status import Stage


def _cleanup_on_failure(run: CaptureRun) -> Gen[None]:
    """Snapshots nobody needs any more (no branch still reads them) go, as asked, so a failure leaks nothing."""
    if run.snapshots and run.branches_settled and run.progress.stage_of(Stage.CLEANUP).state == "pending":
        yield from run_stage(run, CLEANUP)


PREFLIGHT = StageSpec(Stage.PREFLIGHT, vm.preflight, safe_point=False)  # read-only: nothing to undo


def _prepare(run: CaptureRun) -> Gen[None]:
    yield from vm.prepare(run)
    run.progress.source_state = "deprovisioned"  # the guest step cannot be undone


PREPARE = StageSpec(Stage.PREPARE, _prepare, skip=vm.skip_prepare)
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
# The release stages every plan runs after publish (boot test, promotion, retention, sharing, hand-off),
# in this order; each is skipped when its request part is absent.
RELEASE: tuple[StageSpec, ...] = ()
# No safe point: once the branches ended, a late cancel must not undo a finished image.
CLEANUP = StageSpec(Stage.CLEANUP, snapshots.cleanup, skip=snapshots.skip_cleanup, safe_point=False)

CAPTURE = Plan(
    name="capture",
    stages=(PREFLIGHT, PREPARE, DEALLOCATE, GENERALIZE, SNAPSHOT, PUBLISH_AND_EXPORT, *RELEASE, CLEANUP),
    finish=endings.succeeded,
    canceled=endings.canceled,
    failed=endings.failed,
)

# Deallocated only for consistency "stopped", and started again on every ending.
DEALLOCATE_FOR_SNAPSHOTS = StageSpec(
    Stage.DEALLOCATE,
    vm.deallocate,
    skip=specialized.skip_deallocate,
    on_cancel=specialized.restart_on_cancel,
    on_failure=specialized.restart_on_failure,
)
# No safe point: a cancel after the snapshots still gets the VM running (the compensation would too).
RESTART = StageSpec(Stage.RESTART, specialized.restart, skip=specialized.skip_restart, safe_point=False)

SPECIALIZED = Plan(
    name="specialized",
    stages=(PREFLIGHT, DEALLOCATE_FOR_SNAPSHOTS, SNAPSHOT, RESTART, PUBLISH_AND_EXPORT, *RELEASE, CLEANUP),
    finish=endings.succeeded,
    canceled=specialized.canceled,
    failed=endings.failed,
)


# A managed image, snapshots or VHD blobs (orchestrators.capture.sources): no guest step, no snapshots,
# no export; the version is made from the source itself, and nothing is left to clean up.
FROM_SOURCE = Plan(
    name="source",
    stages=(
        StageSpec(Stage.PREFLIGHT, sources.preflight, safe_point=False),
        StageSpec(Stage.PUBLISH, sources.publish, tracked=False, on_cancel=branches.delete_version_on_cancel),
        *RELEASE,
        StageSpec(Stage.CLEANUP, sources.cleanup, skip=sources.skip_cleanup, safe_point=False),
    ),
    finish=endings.succeeded,
    canceled=endings.canceled,
    failed=endings.failed,
)


def plan_for(req: CaptureRequest) -> Plan:
    """The plan of the request's source kind (a VM: of its capture mode)."""
    if req.source_kind != "vm":
        return FROM_SOURCE
    return SPECIALIZED if req.capture_mode == "specialized" else CAPTURE


def reported_stages(plan: Plan) -> tuple[Stage, ...]:
    """The stages a run of ``plan`` lists in its status, in order (export runs beside publish)."""
    out: list[Stage] = []
    for spec in plan.stages:
        out.append(spec.name)
        if spec.name == Stage.PUBLISH:
            out.append(Stage.EXPORT)
    return tuple(out)
