"""Sub-orchestration ``publish_version``: the image definition, the image version, and its replication.

ensure_definition (create if missing, from the VM's facts) → start_image_version (from the
snapshots, with the publishing profile) → poll get_version_status on durable timers until every
target region's replication is ``Completed`` (a version whose provisioning says Succeeded is not
usable in a region before that) or one region ``Failed``, bounded by ``replication_timeout_seconds``.
Polls are paced by the replication progress Azure reports (``replication_poll_delay``): a 7-hour
replication costs ~25 status reads, not one every ``poll_max_seconds``. Continues as new after
``max_polls_per_execution`` polls, carrying its state.

A create that Azure accepted and then failed with a transient code (its operation's error, e.g.
``InternalExecutionError``) is not the end: the version is created again (``start_image_version``
deletes this run's Failed version first), up to ``MAX_RECREATES`` times within the replication
timeout. A create that failed for good has its half-made version deleted (and waited for, so the
snapshots can go too) before the failure is reported; a version whose replication failed in a region
is kept (it may be usable in the others) and named in the error.

Like ``export_disk`` it returns a failure in its output (``VersionProgress.state == "failed"``)
instead of raising, so the parent always sees both branches finish.
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from orchestrators import names
from orchestrators.blueprint import bp
from orchestrators.branch import BranchRun
from orchestrators.calls import Calls
from orchestrators.cancellation import Canceled
from orchestrators.models import PublishState, PublishVersionInput
from orchestrators.polling import Done, OutOfPolls, poll
from orchestrators.retrying import Gen, StepFailed, sleep
from orchestrators.timing import elapsed_seconds, iso, parse_iso, poll_delay, progress_poll_delay, retry_delay
from orchestrators.versioning import refuse_unreplayable
from shared.activity_types import (
    DELETE_IMAGE_VERSION,
    ENSURE_DEFINITION,
    GET_VERSION_STATUS,
    START_IMAGE_VERSION,
)
from shared.contracts import CapturePolicy, VersionRef, VersionStatus
from shared.errors import ErrorInfo
from shared.status import RegionProgress, VersionProgress

STEP = "publish"
MAX_RECREATES = 5
# Status checks while a failed version of this run is deleted (at most poll_max_seconds apart).
DELETE_POLLS = 60


def replication_verdict(status: VersionStatus, regions: list[str]) -> tuple[str, list[RegionProgress]]:
    """``("completed" | "failed" | "replicating", per-region progress)`` for the target ``regions``.

    A region missing from Azure's answer counts as not yet replicating; provisioning Failed or an
    error on the version fails the whole publish.
    """
    by_region = {r.region.replace(" ", "").lower(): r for r in status.regions}
    rows = []
    for name in regions:
        r = by_region.get(name)
        rows.append(
            RegionProgress(region=name, state=r.state, progress=r.progress, details=r.details)
            if r is not None
            else RegionProgress(region=name)
        )
    if (status.provisioning_state or "").lower() == "failed" or status.error:
        return "failed", rows
    if any(r.state.lower() == "failed" for r in rows):
        return "failed", rows
    done = all(r.state.lower() == "completed" for r in rows)
    if done and (status.provisioning_state or "Succeeded").lower() == "succeeded":
        return "completed", rows
    return "replicating", rows


def replication_done_fraction(rows: list[RegionProgress]) -> float:
    """Replication progress of the whole version, 0..1: the mean over the target regions (Completed = 100 %).

    The mean grows about evenly even though the source region replicates first and the others
    after it, so its rate predicts the end (``timing.progress_poll_delay``).
    """
    if not rows:
        return 0.0
    pcts = [100 if r.state.lower() == "completed" else min(max(r.progress or 0, 0), 100) for r in rows]
    return sum(pcts) / (100.0 * len(pcts))


def replication_poll_delay(
    policy: CapturePolicy, polls: int, rows: list[RegionProgress], elapsed_seconds: float
) -> float:
    """Wait before the next replication-status read, from the progress seen ``elapsed_seconds`` in."""
    return progress_poll_delay(policy, polls, replication_done_fraction(rows), elapsed_seconds)


def _failure_message(version_id: str, status: VersionStatus, rows: list[RegionProgress]) -> str:
    failed = [r for r in rows if r.state.lower() == "failed"]
    if failed:
        parts = "; ".join(f"{r.region}: {r.details or 'no details from Azure'}" for r in failed)
        return f"Replication of {version_id} failed in {len(failed)} region(s): {parts}."
    return f"Creating {version_id} failed: {status.error or 'provisioning state ' + str(status.provisioning_state)}."


def _progress(context: df.DurableOrchestrationContext, inp: PublishVersionInput) -> VersionProgress:
    """The progress to report, restored from the state a previous execution carried over."""
    st = inp.state
    progress = VersionProgress(
        regions=[RegionProgress(region=r.name) for r in inp.version.target_regions],
        started=st.started if st else iso(context.current_utc_datetime),
    )
    if st is not None:
        progress.state = "replicating"
        progress.version_id = st.version_id
        progress.definition_id = st.definition_id
        progress.definition_created = st.definition_created
        progress.gallery_created = st.gallery_created
        progress.polls = st.polls
        progress.executions = st.executions
        progress.recreated = st.recreated
    return progress


@bp.orchestration_trigger(context_name="context", orchestration=names.PUBLISH_VERSION)
def publish_version(context: df.DurableOrchestrationContext) -> Gen[dict[str, Any] | None]:
    refuse_unreplayable(context)  # first: before anything an unreplayable history could misdirect
    inp = PublishVersionInput.from_wire(context.get_input())
    publish = _Replication(context, inp, _progress(context, inp))
    progress = publish.progress
    try:
        if (yield from publish.run()) is None:
            return None  # continued as new
        progress.state = "completed"
    except Canceled as c:
        # Stop waiting for replication; the parent deletes the version if the request asked to clean up.
        progress.state = "canceled"
        progress.error = ErrorInfo.canceled(
            STEP,
            "Publishing was canceled" + (f" ({c.reason})" if c.reason else "") + ".",
            resource=progress.version_id,
        )
    except Exception as exc:  # StepFailed or unexpected: report in the output, never raise (see module doc)
        publish.fail(exc)
    return publish.end()


class _Replication(BranchRun[PublishVersionInput, VersionProgress, PublishState]):
    """One execution's wait for the version's replication: what ``poll`` probes, judges and paces."""

    def __init__(
        self, context: df.DurableOrchestrationContext, inp: PublishVersionInput, progress: VersionProgress
    ) -> None:
        super().__init__(context, inp, progress, policy=inp.policy, state=inp.state, step=STEP)
        self.regions = [r.name for r in inp.version.target_regions]
        self.recreate = False  # the last status failed transiently: create the version again

    def start(self) -> Gen[VersionStatus]:
        """Ensure the definition and start the version (the first execution only)."""
        progress = self.progress
        d = yield from self.calls.run(ENSURE_DEFINITION, self.inp.definition)
        progress.definition_id = d.definition_id
        progress.definition_created = d.definition_created
        progress.gallery_created = d.gallery_created
        status = yield from self.calls.run(START_IMAGE_VERSION, self.inp.version)
        self.state = PublishState(
            started=progress.started or iso(self.context.current_utc_datetime),
            version_id=status.version_id,
            operation_url=status.operation_url,
            definition_id=d.definition_id,
            definition_created=d.definition_created,
            gallery_created=d.gallery_created,
        )
        progress.version_id = status.version_id
        progress.state = "replicating"
        return status

    def waited(self) -> float:
        return elapsed_seconds(self.st.started, self.context.current_utc_datetime)

    def done(self, status: VersionStatus) -> bool:
        """Completed, or failed for good; a transient create failure is created again instead."""
        verdict, rows = replication_verdict(status, self.regions)
        self.progress.regions = rows
        self.progress.polls = self.st.polls
        self.context.set_custom_status(self.progress.to_wire())
        self.recreate = verdict == "failed" and _may_recreate(status, self.st, self.policy, self.waited())
        return verdict == "completed" or (verdict == "failed" and not self.recreate)

    def delay(self, polls: int, _: object) -> float | None:
        if self.recreate:
            return None  # probe() creates it again after its own back-off
        return replication_poll_delay(self.policy, self.st.polls, self.progress.regions, self.waited())

    def probe(self) -> Gen[VersionStatus]:
        st = self.st
        if self.recreate:
            return (yield from self._recreate())
        ref = VersionRef(version_id=st.version_id, operation_url=st.operation_url)
        status = yield from self.calls.run(GET_VERSION_STATUS, ref)
        st.polls += 1
        return status

    def run(self) -> Gen[VersionStatus | None]:
        """Wait until replicated; ``None`` when this execution continued as new. Raises on failure."""
        first = (yield from self.start()) if self.state is None else None
        verdict = yield from self.wait(
            self.probe,
            self.done,
            self.delay,
            started=parse_iso(self.st.started),
            timeout=self.policy.replication_timeout_seconds,
            first=first,
        )
        if isinstance(verdict, Done):
            if replication_verdict(verdict.value, self.regions)[0] == "failed":
                raise StepFailed((yield from self._failed(verdict.value)))
            return verdict.value
        if isinstance(verdict, OutOfPolls):
            self.carry_on()
            return None
        raise StepFailed(self._timed_out(verdict.waited))

    def _recreate(self) -> Gen[VersionStatus]:
        """Create the version again after a transient failure of its create (see module doc)."""
        st = self.st
        yield from sleep(self.context, retry_delay(self.policy, st.recreated))
        st.recreated += 1
        self.progress.recreated = st.recreated
        status = yield from self.calls.run(START_IMAGE_VERSION, self.inp.version)
        st.version_id, st.operation_url = status.version_id, status.operation_url
        self.progress.version_id = status.version_id
        return status

    def _failed(self, status: VersionStatus) -> Gen[ErrorInfo]:
        st, rows = self.st, self.progress.regions
        if status.failure is not None and not status.exists:
            self.progress.version_id = None  # its create failed: Azure made nothing
        elif status.failure is not None:
            try:
                self.progress.deleted = yield from delete_version(self.calls, st.version_id, DELETE_POLLS)
            except Exception:  # the failure being reported matters more; the version is named as left behind
                self.progress.deleted = False
        return ErrorInfo.azure_failed(
            STEP,
            status.failure.code if status.failure else None,
            fallback_code="ReplicationFailed",
            resource=st.version_id,
            message=_failure_message(st.version_id, status, rows),
            advice="Check the image definition and the snapshots for this code, then run the capture again."
            if status.failure is not None
            else "Check the region's quota and the storage account type, then run the capture "
            "again (the failed version can be deleted or its regions updated).",
        )

    def _timed_out(self, waited: float) -> ErrorInfo:
        st = self.st
        pending = [r.region for r in self.progress.regions if r.state.lower() != "completed"]
        return ErrorInfo.timed_out(
            STEP,
            "ReplicationTimedOut",
            resource=st.version_id,
            message=f"{st.version_id} was still replicating to {', '.join(pending)} after {int(waited)} s.",
            advice="Replication continues in Azure; watch the version's replication status, or raise "
            "CAPTURE_REPLICATION_TIMEOUT_SECONDS.",
        )


def _may_recreate(status: VersionStatus, st: PublishState, policy: CapturePolicy, waited: float) -> bool:
    f = status.failure
    if f is None or not f.transient or st.recreated >= MAX_RECREATES:
        return False
    return waited < policy.replication_timeout_seconds


def delete_version(calls: Calls, version_id: str, max_polls: int) -> Gen[bool]:
    """Delete an image version and wait until it is gone; True when it is (``max_polls`` status checks).

    Raises only what ``calls`` raises; the status checks are retried by count, never patiently.
    """
    ref = VersionRef(version_id=version_id)
    yield from calls.run(DELETE_IMAGE_VERSION, ref)
    status_calls = calls.at(calls.step, patient=False)
    verdict = yield from poll(
        calls.context,
        lambda: status_calls.run(GET_VERSION_STATUS, ref),
        lambda status: not status.exists,
        lambda polls, _: poll_delay(calls.policy, polls),
        max_polls=max_polls,
    )
    return isinstance(verdict, Done)
