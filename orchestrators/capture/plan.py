"""The stage table and the plans made of it: a new way of making an image is a new ``Plan``.

Each ``StageSpec`` says which generator runs the stage, when it is skipped and how it is undone
(``orchestrators.capture.pipeline`` runs them). ``CAPTURE`` is the inPlace capture:

preflight → prepare → deallocate → generalize → snapshot → publish ∥ export → cleanup

``SPECIALIZED`` leaves the VM as it is (no guest step, no generalize); with consistency "stopped" a
running VM is deallocated for the snapshots and started again right after them (not after the
replication, which can take hours), and by the compensation on a failure or cancel:

preflight → [deallocate] → snapshot → [restart] → publish ∥ export → cleanup

``CLONE`` makes a generalized image of a copy of the VM and deletes the copy (``orchestrators.capture.clone``);
the source is snapshotted as for specialized, and the inPlace stages run on the copy:

preflight → [deallocate] → snapshot → [restart] → cloneDisks → cloneVm → [prepare] → cloneDeallocate →
generalize → cloneSnapshot → deleteClone → publish ∥ export → cleanup
"""

from __future__ import annotations

from orchestrators.capture import (
    branches,
    clone,
    endings,
    marketplace,
    release,
    snapshots,
    sources,
    specialized,
    verify,
    vm,
)
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
# RETAIN and SHARE change nothing a cancel should undo (deleted old versions stay deleted; a granted role
# is the request's), so they have no compensation.
RETAIN = StageSpec(Stage.RETAIN, release.retain, skip=release.skip_retain)
SHARE = StageSpec(Stage.SHARE, release.share, skip=release.skip_share)
# The Marketplace hand-off, last: it grants Partner Center read access (gallery) or checks the VHDs (vhd).
HANDOFF = StageSpec(Stage.HANDOFF, marketplace.handoff, skip=marketplace.skip_handoff, safe_point=False)
# VERIFY times itself (it ends failed, with every region's verdict, when a boot test failed).
VERIFY = StageSpec(
    Stage.VERIFY,
    verify.verify,
    skip=verify.skip_verify,
    tracked=False,
    on_cancel=verify.delete_on_cancel,
    on_failure=verify.delete_on_failure,
)
PROMOTE = StageSpec(Stage.PROMOTE, verify.promote, skip=verify.skip_promote)
# Boot test and promotion first: retention, sharing and the hand-off act only on a version that passed.
RELEASE: tuple[StageSpec, ...] = (VERIFY, PROMOTE, RETAIN, SHARE, HANDOFF)
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


# The source's snapshots are intermediate: always deleted, once the copies exist or on any other ending.
SOURCE_SNAPSHOT = StageSpec(
    Stage.SNAPSHOT,
    snapshots.snapshot,
    on_cancel=clone.source_snapshots_on_cancel,
    on_failure=clone.source_snapshots_on_failure,
)
# The first stage that makes a part of the clone undoes all of it (the VM, its NIC, its disks).
CLONE_DISKS = StageSpec(
    Stage.CLONE_DISKS,
    clone.clone_disks,
    on_cancel=clone.remove_clone_on_cancel,
    on_failure=clone.remove_clone_on_failure,
)
CLONE_VM = StageSpec(Stage.CLONE_VM, clone.clone_vm)
CLONE_PREPARE = StageSpec(Stage.PREPARE, clone.on_clone(vm.prepare), skip=clone.skip_prepare)
CLONE_DEALLOCATE = StageSpec(Stage.CLONE_DEALLOCATE, clone.on_clone(vm.deallocate))
CLONE_GENERALIZE = StageSpec(Stage.GENERALIZE, clone.generalize)
CLONE_SNAPSHOT = StageSpec(
    Stage.CLONE_SNAPSHOT,
    clone.on_clone(snapshots.snapshot),
    on_cancel=snapshots.delete_on_cancel,
    on_failure=_cleanup_on_failure,
)
DELETE_CLONE = StageSpec(Stage.DELETE_CLONE, clone.delete_clone)

CLONE = Plan(
    name="clone",
    stages=(
        PREFLIGHT,
        DEALLOCATE_FOR_SNAPSHOTS,
        SOURCE_SNAPSHOT,
        RESTART,
        CLONE_DISKS,
        CLONE_VM,
        CLONE_PREPARE,
        CLONE_DEALLOCATE,
        CLONE_GENERALIZE,
        CLONE_SNAPSHOT,
        DELETE_CLONE,
        PUBLISH_AND_EXPORT,
        *RELEASE,
        CLEANUP,
    ),
    finish=endings.succeeded,
    canceled=clone.canceled,
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
    return {"specialized": SPECIALIZED, "clone": CLONE}.get(req.capture_mode, CAPTURE)


def reported_stages(plan: Plan) -> tuple[Stage, ...]:
    """The stages a run of ``plan`` lists in its status, in order (export runs beside publish)."""
    out: list[Stage] = []
    for spec in plan.stages:
        out.append(spec.name)
        if spec.name == Stage.PUBLISH:
            out.append(Stage.EXPORT)
    return tuple(out)
