"""How a capture run ends: succeeded (the result), canceled (compensated) or failed (with leftovers named).

Each ending sends the completion notice (activity ``publish_notice``), which never changes the
capture's outcome.
"""

from __future__ import annotations

from typing import Any

from orchestrators.calls import Calls
from orchestrators.cancellation import Canceled
from orchestrators.capture.pipeline import Plan, compensate_cancel, compensate_failure
from orchestrators.capture.run import CaptureRun
from orchestrators.capture.snapshots import snapshots_left
from orchestrators.retrying import Gen
from shared.activity_types import PUBLISH_NOTICE
from shared.errors import ErrorInfo
from shared.notices import CaptureNotice, NoticeInput, Outcome, notice_from_progress, notice_from_result
from shared.status import CaptureProgress, CaptureResult, Stage


def notify(run: CaptureRun, notice: CaptureNotice) -> Gen[None]:
    """Publish the completion notice; it never changes the capture's result."""
    target = run.req.notify
    publish = NoticeInput(
        notice=notice,
        webhook_url=target.webhook_url if target else None,
        # Only the setting's name: publish_notice reads the URL (it may carry a key) outside the history.
        webhook_setting=target.webhook_setting if target else None,
    )
    try:
        yield from Calls(run.context, run.inp.policy, "notify").once(PUBLISH_NOTICE, publish)
    except Exception:  # publish_notice reports its own failures in its result; this is a host failure
        pass


def _notify_ended(
    run: CaptureRun, outcome: Outcome, kept: list[str], deleted: list[str], cleaned: list[str] | None = None
) -> Gen[None]:
    """The notice of a capture that did not succeed: its progress, and which snapshots are left."""
    notice = notice_from_progress(
        run.progress,
        outcome=outcome,
        trigger=run.inp.trigger,
        started=run.started_at,
        ended=run.t.now(),
        snapshots_kept=kept,
        snapshots_deleted=deleted,
        cleaned=cleaned,
    )
    yield from notify(run, notice)


def succeeded(run: CaptureRun) -> Gen[dict[str, Any]]:
    """Every stage succeeded: the result, as the orchestration output."""
    progress = run.progress
    progress.state = "succeeded"
    progress.stage = Stage.DONE
    run.t.publish()
    deleted = run.deleted
    result = CaptureResult(
        capture_id=run.inp.capture_id,
        run_id=run.run_id,
        source_vm_id=run.req.source_vm_id,
        source_kind=run.req.source_kind,
        source_id=run.req.source_id,
        image_version_id=progress.image_version_id or "",
        image_version=progress.image_version or run.checked.resolved_version,
        regions=progress.regions,
        exported_blobs=[d.blob_url for d in progress.disks if d.blob_url],
        snapshots_kept=[s.snapshot_id for s in run.snapshots if s.snapshot_id not in deleted],
        snapshots_deleted=deleted,
        timings=run.t.timings(),
        marketplace=progress.marketplace,
        capture_mode=progress.capture_mode,
        consistency=progress.consistency,
        source_state=progress.source_state,
        retention=progress.retention,
        shared=progress.shared,
        boot_tests=progress.boot_tests,
    )
    notice = notice_from_result(
        result,
        trigger=run.inp.trigger,
        started=run.started_at,
        ended=run.t.now(),
        generalized=progress.generalized,
    )
    yield from notify(run, notice)
    return result.to_wire()


def _irreversible_note(progress: CaptureProgress) -> str | None:
    if progress.capture_mode == "clone":  # its guest step and generalize ran on the copy, deleted again
        return None
    if progress.generalized:
        return (
            "The VM was generalized before the cancel and stays generalized (irreversible): "
            "recreate a VM from an image if needed."
        )
    if any(s.name == Stage.PREPARE and s.state in ("succeeded", "canceled") for s in progress.stages):
        return "The guest was already deprovisioned/sysprepped before the cancel; that cannot be undone."
    return progress.irreversible_note


def canceled(run: CaptureRun, plan: Plan, c: Canceled) -> Gen[dict[str, Any]]:
    """Undo what a canceled capture made, as far as it can be undone; the output lists every step.

    Copies were aborted and disk access revoked by the ``export_disk`` branches (they got the same
    event); the stages' ``on_cancel`` compensations delete the half-created image version and the
    snapshots when the request asked to clean up. A generalized VM stays generalized.
    """
    req, progress = run.req, run.progress
    progress.cancel_requested, progress.cancel_reason = True, c.reason
    for d in progress.disks:
        if d.copy_state == "aborted":
            progress.cleaned.append(f"copy of {d.name} to {d.blob_url} aborted")
        if d.access_revoked:
            progress.cleaned.append(f"read access (SAS) on the snapshot of {d.name} revoked")
    run.t.close_running("canceled")
    progress.stage = Stage.CANCELING
    run.t.publish()
    run.deleted = []  # only what the compensation really deleted
    yield from compensate_cancel(run, plan)
    progress.irreversible_note = _irreversible_note(progress)
    progress.state = "canceled"
    progress.stage = Stage.CANCELED
    progress.error = ErrorInfo.canceled(
        "cancel",
        "The capture was canceled on request" + (f" ({c.reason})" if c.reason else "") + ".",
        resource=req.source_id,
    )
    run.t.publish()
    ids = [d.snapshot_id for d in progress.disks if d.snapshot_id]
    kept = [i for i in ids if i not in run.deleted]
    yield from _notify_ended(run, "canceled", kept, run.deleted, cleaned=progress.cleaned)
    return {
        "captureId": run.inp.capture_id,
        "runId": run.run_id,
        "sourceVmId": req.source_vm_id,
        "outcome": "canceled",
        "captureMode": progress.capture_mode,
        "reason": c.reason,
        "cleaned": progress.cleaned,
        "generalized": progress.generalized,
    }


def failed(run: CaptureRun, plan: Plan, info: ErrorInfo) -> Gen[ErrorInfo]:
    """Remove what nobody needs, name what is left behind, report the failure; return the error to raise."""
    progress = run.progress
    yield from compensate_failure(run, plan)
    cleaned_up = progress.stage_of(Stage.CLEANUP).state == "succeeded"
    ids = [d.snapshot_id for d in progress.disks if d.snapshot_id] or [x.snapshot_id for x in run.snapshots]
    kept = [] if cleaned_up else snapshots_left(progress, ids)
    info = with_leftovers(info, progress, vm_name(run.req.source_id), kept)
    run.t.fail(info)
    yield from _notify_ended(run, "failed", kept, [i for i in ids if i not in kept])
    return info


def vm_name(vm_id: str) -> str:
    return vm_id.rstrip("/").rsplit("/", 1)[-1] or vm_id


def with_leftovers(info: ErrorInfo, progress: CaptureProgress, vm_name: str, kept: list[str]) -> ErrorInfo:
    """A failure after generalize names the VM's state and everything the capture leaves behind."""
    if not progress.generalized:
        return info
    parts = [f"The VM {vm_name} is generalized and can no longer be started."]
    vid, state = progress.image_version_id, progress.image_version_state
    if vid and state == "completed":
        parts.append(f"The image version {vid} is Completed and usable.")
    elif vid and state == "deleted":
        parts.append(f"The failed image version {vid} was deleted again.")
    elif vid:
        parts.append(f"Left behind: the image version {vid} (not usable; delete it).")
    else:
        parts.append("No image version was created.")
    if kept:
        parts.append("Left behind: snapshot(s) " + ", ".join(kept) + ".")
    else:
        parts.append("No snapshot was left behind.")
    open_access = [d.name for d in progress.disks if d.blob_url and d.access_revoked is False]
    if open_access:
        parts.append(
            "Read access (SAS) may still be active on the snapshot(s) of " + ", ".join(open_access) + "."
        )
    advice = info.advice
    if vid and state == "completed" and info.step == "export":
        advice = (
            "Only the VHD export failed: the image version is usable. "
            + (advice or "")
            + " To get the VHD without a new capture, export it from the image version or a disk made from it."
        ).strip()
    elif vid and state == "completed":
        advice = (f"Only the {info.step} step failed: the image version is usable. " + (advice or "")).strip()
    return info.model_copy(
        update={"message": f"{info.message.rstrip()} {' '.join(parts)}"[:4000], "advice": advice}
    )
