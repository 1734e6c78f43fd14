"""Sub-orchestration ``export_disk``: copy one snapshot into the export account as a VHD.

start_export (grants read access and starts the server-side copy; the SAS never leaves the
activity) → poll get_copy_status on durable timers until success / failed / aborted, aborting a
copy that makes no progress for ``copy_stall_seconds`` → revoke_snapshot_access, always, on
success, failure, stall or timeout. After ``max_polls_per_execution`` polls it continues as new,
carrying its state, so a day-long copy keeps a small history. Polls are paced by the copy's own
progress rate (``timing.progress_poll_delay``), at least every third of the stall window.

A copy whose source became unreadable mid-way (the snapshot's SAS expired: the copy ends failed
with 403 / ``CannotVerifyCopySource``) is restarted: the access is revoked, granted again for
longer (``timing.restart_sas_duration_seconds``) and a new copy started over the failed blob, up to
``timing.MAX_COPY_RESTARTS`` times; the restarts are counted in the status.

It never raises for a failed copy: it returns ``ExportProgress`` with ``state`` failed and the
error, so the parent's ``task_all`` waits for every branch (and every revoke) before cleanup.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from orchestrators import names
from orchestrators.blueprint import bp
from orchestrators.cancellation import Canceled, CancelWatch
from orchestrators.models import ExportDiskInput, ExportState
from orchestrators.retrying import StepFailed, call, failure_info, sleep
from orchestrators.timing import (
    MAX_COPY_RESTARTS,
    elapsed_seconds,
    expected_copy_seconds,
    iso,
    poll_delay,
    progress_poll_delay,
    restart_sas_duration_seconds,
)
from orchestrators.versioning import refuse_unreplayable
from shared.contracts import BlobRef, CapturePolicy, CopyStatus, ExportStartInput, SnapshotRef
from shared.errors import ErrorInfo
from shared.redaction import strip_query
from shared.status import ExportProgress

STEP = "export"
# What a copy's status description says when its source (the snapshot's SAS) could no longer be read.
_SOURCE_UNREADABLE = ("cannotverifycopysource", "authenticationfailed", "authorizationfailure")


def source_unreadable(status: CopyStatus) -> bool:
    """True when a failed copy failed because its source could no longer be read (SAS expired or revoked)."""
    if status.status != "failed":
        return False
    text = (status.description or "").strip().lower()
    return text.startswith("403") or any(marker in text for marker in _SOURCE_UNREADABLE)


def _copy_failed(start: ExportStartInput, st: ExportState, status: CopyStatus) -> ErrorInfo:
    """The error of a copy that ended failed/aborted for good."""
    said = status.description or "no description from storage"
    if source_unreadable(status):
        tries = f" and {st.restarts} restart(s) with a longer access" if st.restarts else ""
        return ErrorInfo.terminal(
            STEP,
            "VhdExportSourceExpired",
            resource=st.blob_url,
            message=f"The copy of {start.disk_name} to {st.blob_url} failed: its source, the read access (SAS) "
            f"on snapshot {start.snapshot_id.rsplit('/', 1)[-1]}, expired before the copy finished "
            f"(last access granted for {start.sas_duration_seconds} s{tries}; the copy reached "
            f"{st.bytes_copied} of {st.bytes_total} bytes). Storage said: {said}.",
            advice="Copies to this account run slower than the access was sized for (1/30 of "
            "CAPTURE_EXPECTED_COPY_MBPS, plus CAPTURE_SAS_MARGIN_SECONDS): lower CAPTURE_EXPECTED_COPY_MBPS "
            "or raise CAPTURE_SAS_MARGIN_SECONDS, then run the capture again with the same request. "
            "The snapshot's access was revoked.",
        )
    return ErrorInfo.terminal(
        STEP,
        "VhdExportFailed",
        resource=st.blob_url,
        message=f"The copy of {start.disk_name} to {st.blob_url} ended {status.status}: {said}.",
        advice="Check the export account (capacity, firewall, permissions) and run the capture "
        "again with the same request.",
    )


@bp.orchestration_trigger(context_name="context", orchestration=names.EXPORT_DISK)
def export_disk(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    refuse_unreplayable(context)  # first: before anything an unreplayable history could misdirect
    inp = ExportDiskInput.from_wire(context.get_input())
    policy = inp.policy
    start = inp.start
    st = inp.state
    progress = ExportProgress(disk_key=start.disk_key)
    if st is not None:
        progress = ExportProgress(
            disk_key=start.disk_key,
            state="copying",
            blob_url=st.blob_url,
            bytes_copied=st.bytes_copied,
            bytes_total=st.bytes_total,
            started=st.started,
            polls=st.polls,
            executions=st.executions,
            restarts=st.restarts,
        )
    else:
        progress.started = iso(context.current_utc_datetime)
    context.set_custom_status(progress.to_wire())

    error: ErrorInfo | None = None
    watch = CancelWatch(context)
    try:
        if st is None:
            status = CopyStatus.from_wire(
                (
                    yield from call(
                        context, names.START_EXPORT, start.to_wire(), step=STEP, policy=policy, patient=True
                    )
                )
            )
            now = iso(context.current_utc_datetime)
            st = ExportState(
                started=progress.started or now,
                blob_url=strip_query(status.blob_url),
                copy_id=status.copy_id,
                bytes_copied=status.bytes_copied,
                bytes_total=status.bytes_total or start.size_gb * 1024**3,
                last_progress_at=now,
                copy_started=now,
            )
        else:
            status = None
        polls_here = 0
        while True:
            if status is not None:
                _observe(context, st, status, progress)
                if status.status == "success":
                    progress.state = "succeeded"
                    break
                if status.status in ("failed", "aborted"):
                    if not (source_unreadable(status) and st.restarts < MAX_COPY_RESTARTS):
                        raise StepFailed(_copy_failed(start, st, status))
                    start, status = yield from _restart(context, start, st, policy)
                    progress.restarts = st.restarts
                    continue  # observe the new copy's first status
            stalled_for = elapsed_seconds(st.last_progress_at, context.current_utc_datetime)
            if stalled_for >= policy.copy_stall_seconds:
                yield from call(
                    context,
                    names.ABORT_COPY,
                    BlobRef(blob_url=st.blob_url, copy_id=st.copy_id).to_wire(),
                    step=STEP,
                    policy=policy,
                    patient=True,
                )
                progress.copy_state = "stalled"
                raise StepFailed(
                    ErrorInfo.timed_out(
                        STEP,
                        "VhdExportStalled",
                        resource=st.blob_url,
                        message=f"The copy of {start.disk_name} to {st.blob_url} made no progress for "
                        f"{int(stalled_for)} s (at {st.bytes_copied} of {st.bytes_total} bytes); it was aborted.",
                        advice="Check the export account's health and network rules, or raise "
                        "CAPTURE_COPY_STALL_SECONDS if copies there are this slow, then run the capture again.",
                    )
                )
            if polls_here >= policy.max_polls_per_execution:
                watch.check()  # never carry a received cancel into the next execution
                st.executions += 1
                # start carries the SAS lifetime of the latest (re)start into the next execution.
                context.continue_as_new(inp.model_copy(update={"state": st, "start": start}).to_wire())
                return None
            yield from sleep(context, _copy_poll_delay(context, st, policy), watch)
            status = CopyStatus.from_wire(
                (
                    yield from call(
                        context,
                        names.GET_COPY_STATUS,
                        BlobRef(blob_url=st.blob_url, copy_id=st.copy_id).to_wire(),
                        step=STEP,
                        policy=policy,
                        patient=True,
                    )
                )
            )
            polls_here += 1
            st.polls += 1
    except Canceled as c:
        # Stop the copy (its partial blob is left empty, length 0); the access is revoked below.
        if st is not None:
            try:
                yield from call(
                    context,
                    names.ABORT_COPY,
                    BlobRef(blob_url=st.blob_url, copy_id=st.copy_id).to_wire(),
                    step=STEP,
                    policy=policy,
                    patient=True,
                )
                progress.copy_state = "aborted"
            except Exception as exc:
                error = failure_info(exc, step=STEP)
        progress.state = "canceled"
        progress.error = ErrorInfo.canceled(
            STEP,
            f"The export of {start.disk_name} was canceled"
            + (f" ({c.reason})" if c.reason else "")
            + (": the copy was aborted." if progress.copy_state == "aborted" else "."),
            resource=st.blob_url if st is not None else None,
        )
    except Exception as exc:  # StepFailed, or anything unexpected: either way the access is revoked below
        error = failure_info(exc, step=STEP)
        progress.state = "failed"
        progress.error = ErrorInfo.from_info(error)

    # Always revoke: the snapshot's read access must not outlive the copy, whatever its outcome.
    try:
        yield from call(
            context,
            names.REVOKE_SNAPSHOT_ACCESS,
            SnapshotRef(snapshot_id=start.snapshot_id).to_wire(),
            step="revoke-access",
            policy=policy,
            patient=True,
        )
        progress.access_revoked = True
    except StepFailed as exc:
        progress.access_revoked = False
        if error is None:
            error = exc.info
            progress.state = "failed"
            progress.error = ErrorInfo.from_info(exc.info)
    except Exception as exc:  # a host failure must not leave the access silently granted
        info = failure_info(exc, step="revoke-access")
        progress.access_revoked = False
        progress.state = "failed"
        progress.error = progress.error or ErrorInfo.from_info(info)
    progress.ended = iso(context.current_utc_datetime)
    context.set_custom_status(progress.to_wire())
    return progress.to_wire()


def _copy_poll_delay(
    context: df.DurableOrchestrationContext, st: ExportState, policy: CapturePolicy
) -> float:
    """Wait before the next copy poll: by the copy's progress rate once it moved, else by the expected rate.

    Never longer than a third of the stall window, so a stall is noticed in time.
    """
    cap = max(policy.copy_stall_seconds / 3, policy.poll_min_seconds)
    if st.bytes_copied > 0 and st.bytes_total > 0:
        elapsed = elapsed_seconds(st.copy_started or st.started, context.current_utc_datetime)
        return progress_poll_delay(policy, st.polls, st.bytes_copied / st.bytes_total, elapsed, cap)
    remaining = expected_copy_seconds(policy, st.bytes_total - st.bytes_copied)
    return min(poll_delay(policy, st.polls, remaining), cap)


def _restart(
    context: df.DurableOrchestrationContext, start: ExportStartInput, st: ExportState, policy: CapturePolicy
) -> Generator[Any, Any, tuple[ExportStartInput, CopyStatus]]:
    """Restart a copy whose source SAS expired: revoke, grant again for longer, start a new copy.

    The revoke first ends whatever is left of the old grant, so exactly one access is ever active;
    start_export then sees its own failed copy at the destination and starts a new one over it.
    """
    now = context.current_utc_datetime
    copy_seconds = elapsed_seconds(st.copy_started or st.started, now)
    longer = restart_sas_duration_seconds(
        policy, start.sas_duration_seconds, st.bytes_total, st.bytes_copied, copy_seconds
    )
    yield from call(
        context,
        names.REVOKE_SNAPSHOT_ACCESS,
        SnapshotRef(snapshot_id=start.snapshot_id).to_wire(),
        step="revoke-access",
        policy=policy,
        patient=True,
    )
    start = start.model_copy(update={"sas_duration_seconds": longer})
    status = CopyStatus.from_wire(
        (
            yield from call(
                context, names.START_EXPORT, start.to_wire(), step=STEP, policy=policy, patient=True
            )
        )
    )
    at = iso(context.current_utc_datetime)
    st.restarts += 1
    st.blob_url = strip_query(status.blob_url)
    st.copy_id = status.copy_id
    st.bytes_copied = 0  # a new copy starts from nothing; _observe records what it already moved
    st.last_progress_at = at
    st.copy_started = at
    return start, status


def _observe(
    context: df.DurableOrchestrationContext, st: ExportState, status: CopyStatus, progress: ExportProgress
) -> None:
    """Record a copy status: bytes progress (for stall detection) and the custom status."""
    if status.bytes_total:
        st.bytes_total = status.bytes_total
    if status.bytes_copied > st.bytes_copied:
        st.bytes_copied = status.bytes_copied
        st.last_progress_at = iso(context.current_utc_datetime)
    if status.status == "success" and st.bytes_total:
        st.bytes_copied = st.bytes_total
    if status.copy_id:
        st.copy_id = status.copy_id
    progress.state = "copying"
    progress.copy_state = status.status
    progress.blob_url = st.blob_url
    progress.bytes_copied = st.bytes_copied
    progress.bytes_total = st.bytes_total
    progress.polls = st.polls
    progress.executions = st.executions
    context.set_custom_status(progress.to_wire())
