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

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from orchestrators import names
from orchestrators.blueprint import bp
from orchestrators.cancellation import Canceled, CancelWatch
from orchestrators.models import PublishState, PublishVersionInput
from orchestrators.retrying import StepFailed, call, failure_info, sleep
from orchestrators.timing import elapsed_seconds, iso, poll_delay, progress_poll_delay, retry_delay
from orchestrators.versioning import refuse_unreplayable
from shared.contracts import CapturePolicy, DefinitionResult, VersionRef, VersionStatus
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


@bp.orchestration_trigger(context_name="context", orchestration=names.PUBLISH_VERSION)
def publish_version(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    refuse_unreplayable(context)  # first: before anything an unreplayable history could misdirect
    inp = PublishVersionInput.from_wire(context.get_input())
    policy = inp.policy
    regions = [r.name for r in inp.version.target_regions]
    st = inp.state
    progress = VersionProgress(
        regions=[RegionProgress(region=r) for r in regions],
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
    context.set_custom_status(progress.to_wire())

    watch = CancelWatch(context)
    try:
        status: VersionStatus | None = None
        if st is None:
            d = DefinitionResult.from_wire(
                (
                    yield from call(
                        context,
                        names.ENSURE_DEFINITION,
                        inp.definition.to_wire(),
                        step=STEP,
                        policy=policy,
                        patient=True,
                    )
                )
            )
            progress.definition_id = d.definition_id
            progress.definition_created = d.definition_created
            progress.gallery_created = d.gallery_created
            status = VersionStatus.from_wire(
                (
                    yield from call(
                        context,
                        names.START_IMAGE_VERSION,
                        inp.version.to_wire(),
                        step=STEP,
                        policy=policy,
                        patient=True,
                    )
                )
            )
            st = PublishState(
                started=progress.started or iso(context.current_utc_datetime),
                version_id=status.version_id,
                operation_url=status.operation_url,
                definition_id=d.definition_id,
                definition_created=d.definition_created,
                gallery_created=d.gallery_created,
            )
            progress.version_id = status.version_id
            progress.state = "replicating"
        polls_here = 0
        while True:
            if status is not None:
                verdict, rows = replication_verdict(status, regions)
                progress.regions = rows
                progress.polls = st.polls
                context.set_custom_status(progress.to_wire())
                if verdict == "completed":
                    progress.state = "completed"
                    break
                if verdict == "failed" and _may_recreate(status, st, policy, context):
                    status = yield from _recreate(context, inp, st, progress, policy)
                    continue
                if verdict == "failed":
                    if status.failure is not None and not status.exists:
                        progress.version_id = None  # its create failed: Azure made nothing
                    elif status.failure is not None:
                        progress.deleted = yield from _delete_failed(context, st.version_id, policy)
                    raise StepFailed(
                        ErrorInfo.azure_failed(
                            STEP,
                            status.failure.code if status.failure else None,
                            fallback_code="ReplicationFailed",
                            resource=st.version_id,
                            message=_failure_message(st.version_id, status, rows),
                            advice="Check the image definition and the snapshots for this code, then run the "
                            "capture again."
                            if status.failure is not None
                            else "Check the region's quota and the storage account type, then run the capture "
                            "again (the failed version can be deleted or its regions updated).",
                        )
                    )
            waited = elapsed_seconds(st.started, context.current_utc_datetime)
            if waited >= policy.replication_timeout_seconds:
                pending = [r.region for r in progress.regions if r.state.lower() != "completed"]
                raise StepFailed(
                    ErrorInfo.timed_out(
                        STEP,
                        "ReplicationTimedOut",
                        resource=st.version_id,
                        message=f"{st.version_id} was still replicating to {', '.join(pending)} after "
                        f"{int(waited)} s.",
                        advice="Replication continues in Azure; watch the version's replication status, or raise "
                        "CAPTURE_REPLICATION_TIMEOUT_SECONDS.",
                    )
                )
            if polls_here >= policy.max_polls_per_execution:
                watch.check()  # never carry a received cancel into the next execution
                st.executions += 1
                context.continue_as_new(inp.model_copy(update={"state": st}).to_wire())
                return None
            delay = replication_poll_delay(policy, st.polls, progress.regions, waited)
            yield from sleep(context, delay, watch)
            status = VersionStatus.from_wire(
                (
                    yield from call(
                        context,
                        names.GET_VERSION_STATUS,
                        VersionRef(version_id=st.version_id, operation_url=st.operation_url).to_wire(),
                        step=STEP,
                        policy=policy,
                        patient=True,
                    )
                )
            )
            polls_here += 1
            st.polls += 1
    except Canceled as c:
        # Stop waiting for replication; the parent deletes the version if the request asked to clean up.
        progress.state = "canceled"
        progress.error = ErrorInfo.canceled(
            STEP,
            "Publishing was canceled" + (f" ({c.reason})" if c.reason else "") + ".",
            resource=progress.version_id,
        )
    except Exception as exc:  # StepFailed or unexpected: report in the output, never raise (see module doc)
        info = failure_info(exc, step=STEP)
        progress.state = "failed"
        progress.error = ErrorInfo.from_info(info)
    progress.ended = iso(context.current_utc_datetime)
    context.set_custom_status(progress.to_wire())
    return progress.to_wire()


def _may_recreate(
    status: VersionStatus, st: PublishState, policy: CapturePolicy, context: df.DurableOrchestrationContext
) -> bool:
    f = status.failure
    if f is None or not f.transient or st.recreated >= MAX_RECREATES:
        return False
    return elapsed_seconds(st.started, context.current_utc_datetime) < policy.replication_timeout_seconds


def _recreate(
    context: df.DurableOrchestrationContext,
    inp: PublishVersionInput,
    st: PublishState,
    progress: VersionProgress,
    policy: CapturePolicy,
) -> Generator[Any, Any, VersionStatus]:
    """Create the version again after a transient failure of its create (see module doc)."""
    yield from sleep(context, retry_delay(policy, st.recreated))
    st.recreated += 1
    progress.recreated = st.recreated
    status = VersionStatus.from_wire(
        (
            yield from call(
                context,
                names.START_IMAGE_VERSION,
                inp.version.to_wire(),
                step=STEP,
                policy=policy,
                patient=True,
            )
        )
    )
    st.version_id, st.operation_url = status.version_id, status.operation_url
    progress.version_id = status.version_id
    return status


def _delete_failed(
    context: df.DurableOrchestrationContext, version_id: str, policy: CapturePolicy
) -> Generator[Any, Any, bool]:
    """Delete this run's failed version and wait until it is gone; True when it is. Never raises."""
    try:
        yield from call(
            context,
            names.DELETE_IMAGE_VERSION,
            VersionRef(version_id=version_id).to_wire(),
            step=STEP,
            policy=policy,
            patient=True,
        )
        for polls in range(DELETE_POLLS):
            status = VersionStatus.from_wire(
                (
                    yield from call(
                        context,
                        names.GET_VERSION_STATUS,
                        VersionRef(version_id=version_id).to_wire(),
                        step=STEP,
                        policy=policy,
                    )
                )
            )
            if not status.exists:
                return True
            yield from sleep(context, poll_delay(policy, polls))
    except Exception:  # the failure being reported matters more; the version is named as left behind
        return False
    return False
