"""Orchestrator ``capture_image``: from an existing VM to a replicated gallery image version.

preflight (read-only; fails before anything irreversible) → prepare the guest (deprovision /
sysprep via Run Command, then wait from outside for the VM to stop) → deallocate → generalize
(irreversible) → snapshot every disk → in parallel: ``publish_version`` and one ``export_disk``
per disk → cleanup (delete snapshots once nothing needs them) → result.

Every wait is a durable timer (``timing.poll_delay``); every transient failure is retried by
``retrying``; every terminal failure ends the capture with the step, Azure's code and message.
Progress goes to the custom status (``shared.status.CaptureProgress``).
"""

from __future__ import annotations

import difflib
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from orchestrators import names
from orchestrators.blueprint import bp
from orchestrators.cancellation import Canceled, CancelWatch
from orchestrators.capture_steps import (
    cleanup,
    deallocate,
    facts_name,
    prepare_guest,
    snapshots_left,
    take_snapshots,
    with_leftovers,
)
from orchestrators.models import ExportDiskInput, PublishVersionInput
from orchestrators.retrying import StepFailed, call, call_all, failure_info, sleep
from orchestrators.timing import (
    elapsed_seconds,
    iso,
    parse_iso,
    poll_delay,
    sas_duration_seconds,
)
from orchestrators.versioning import refuse_unreplayable
from shared.contracts import (
    CaptureInput,
    DataSnapshot,
    DefinitionInput,
    ExportCheckInput,
    ExportCheckResult,
    ExportStartInput,
    GalleryCheckInput,
    GalleryCheckResult,
    RegionsInput,
    RegionsResult,
    SnapshotRef,
    SnapshotResult,
    TargetRegion,
    VersionInput,
    VersionRef,
    VersionStatus,
    VmFacts,
    VmRef,
)
from shared.errors import ErrorInfo
from shared.ids import TAG_CAPTURE_ID, TAG_RUN_ID, TAG_SOURCE_VM
from shared.notices import CaptureNotice, NoticeInput, notice_from_progress, notice_from_result
from shared.requests import VERSION_AUTO
from shared.status import (
    CaptureProgress,
    CaptureResult,
    DiskProgress,
    ExportProgress,
    RegionProgress,
    VersionProgress,
    export_instance_id,
    version_instance_id,
)

Gen = Generator[Any, Any, Any]
# How often a canceled capture checks that its image version is gone before deleting the snapshots
# (at most poll_max_seconds apart: hours, far longer than a version deletion takes).
VERSION_DELETE_POLLS = 200
IRREVERSIBLE = (
    "The VM is generalized: it can no longer be started. Recreate a VM from the image version if needed."
)


class Tracker:
    """Keeps ``CaptureProgress`` and publishes it as custom status at every change (replay-safe)."""

    def __init__(self, context: df.DurableOrchestrationContext, progress: CaptureProgress) -> None:
        self.context = context
        self.progress = progress

    def now(self) -> str:
        return iso(self.context.current_utc_datetime)

    def publish(self) -> None:
        self.context.set_custom_status(self.progress.to_wire())

    def begin(self, name: str) -> None:
        s = self.progress.stage_of(name)
        s.state, s.started = "running", self.now()
        self.progress.stage = name
        self.publish()

    def end(
        self,
        name: str,
        *,
        note: str | None = None,
        state: str = "succeeded",
        started: str | None = None,
        ended: str | None = None,
    ) -> None:
        """Close a stage; ``started``/``ended`` override the times when a sub-orchestration knows them better."""
        s = self.progress.stage_of(name)
        s.state = state  # type: ignore[assignment]
        s.started = started or s.started
        s.ended = ended or self.now()
        s.note = note or s.note
        if s.started:
            s.seconds = round(elapsed_seconds(s.started, parse_iso(s.ended)), 3)
        self.publish()

    def skip(self, name: str, note: str) -> None:
        s = self.progress.stage_of(name)
        s.state, s.note = "skipped", note
        self.publish()

    def fail(self, info: ErrorInfo) -> None:
        for s in self.progress.stages:
            if s.state == "running":
                s.state, s.ended = "failed", self.now()
                if s.started:
                    s.seconds = round(elapsed_seconds(s.started, parse_iso(s.ended)), 3)
        self.progress.state = "failed"
        self.progress.error = ErrorInfo.from_info(info)
        self.publish()

    def timings(self) -> dict[str, float]:
        return {s.name: s.seconds for s in self.progress.stages if s.seconds is not None}


def region_name(location: str) -> str:
    """ARM's short region name ("West Europe" -> "westeurope"), as ``TargetRegion.name`` normalises it."""
    return location.replace(" ", "").lower()


def target_regions(
    requested: list[TargetRegion], vm_location: str, gallery_location: str | None = None
) -> list[TargetRegion]:
    """The requested regions plus the VM's own region (always replicated, added with defaults if missing)
    and an existing gallery's region (Azure requires the version's own location among its targets, so
    ``start_image_version`` adds it; listing it here makes the capture wait for it and report it)."""
    regions = list(requested)
    for extra in (vm_location, gallery_location):
        if extra and region_name(extra) not in {r.name for r in regions}:
            regions.append(TargetRegion(name=region_name(extra)))
    return regions


def region_problems(
    requested: list[TargetRegion],
    vm: VmFacts,
    gallery_name: str,
    gallery_location: str | None,
    subscription_id: str,
    known: list[str],
) -> list[str]:
    """One actionable sentence per target region that is not a region of the gallery's subscription.

    ``known`` is ``list_regions``' answer. Checked in preflight because Azure would refuse the image
    version only after the VM was generalized. An empty list (a subscription that reports no region)
    proves nothing, so it is not held against the request.
    """
    if not known:
        return []
    known_set = set(known)
    choices = ", ".join(known)

    def hint(name: str) -> str:
        close = difflib.get_close_matches(name, known, n=2, cutoff=0.75)
        return f" (did you mean {' or '.join(close)}?)" if close else ""

    problems = []
    for r in requested:
        if r.name not in known_set:
            problems.append(
                f"target region {r.name} is not a region of subscription {subscription_id}{hint(r.name)}; "
                f"choose one of: {choices}"
            )
    asked = {r.name for r in requested}
    own = region_name(vm.location)
    if own not in known_set and own not in asked:
        problems.append(
            f"{vm.name}'s region {own} (always replicated) is not a region of the gallery's subscription "
            f"{subscription_id}: put the gallery in a subscription that offers {own}"
        )
    if gallery_location:
        home = region_name(gallery_location)
        if home not in known_set and home not in asked | {own}:
            problems.append(
                f"the region {home} of gallery {gallery_name} (always replicated) is not a region of "
                f"subscription {subscription_id}: use a gallery in one of: {choices}"
            )
    return problems


def preflight_problems(
    req_prepare: str, facts: VmFacts, gallery: GalleryCheckResult, export: ExportCheckResult | None
) -> list[str]:
    """Every reason the capture cannot go ahead, each an actionable sentence (empty when fine)."""
    problems = list(gallery.problems)
    if (
        gallery.version_exists
        and not gallery.version_is_ours
        and not any("exist" in p.lower() for p in problems)
    ):
        problems.append(
            f"Image version {gallery.resolved_version} already exists: choose another version or use 'auto'."
        )
    if (
        req_prepare == "deprovision"
        and not facts.generalized
        and facts.power_state in ("stopped", "deallocated")
    ):
        problems.append(
            f"{facts.name} is {facts.power_state}, so the guest cannot be deprovisioned through Run Command: "
            "start the VM, or use prepare 'none' if the guest was already deprovisioned."
        )
    if export is not None and (not export.reachable or export.problem):
        problems.append(export.problem or "The VHD export account is not reachable.")
    return problems


@bp.orchestration_trigger(context_name="context", orchestration=names.CAPTURE_IMAGE)
def capture_image(context: df.DurableOrchestrationContext) -> Gen:
    refuse_unreplayable(context)  # first: before anything an unreplayable history could misdirect
    inp = CaptureInput.from_wire(context.get_input())
    # cid is this capture RUN's id (shared.ids.new_run_id): every snapshot/blob name, ownership tag and
    # sub-orchestration id derives from it, so a later capture of the same VM (same instance id,
    # inp.capture_id) never takes an earlier run's version, snapshots or exports for its own.
    req, policy, cid = inp.request, inp.policy, inp.run_id
    progress = CaptureProgress(
        capture_id=inp.capture_id,
        run_id=cid,
        source_vm_id=req.source_vm_id,
        export=req.vhd_export is not None,
    )
    t = Tracker(context, progress)
    t.publish()
    started_at = t.now()
    watch = CancelWatch(context)
    yield from watch.arm()
    snapshots: list[SnapshotResult] = []
    branches_settled = True  # False while a sub-orchestration might still hold snapshot access
    try:
        # --- 1. preflight: read-only --------------------------------------------------------
        t.begin("preflight")
        facts = VmFacts.from_wire(
            (
                yield from call(
                    context,
                    names.GET_VM_FACTS,
                    VmRef(vm_id=req.source_vm_id).to_wire(),
                    step="preflight",
                    policy=policy,
                )
            )
        )
        progress.disks = [
            DiskProgress(key=d.key, name=d.name, lun=d.lun, size_gb=d.size_gb) for d in facts.disks
        ]
        progress.generalized = facts.generalized
        gallery = req.gallery.model_copy(update={"subscription_id": req.gallery_subscription_id})
        checks: list[tuple[str, dict[str, Any]]] = [
            (
                names.CHECK_GALLERY,
                GalleryCheckInput(
                    gallery=gallery,
                    definition=req.image_definition,
                    version=req.version,
                    vm=facts,
                    capture_id=cid,
                ).to_wire(),
            ),
            # The image version lives in the gallery's subscription: its regions are the ones that count.
            (names.LIST_REGIONS, RegionsInput(subscription_id=req.gallery_subscription_id).to_wire()),
        ]
        if req.vhd_export is not None:
            checks.append(
                (
                    names.CHECK_EXPORT_TARGET,
                    ExportCheckInput(
                        account_url=req.vhd_export.account_url, container=req.vhd_export.container
                    ).to_wire(),
                )
            )
        answers = yield from call_all(context, checks, step="preflight", policy=policy)
        gcheck = GalleryCheckResult.from_wire(answers[0])
        known_regions = RegionsResult.from_wire(answers[1]).regions
        echeck = ExportCheckResult.from_wire(answers[2]) if len(answers) > 2 else None
        problems = preflight_problems(req.prepare, facts, gcheck, echeck) + region_problems(
            req.target_regions,
            facts,
            req.gallery.name,
            gcheck.gallery_location,
            req.gallery_subscription_id,
            known_regions,
        )
        if problems:
            raise StepFailed(ErrorInfo.preflight_failed(req.source_vm_id, problems, facts.name))
        regions = target_regions(req.target_regions, facts.location, gcheck.gallery_location)
        progress.regions = [RegionProgress(region=r.name) for r in regions]
        progress.image_version = gcheck.resolved_version
        t.end("preflight")

        # --- 2. prepare the guest -------------------------------------------------------------
        watch.check()
        if facts.generalized:
            t.skip("prepare", "the VM is already generalized")
        elif req.prepare == "deprovision":
            t.begin("prepare")
            yield from prepare_guest(context, facts, policy, watch)
            t.end("prepare")
        else:
            t.skip("prepare", "prepare is 'none': the caller deprovisioned the guest")

        # --- 3. deallocate, generalize ----------------------------------------------------------
        if facts.generalized:
            t.skip("deallocate", "the VM is already generalized")
            t.skip("generalize", "the VM is already generalized")
        else:
            watch.check()
            t.begin("deallocate")
            yield from deallocate(context, facts, policy, watch)
            t.end("deallocate")
            watch.check()  # the last safe point before the irreversible step
            t.begin("generalize")
            yield from call(
                context,
                names.GENERALIZE_VM,
                VmRef(vm_id=facts.id).to_wire(),
                step="generalize",
                policy=policy,
            )
            progress.generalized = True
            progress.irreversible_note = IRREVERSIBLE
            t.end("generalize", note=IRREVERSIBLE)

        # --- 4. snapshot every disk ------------------------------------------------------------
        watch.check()
        t.begin("snapshot")
        snapshots[:] = yield from take_snapshots(
            context, t, facts, cid, {**req.tags, TAG_CAPTURE_ID: inp.capture_id}, policy, watch, snapshots
        )
        t.end("snapshot")
        watch.check()

        # --- 5. publish the version and export the VHDs, in parallel -----------------------------
        by_key = {s.disk_key: s for s in snapshots}
        tags = {
            **req.tags,
            TAG_CAPTURE_ID: inp.capture_id,
            TAG_RUN_ID: cid,
            TAG_SOURCE_VM: req.source_vm_id[:256],
        }
        location = region_name(gcheck.gallery_location or facts.location)
        publish_input = PublishVersionInput(
            capture_id=cid,
            policy=policy,
            definition=DefinitionInput(
                gallery=gallery, definition=req.image_definition, vm=facts, location=location, tags=tags
            ),
            version=VersionInput(
                capture_id=cid,
                gallery=gallery,
                definition_name=req.image_definition.name,
                version=gcheck.resolved_version,
                auto=req.version == VERSION_AUTO,
                location=location,
                os_snapshot_id=by_key["os"].snapshot_id,
                data_snapshots=[
                    DataSnapshot(lun=d.lun, snapshot_id=by_key[d.key].snapshot_id)
                    for d in facts.data_disks
                    if d.lun is not None
                ],
                target_regions=regions,
                end_of_life_date=req.end_of_life_date.isoformat() if req.end_of_life_date else None,
                exclude_from_latest=req.exclude_from_latest,
                tags=tags,
            ),
        )
        branches = [
            context.call_sub_orchestrator(
                names.PUBLISH_VERSION, publish_input.to_wire(), instance_id=version_instance_id(cid)
            )
        ]
        t.begin("publish")
        if req.vhd_export is not None:
            for disk in facts.disks:
                size = disk.size_gb * 1024**3
                start = ExportStartInput(
                    capture_id=cid,
                    snapshot_id=by_key[disk.key].snapshot_id,
                    disk_key=disk.key,
                    disk_name=disk.name,
                    size_gb=disk.size_gb,
                    account_url=req.vhd_export.account_url,
                    container=req.vhd_export.container,
                    sas_duration_seconds=sas_duration_seconds(policy, size),
                )
                branches.append(
                    context.call_sub_orchestrator(
                        names.EXPORT_DISK,
                        ExportDiskInput(capture_id=cid, start=start, policy=policy).to_wire(),
                        instance_id=export_instance_id(cid, disk.key),
                    )
                )
            t.begin("export")
        else:
            t.skip("export", "no vhdExport in the request")
        t.progress.stage = "publish"  # publish and export run together; their stage entries tell them apart
        t.publish()
        branches_settled = False
        all_done = context.task_all(branches)
        canceled: Canceled | None = None
        if (yield from watch.race(all_done)):
            # The sub-orchestrations got the same event from the cancel endpoint: they abort their copies,
            # revoke the disk access and return; wait for that before removing what they used.
            canceled = watch.error()
            progress.cancel_requested, progress.cancel_reason = True, canceled.reason
            t.publish()
            outcomes = yield all_done
        else:
            outcomes = all_done.result
        branches_settled = True
        first_error = record_branches(t, outcomes, req.vhd_export is not None)
        if canceled is not None:
            raise canceled

        # --- 6. cleanup --------------------------------------------------------------------------
        deleted = yield from cleanup(context, t, snapshots, req.delete_snapshots, policy)
        if first_error is not None:
            raise StepFailed(first_error)

        # --- 7. result ---------------------------------------------------------------------------
        progress.state = "succeeded"
        progress.stage = "done"
        t.publish()
        result = CaptureResult(
            capture_id=inp.capture_id,
            run_id=cid,
            source_vm_id=req.source_vm_id,
            image_version_id=progress.image_version_id or "",
            image_version=progress.image_version or gcheck.resolved_version,
            regions=progress.regions,
            exported_blobs=[d.blob_url for d in progress.disks if d.blob_url],
            snapshots_kept=[s.snapshot_id for s in snapshots if s.snapshot_id not in deleted],
            snapshots_deleted=deleted,
            timings=t.timings(),
        )
        yield from notify(
            context,
            inp,
            notice_from_result(
                result,
                trigger=inp.trigger,
                started=started_at,
                ended=t.now(),
                generalized=progress.generalized,
            ),
        )
        return result.to_wire()
    except Canceled as c:
        output, deleted_ids = yield from compensate_cancel(context, t, inp, c)
        ids = [d.snapshot_id for d in progress.disks if d.snapshot_id]
        yield from notify(
            context,
            inp,
            notice_from_progress(
                progress,
                outcome="canceled",
                trigger=inp.trigger,
                started=started_at,
                ended=t.now(),
                cleaned=progress.cleaned,
                snapshots_kept=[i for i in ids if i not in deleted_ids],
                snapshots_deleted=deleted_ids,
            ),
        )
        return output
    except Exception as exc:
        info = failure_info(exc, step=progress.stage)
        if snapshots and branches_settled and progress.stage_of("cleanup").state == "pending":
            # Snapshots nobody needs any more: remove them (as asked) so a failed capture leaks nothing.
            try:
                yield from cleanup(context, t, snapshots, req.delete_snapshots, policy)
            except Exception:  # the original error matters more; cleanup's own state is in the status
                pass
        cleaned_up = progress.stage_of("cleanup").state == "succeeded"
        ids = [d.snapshot_id for d in progress.disks if d.snapshot_id] or [x.snapshot_id for x in snapshots]
        kept = [] if cleaned_up else snapshots_left(progress, ids)
        info = with_leftovers(info, progress, facts_name(progress, req.source_vm_id), kept)
        t.fail(info)
        yield from notify(
            context,
            inp,
            notice_from_progress(
                progress,
                outcome="failed",
                trigger=inp.trigger,
                started=started_at,
                ended=t.now(),
                snapshots_kept=kept,
                snapshots_deleted=[i for i in ids if i not in kept],
            ),
        )
        raise StepFailed(info) from None


def notify(context: df.DurableOrchestrationContext, inp: CaptureInput, notice: CaptureNotice) -> Gen:
    """Publish the completion notice (activity ``publish_notice``); it never changes the capture's result."""
    target = inp.request.notify
    publish = NoticeInput(
        notice=notice,
        webhook_url=target.webhook_url if target else None,
        # Only the setting's name: publish_notice reads the URL (it may carry a key) outside the history.
        webhook_setting=target.webhook_setting if target else None,
    )
    try:
        yield context.call_activity(names.PUBLISH_NOTICE, publish.to_wire())
    except Exception:  # publish_notice reports its own failures in its result; this is a host failure
        pass


def compensate_cancel(
    context: df.DurableOrchestrationContext, t: Tracker, inp: CaptureInput, c: Canceled
) -> Gen:
    """Undo what a canceled capture made, as far as it can be undone.

    Returns the orchestration output and the ids of the snapshots really deleted (a failed cleanup
    must not be reported as done).

    Copies were aborted and disk access revoked by the ``export_disk`` branches (they got the same event);
    here: the half-created image version and the snapshots are deleted when the request asked to clean
    up (``deleteSnapshots``), and the status lists every step. A generalized VM stays generalized.
    """
    req, policy, progress = inp.request, inp.policy, t.progress
    progress.cancel_requested, progress.cancel_reason = True, c.reason
    cleaned = progress.cleaned
    for d in progress.disks:
        if d.copy_state == "aborted":
            cleaned.append(f"copy of {d.name} to {d.blob_url} aborted")
        if d.access_revoked:
            cleaned.append(f"read access (SAS) on the snapshot of {d.name} revoked")
    for s in progress.stages:
        if s.state == "running":
            s.state, s.ended = "canceled", t.now()
            if s.started:
                s.seconds = round(elapsed_seconds(s.started, parse_iso(s.ended)), 3)
    progress.stage = "canceling"
    t.publish()
    snapshot_ids = [d.snapshot_id for d in progress.disks if d.snapshot_id]
    deleted: list[str] = []
    try:
        if req.delete_snapshots and progress.image_version_id:
            yield from call(
                context,
                names.DELETE_IMAGE_VERSION,
                VersionRef(version_id=progress.image_version_id).to_wire(),
                step="cancel",
                policy=policy,
            )
            # Snapshots can be deleted only once no version is being built from them.
            gone = False
            for polls in range(VERSION_DELETE_POLLS):
                status = VersionStatus.from_wire(
                    (
                        yield from call(
                            context,
                            names.GET_VERSION_STATUS,
                            VersionRef(version_id=progress.image_version_id).to_wire(),
                            step="cancel",
                            policy=policy,
                        )
                    )
                )
                if not status.exists:
                    gone = True
                    break
                yield from sleep(context, poll_delay(policy, polls))
            if not gone:
                raise StepFailed(
                    ErrorInfo.timed_out(
                        "cancel",
                        "VersionDeleteTimedOut",
                        f"image version {progress.image_version_id} still exists "
                        f"{VERSION_DELETE_POLLS} status checks after its deletion was requested, so the "
                        "snapshots it is built from were kept",
                        resource=progress.image_version_id,
                        advice="Check the version in the portal, delete it, then delete the snapshots.",
                    )
                )
            cleaned.append(f"image version {progress.image_version_id} deleted")
        if req.delete_snapshots and snapshot_ids:
            yield from call_all(
                context,
                [(names.DELETE_SNAPSHOT, SnapshotRef(snapshot_id=i).to_wire()) for i in snapshot_ids],
                step="cancel",
                policy=policy,
            )
            deleted = list(snapshot_ids)
            cleaned += [f"snapshot {i.rsplit('/', 1)[-1]} deleted" for i in snapshot_ids]
        elif snapshot_ids:
            cleaned.append(f"snapshots kept (deleteSnapshots is false): {', '.join(snapshot_ids)}")
    except Exception as exc:  # report what could not be cleaned; the capture still ends canceled
        info = failure_info(exc, step="cancel")
        cleaned.append(f"cleanup incomplete: {info.message}")
    if progress.generalized:
        progress.irreversible_note = (
            "The VM was generalized before the cancel and stays generalized (irreversible): "
            "recreate a VM from an image if needed."
        )
    elif progress.stage_of("prepare").state in ("succeeded", "canceled"):
        progress.irreversible_note = (
            "The guest was already deprovisioned/sysprepped before the cancel; that cannot be undone."
        )
    progress.state = "canceled"
    progress.stage = "canceled"
    progress.error = ErrorInfo.canceled(
        "cancel",
        "The capture was canceled on request" + (f" ({c.reason})" if c.reason else "") + ".",
        resource=req.source_vm_id,
    )
    t.publish()
    output = {
        "captureId": inp.capture_id,
        "runId": inp.run_id,
        "sourceVmId": req.source_vm_id,
        "outcome": "canceled",
        "reason": c.reason,
        "cleaned": cleaned,
        "generalized": progress.generalized,
    }
    return output, deleted


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
        first = _info(version.error)
    t.end(
        "publish",
        state="failed"
        if version.state == "failed"
        else "canceled"
        if version.state == "canceled"
        else "succeeded",
        started=version.started,
        ended=version.ended,
    )
    if export:
        failed = False
        canceled = False
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
                canceled = True
            elif e.error is not None:
                failed = True
                first = first or _info(e.error)
        t.end(
            "export",
            state="failed" if failed else "canceled" if canceled else "succeeded",
            started=min(starts) if starts else None,
            ended=max(ends) if ends else None,
        )
    return first


def _info(e: ErrorInfo) -> ErrorInfo:
    return e if e.kind else e.model_copy(update={"kind": "terminal"})
