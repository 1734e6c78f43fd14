"""The publish ∥ export stage: ``publish_version`` and one ``export_disk`` per disk, in parallel.

The sub-orchestrations report their own progress and failures in their outputs (they never raise),
so the stage always waits for every branch — and every revoke of disk access — before the cleanup
removes the snapshots. A branch's failure is kept in ``run.deferred`` and raised after the cleanup.
On cancel the branches got the same event; ``delete_version_on_cancel`` then deletes the
half-created image version (when the request asked to clean up) and waits until it is gone.
"""

from __future__ import annotations

from typing import Any

from orchestrators import names
from orchestrators.calls import Calls
from orchestrators.cancellation import Canceled
from orchestrators.capture.rules import region_name
from orchestrators.capture.run import CaptureRun, Tracker
from orchestrators.models import ExportDiskInput, PublishVersionInput
from orchestrators.publish_version import delete_version
from orchestrators.retrying import Gen, StepFailed
from orchestrators.timing import sas_duration_seconds
from shared.contracts import DataSnapshot, DefinitionInput, ExportStartInput, OsState, VersionInput
from shared.errors import ErrorInfo
from shared.ids import TAG_CAPTURE_ID, TAG_RUN_ID, TAG_SOURCE_VM
from shared.requests import VERSION_AUTO
from shared.status import ExportProgress, Stage, VersionProgress, export_instance_id, version_instance_id

# How often a canceled capture checks that its image version is gone before deleting the snapshots
# (at most poll_max_seconds apart: hours, far longer than a version deletion takes).
VERSION_DELETE_POLLS = 200


def publish_input(
    run: CaptureRun, os_state: OsState | None = None, snapshot_ids: dict[str, str] | None = None
) -> PublishVersionInput:
    """What ``publish_version`` needs: the definition to ensure and the version to create from the snapshots
    (this run's, or ``snapshot_ids`` by disk key: a snapshot source's; ``{}``: a source that is no snapshot)."""
    req, facts, gcheck, cid = run.req, run.vm, run.checked, run.run_id
    by_key = {s.disk_key: s.snapshot_id for s in run.snapshots} if snapshot_ids is None else snapshot_ids
    tags = {
        **req.tags,
        TAG_CAPTURE_ID: run.inp.capture_id,
        TAG_RUN_ID: cid,
        TAG_SOURCE_VM: req.source_id[:256],
    }
    location = region_name(gcheck.gallery_location or facts.location)
    definition = DefinitionInput(
        gallery=run.gallery,
        definition=req.image_definition,
        vm=facts,
        location=location,
        tags=tags,
        os_state=os_state or run.os_state,
    )
    version = VersionInput(
        run_id=cid,
        gallery=run.gallery,
        definition_name=req.image_definition.name,
        version=gcheck.resolved_version,
        auto=req.version == VERSION_AUTO,
        location=location,
        os_snapshot_id=by_key.get("os", ""),
        data_snapshots=[
            DataSnapshot(lun=d.lun, snapshot_id=by_key[d.key])
            for d in facts.data_disks
            if d.lun is not None and d.key in by_key
        ],
        target_regions=run.regions,
        end_of_life_date=req.end_of_life_date.isoformat() if req.end_of_life_date else None,
        exclude_from_latest=req.exclude_from_latest,
        tags=tags,
    )
    return PublishVersionInput(run_id=cid, policy=run.inp.policy, definition=definition, version=version)


def export_inputs(run: CaptureRun) -> list[ExportDiskInput]:
    """One ``export_disk`` input per disk (none without ``vhdExport``)."""
    target, policy, cid = run.req.vhd_export, run.inp.policy, run.run_id
    if target is None:
        return []
    by_key = {s.disk_key: s for s in run.snapshots}
    inputs = []
    for disk in run.vm.disks:
        start = ExportStartInput(
            run_id=cid,
            snapshot_id=by_key[disk.key].snapshot_id,
            disk_key=disk.key,
            disk_name=disk.name,
            size_gb=disk.size_gb,
            account_url=target.account_url,
            container=target.container,
            sas_duration_seconds=sas_duration_seconds(policy, disk.size_gb * 1024**3),
        )
        inputs.append(ExportDiskInput(run_id=cid, start=start, policy=policy))
    return inputs


def publish_and_export(run: CaptureRun) -> Gen[None]:
    """Run the branches; fold their outcomes into the progress (this stage times itself: see module doc)."""
    yield from publish_branches(run, publish_input(run), export_inputs(run))


def publish_branches(
    run: CaptureRun, publish: PublishVersionInput, exports: list[ExportDiskInput]
) -> Gen[None]:
    """``publish_version`` with ``publish`` beside one ``export_disk`` per entry of ``exports``."""
    context, t, cid = run.context, run.t, run.run_id
    branches = [
        context.call_sub_orchestrator(
            names.PUBLISH_VERSION, publish.to_wire(), instance_id=version_instance_id(cid)
        )
    ]
    t.begin(Stage.PUBLISH)
    for e in exports:
        branches.append(
            context.call_sub_orchestrator(
                names.EXPORT_DISK, e.to_wire(), instance_id=export_instance_id(cid, e.start.disk_key)
            )
        )
    if exports:
        t.begin(Stage.EXPORT)
    else:
        t.skip(Stage.EXPORT, "no vhdExport in the request")
    t.progress.stage = Stage.PUBLISH  # publish and export run together; their stage entries tell them apart
    t.publish()
    run.branches_settled = False
    all_done = context.task_all(branches)
    canceled: Canceled | None = None
    if (yield from run.watch.race(all_done)):
        # The sub-orchestrations got the same event from the cancel endpoint: they abort their copies,
        # revoke the disk access and return; wait for that before removing what they used.
        canceled = run.watch.error()
        t.progress.cancel_requested, t.progress.cancel_reason = True, canceled.reason
        t.publish()
        outcomes = yield all_done
    else:
        outcomes = all_done.result
    run.branches_settled = True
    run.deferred = record_branches(t, outcomes, bool(exports))
    if canceled is not None:
        raise canceled


def _outcome(state: str | None) -> str:
    return state if state in ("failed", "canceled") else "succeeded"


def record_branches(t: Tracker, outcomes: list[Any], export: bool) -> ErrorInfo | None:
    """Fold the sub-orchestrations' outputs into the progress; return the first error, if any."""
    first: ErrorInfo | None = None
    version = VersionProgress.from_wire(outcomes[0])
    t.progress.regions = version.regions or t.progress.regions
    t.progress.image_version_id = version.version_id
    if version.version_id:
        # With "auto" the version is chosen at publish time: report the one really created.
        t.progress.image_version = version.version_id.rsplit("/", 1)[-1]
        t.progress.image_version_state = (
            "completed" if version.state == "completed" else "deleted" if version.deleted else version.state
        )
    if version.error is not None:
        first = _terminal(version.error)
    t.end(Stage.PUBLISH, state=_outcome(version.state), started=version.started, ended=version.ended)
    if not export:
        return first
    states: set[str] = set()
    starts: list[str] = []
    ends: list[str] = []
    for raw in outcomes[1:]:
        e = ExportProgress.from_wire(raw)
        starts += [e.started] if e.started else []
        ends += [e.ended] if e.ended else []
        d = t.progress.disk(e.disk_key)
        d.copy_state, d.bytes_copied, d.bytes_total = e.copy_state, e.bytes_copied, e.bytes_total
        d.copy_percent = e.percent
        d.blob_url, d.access_revoked = e.blob_url, e.access_revoked
        if e.state == "canceled":
            states.add("canceled")
        elif e.error is not None:
            states.add("failed")
            first = first or _terminal(e.error)
    t.end(
        Stage.EXPORT,
        state="failed" if "failed" in states else "canceled" if "canceled" in states else "succeeded",
        started=min(starts) if starts else None,
        ended=max(ends) if ends else None,
    )
    return first


def _terminal(e: ErrorInfo) -> ErrorInfo:
    return e if e.kind else e.model_copy(update={"kind": "terminal"})


def delete_version_on_cancel(run: CaptureRun, calls: Calls) -> Gen[None]:
    """Compensation of ``publish`` on cancel: delete the image version, and wait until it is gone
    (snapshots can be deleted only once no version is being built from them)."""
    version_id = run.progress.image_version_id
    if not (run.req.delete_snapshots and version_id):
        return
    if not (yield from delete_version(calls, version_id, VERSION_DELETE_POLLS)):
        raise StepFailed(
            ErrorInfo.timed_out(
                "cancel",
                "VersionDeleteTimedOut",
                f"image version {version_id} still exists {VERSION_DELETE_POLLS} status checks after its "
                "deletion was requested, so the snapshots it is built from were kept",
                resource=version_id,
                advice="Check the version in the portal, delete it, then delete the snapshots.",
            )
        )
    run.progress.cleaned.append(f"image version {version_id} deleted")
