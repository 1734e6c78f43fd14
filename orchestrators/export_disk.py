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

from typing import Any

import azure.durable_functions as df

from orchestrators import names
from orchestrators.blueprint import bp
from orchestrators.branch import BranchRun
from orchestrators.calls import Calls
from orchestrators.cancellation import Canceled
from orchestrators.models import ExportDiskInput, ExportState
from orchestrators.polling import Done, OutOfPolls
from orchestrators.retrying import Gen, StepFailed, failure_info
from orchestrators.timing import (
    MAX_COPY_RESTARTS,
    elapsed_seconds,
    expected_copy_seconds,
    iso,
    parse_iso,
    poll_delay,
    progress_poll_delay,
    restart_sas_duration_seconds,
)
from orchestrators.versioning import refuse_unreplayable
from shared.activity_types import ABORT_COPY, GET_COPY_STATUS, REVOKE_SNAPSHOT_ACCESS, START_EXPORT
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


def _progress(context: df.DurableOrchestrationContext, inp: ExportDiskInput) -> ExportProgress:
    """The progress to report, restored from the state a previous execution carried over."""
    st = inp.state
    if st is None:
        return ExportProgress(disk_key=inp.start.disk_key, started=iso(context.current_utc_datetime))
    return ExportProgress(
        disk_key=inp.start.disk_key,
        state="copying",
        blob_url=st.blob_url,
        bytes_copied=st.bytes_copied,
        bytes_total=st.bytes_total,
        started=st.started,
        polls=st.polls,
        executions=st.executions,
        restarts=st.restarts,
    )


@bp.orchestration_trigger(context_name="context", orchestration=names.EXPORT_DISK)
def export_disk(context: df.DurableOrchestrationContext) -> Gen[dict[str, Any] | None]:
    refuse_unreplayable(context)  # first: before anything an unreplayable history could misdirect
    inp = ExportDiskInput.from_wire(context.get_input())
    copy = _Copy(context, inp, _progress(context, inp))
    progress = copy.progress
    error: ErrorInfo | None = None
    try:
        if not (yield from copy.run()):
            return None  # continued as new
        progress.state = "succeeded"
    except Canceled as c:
        error = yield from copy.abort_on_cancel(c)
    except Exception as exc:  # StepFailed, or anything unexpected: either way the access is revoked below
        error = copy.fail(exc)
    yield from copy.revoke(error)
    return copy.end()


class _Copy(BranchRun[ExportDiskInput, ExportProgress, ExportState]):
    """One execution's wait for the copy: what ``poll`` probes, judges and paces, and how it ends."""

    def __init__(
        self, context: df.DurableOrchestrationContext, inp: ExportDiskInput, progress: ExportProgress
    ) -> None:
        super().__init__(context, inp, progress, policy=inp.policy, state=inp.state, step=STEP)
        self.start = inp.start
        self.restart = False  # the last status says the source expired: grant again and copy again

    def begin(self) -> Gen[CopyStatus]:
        """Grant access and start the copy (the first execution only)."""
        status = yield from self.calls.run(START_EXPORT, self.start)
        now = iso(self.context.current_utc_datetime)
        self.state = ExportState(
            started=self.progress.started or now,
            blob_url=strip_query(status.blob_url),
            copy_id=status.copy_id,
            bytes_copied=status.bytes_copied,
            bytes_total=status.bytes_total or self.start.size_gb * 1024**3,
            last_progress_at=now,
            copy_started=now,
        )
        return status

    def done(self, status: CopyStatus) -> bool:
        """Succeeded, or ended for good; a copy whose source expired is restarted instead."""
        _observe(self.context, self.st, status, self.progress)
        ended = status.status in ("failed", "aborted")
        self.restart = ended and source_unreadable(status) and self.st.restarts < MAX_COPY_RESTARTS
        return status.status == "success" or (ended and not self.restart)

    def delay(self, polls: int, _: object) -> float | None:
        return None if self.restart else _copy_poll_delay(self.context, self.st, self.policy)

    def probe(self) -> Gen[CopyStatus]:
        st = self.st
        if self.restart:
            self.start, status = yield from _restart(self.context, self.calls, self.start, st)
            self.progress.restarts = st.restarts
            return status
        status = yield from self.calls.run(GET_COPY_STATUS, BlobRef(blob_url=st.blob_url, copy_id=st.copy_id))
        st.polls += 1
        return status

    def run(self) -> Gen[bool]:
        """Wait until the copy succeeded; False when this execution continued as new. Raises on failure."""
        first = (yield from self.begin()) if self.state is None else None
        verdict = yield from self.wait(
            self.probe,
            self.done,
            self.delay,
            started=lambda: parse_iso(self.st.last_progress_at),
            timeout=self.policy.copy_stall_seconds,
            first=first,
        )
        if isinstance(verdict, Done):
            if verdict.value.status != "success":
                raise StepFailed(_copy_failed(self.start, self.st, verdict.value))
            return True
        if isinstance(verdict, OutOfPolls):
            # start carries the SAS lifetime of the latest (re)start into the next execution.
            self.carry_on(start=self.start)
            return False
        yield from self._stalled(verdict.waited)
        return False

    def _stalled(self, stalled_for: float) -> Gen[None]:
        """Abort a copy that made no progress for ``copy_stall_seconds`` and fail the export."""
        st = self.st
        yield from self.calls.run(ABORT_COPY, BlobRef(blob_url=st.blob_url, copy_id=st.copy_id))
        self.progress.copy_state = "stalled"
        raise StepFailed(
            ErrorInfo.timed_out(
                STEP,
                "VhdExportStalled",
                resource=st.blob_url,
                message=f"The copy of {self.start.disk_name} to {st.blob_url} made no progress for "
                f"{int(stalled_for)} s (at {st.bytes_copied} of {st.bytes_total} bytes); it was aborted.",
                advice="Check the export account's health and network rules, or raise "
                "CAPTURE_COPY_STALL_SECONDS if copies there are this slow, then run the capture again.",
            )
        )

    def abort_on_cancel(self, c: Canceled) -> Gen[ErrorInfo | None]:
        """Stop the copy (its partial blob is left empty, length 0); the access is revoked after."""
        error: ErrorInfo | None = None
        progress, st = self.progress, self.state
        if st is not None:
            try:
                yield from self.calls.run(ABORT_COPY, BlobRef(blob_url=st.blob_url, copy_id=st.copy_id))
                progress.copy_state = "aborted"
            except Exception as exc:
                error = failure_info(exc, step=STEP)
        progress.state = "canceled"
        progress.error = ErrorInfo.canceled(
            STEP,
            f"The export of {self.start.disk_name} was canceled"
            + (f" ({c.reason})" if c.reason else "")
            + (": the copy was aborted." if progress.copy_state == "aborted" else "."),
            resource=st.blob_url if st is not None else None,
        )
        return error

    def revoke(self, error: ErrorInfo | None) -> Gen[None]:
        """Always revoke: the snapshot's read access must not outlive the copy, whatever its outcome."""
        progress = self.progress
        try:
            yield from _revoke(self.calls, self.start)
            progress.access_revoked = True
        except StepFailed as exc:
            progress.access_revoked = False
            if error is None:
                progress.state = "failed"
                progress.error = ErrorInfo.from_info(exc.info)
        except Exception as exc:  # a host failure must not leave the access silently granted
            info = failure_info(exc, step="revoke-access")
            progress.access_revoked = False
            progress.state = "failed"
            progress.error = progress.error or ErrorInfo.from_info(info)


def _revoke(calls: Calls, start: ExportStartInput) -> Gen[None]:
    yield from calls.at("revoke-access").run(
        REVOKE_SNAPSHOT_ACCESS, SnapshotRef(snapshot_id=start.snapshot_id)
    )


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
    context: df.DurableOrchestrationContext, calls: Calls, start: ExportStartInput, st: ExportState
) -> Gen[tuple[ExportStartInput, CopyStatus]]:
    """Restart a copy whose source SAS expired: revoke, grant again for longer, start a new copy.

    The revoke first ends whatever is left of the old grant, so exactly one access is ever active;
    start_export then sees its own failed copy at the destination and starts a new one over it.
    """
    now = context.current_utc_datetime
    copy_seconds = elapsed_seconds(st.copy_started or st.started, now)
    longer = restart_sas_duration_seconds(
        calls.policy, start.sas_duration_seconds, st.bytes_total, st.bytes_copied, copy_seconds
    )
    yield from _revoke(calls, start)
    start = start.model_copy(update={"sas_duration_seconds": longer})
    status = yield from calls.run(START_EXPORT, start)
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
