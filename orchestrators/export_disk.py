"""Sub-orchestration ``export_disk``: copy one snapshot into the export account as a VHD.

start_export (grants read access and starts the server-side copy; the SAS never leaves the
activity) → poll get_copy_status on durable timers until success / failed / aborted, aborting a
copy that makes no progress for ``copy_stall_seconds`` → revoke_snapshot_access, always, on
success, failure, stall or timeout. After ``max_polls_per_execution`` polls it continues as new,
carrying its state, so a day-long copy keeps a small history.

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
from orchestrators.timing import elapsed_seconds, expected_copy_seconds, iso, poll_delay
from shared.contracts import BlobRef, CopyStatus, SnapshotRef
from shared.errors import ErrorInfo
from shared.redaction import strip_query
from shared.status import ErrorView, ExportProgress

STEP = "export"


@bp.orchestration_trigger(context_name="context", orchestration=names.EXPORT_DISK)
def export_disk(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
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
        )
    else:
        progress.started = iso(context.current_utc_datetime)
    context.set_custom_status(progress.to_wire())

    error: ErrorInfo | None = None
    watch = CancelWatch(context)
    try:
        if st is None:
            status = CopyStatus.from_wire(
                (yield from call(context, names.START_EXPORT, start.to_wire(), step=STEP, policy=policy))
            )
            now = iso(context.current_utc_datetime)
            st = ExportState(
                started=progress.started or now,
                blob_url=strip_query(status.blob_url),
                copy_id=status.copy_id,
                bytes_copied=status.bytes_copied,
                bytes_total=status.bytes_total or start.size_gb * 1024**3,
                last_progress_at=now,
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
                    raise StepFailed(
                        ErrorInfo(
                            kind="terminal",
                            step=STEP,
                            code="VhdExportFailed",
                            resource=st.blob_url,
                            message=f"The copy of {start.disk_name} to {st.blob_url} ended {status.status}: "
                            f"{status.description or 'no description from storage'}.",
                            advice="Check the export account (capacity, firewall, permissions) and run the capture "
                            "again with the same request.",
                        )
                    )
            stalled_for = elapsed_seconds(st.last_progress_at, context.current_utc_datetime)
            if stalled_for >= policy.copy_stall_seconds:
                yield from call(
                    context,
                    names.ABORT_COPY,
                    BlobRef(blob_url=st.blob_url, copy_id=st.copy_id).to_wire(),
                    step=STEP,
                    policy=policy,
                )
                progress.copy_state = "stalled"
                raise StepFailed(
                    ErrorInfo(
                        kind="terminal",
                        step=STEP,
                        code="VhdExportStalled",
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
                context.continue_as_new(inp.model_copy(update={"state": st}).to_wire())
                return None
            remaining = expected_copy_seconds(policy, st.bytes_total - st.bytes_copied)
            delay = min(
                poll_delay(policy, st.polls, remaining),
                max(policy.copy_stall_seconds / 3, policy.poll_min_seconds),
            )
            yield from sleep(context, delay, watch)
            status = CopyStatus.from_wire(
                (
                    yield from call(
                        context,
                        names.GET_COPY_STATUS,
                        BlobRef(blob_url=st.blob_url, copy_id=st.copy_id).to_wire(),
                        step=STEP,
                        policy=policy,
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
                )
                progress.copy_state = "aborted"
            except Exception as exc:
                error = failure_info(exc, step=STEP)
        progress.state = "canceled"
        progress.error = ErrorView(
            step=STEP,
            code="Canceled",
            kind="terminal",
            message=f"The export of {start.disk_name} was canceled"
            + (f" ({c.reason})" if c.reason else "")
            + (": the copy was aborted." if progress.copy_state == "aborted" else "."),
            resource=st.blob_url if st is not None else None,
        )
    except Exception as exc:  # StepFailed, or anything unexpected: either way the access is revoked below
        error = failure_info(exc, step=STEP)
        progress.state = "failed"
        progress.error = ErrorView.from_info(error)

    # Always revoke: the snapshot's read access must not outlive the copy, whatever its outcome.
    try:
        yield from call(
            context,
            names.REVOKE_SNAPSHOT_ACCESS,
            SnapshotRef(snapshot_id=start.snapshot_id).to_wire(),
            step="revoke-access",
            policy=policy,
        )
        progress.access_revoked = True
    except StepFailed as exc:
        progress.access_revoked = False
        if error is None:
            error = exc.info
            progress.state = "failed"
            progress.error = ErrorView.from_info(exc.info)
    except Exception as exc:  # a host failure must not leave the access silently granted
        info = failure_info(exc, step="revoke-access")
        progress.access_revoked = False
        progress.state = "failed"
        progress.error = progress.error or ErrorView.from_info(info)
    progress.ended = iso(context.current_utc_datetime)
    context.set_custom_status(progress.to_wire())
    return progress.to_wire()


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
