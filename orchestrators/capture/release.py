"""The retain and share stages (after publish; ``RELEASE`` in ``orchestrators.capture.plan``).

RETAIN lists the image definition's versions, decides with ``shared.retention_rules`` (pure; the
orchestrator's clock as "now") which go, deletes them one by one and waits until each is gone. A retry
or a replay lists again: what is gone is not listed, what is ``Deleting`` counts as deleted. A delete
Azure refuses keeps that version, with Azure's code as the reason; the capture still succeeds.

SHARE grants each ``share.principals`` entry its role on the gallery (``assign_waiting``): the activity
``assign_role`` is idempotent, and a ``PrincipalNotFound`` (a principal the directory has not replicated
yet) is waited out on durable timers through ``poll()``, up to ``policy.principal_wait_seconds``, then the
capture fails with advice. Both run only after a usable version: a failed publish skips them.
"""

from __future__ import annotations

from datetime import timedelta

from orchestrators.calls import Calls
from orchestrators.cancellation import CancelWatch
from orchestrators.capture.run import CaptureRun
from orchestrators.polling import Done, poll
from orchestrators.publish_version import delete_version
from orchestrators.retrying import Gen, StepFailed, failure_info
from orchestrators.timing import parse_iso, retry_delay
from shared.activity_types import ASSIGN_ROLE, LIST_DEFINITION_VERSIONS
from shared.errors import ErrorInfo
from shared.release_spec import (
    DefinitionVersionsInput,
    KeptVersion,
    RetentionReport,
    RoleAssignmentInput,
    RoleAssignmentResult,
    ShareReport,
)
from shared.retention_rules import retention_plan
from shared.status import Stage

# Status checks while one old version is deleted (at most poll_max_seconds apart).
DELETE_POLLS = 60


def end_of_life_date(run: CaptureRun) -> str | None:
    """The new version's end of life: the request's date, or the run's start plus ``endOfLifeDays``."""
    req = run.req
    if req.end_of_life_date is not None:
        return req.end_of_life_date.isoformat()
    days = req.retention.end_of_life_days if req.retention else None
    if days is None:
        return None
    return (parse_iso(run.started_at) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _no_version(run: CaptureRun) -> str | None:
    if run.deferred is not None or run.progress.image_version_state != "completed":
        return "the image version is not usable (publish did not complete)"
    return None


def skip_retain(run: CaptureRun) -> str | None:
    if run.req.retention is None or run.req.retention.keep_latest is None:
        return "no retention.keepLatest in the request"
    return _no_version(run)


def skip_share(run: CaptureRun) -> str | None:
    if run.req.share is None:
        return "no share in the request"
    return _no_version(run)


def gallery_id(run: CaptureRun) -> str:
    g = run.gallery
    return (
        f"/subscriptions/{g.subscription_id}/resourceGroups/{g.resource_group}"
        f"/providers/Microsoft.Compute/galleries/{g.name}"
    )


def retain(run: CaptureRun) -> Gen[str]:
    """Delete the definition's oldest versions beyond ``retention.keepLatest``; report deleted and kept."""
    assert run.req.retention is not None and run.req.retention.keep_latest is not None
    keep, g = run.req.retention.keep_latest, run.gallery
    calls = run.calls(Stage.RETAIN, patient=True)
    where = DefinitionVersionsInput(
        subscription_id=g.subscription_id or "",
        resource_group=g.resource_group,
        gallery=g.name,
        definition=run.req.image_definition.name,
    )
    listed = yield from calls.run(LIST_DEFINITION_VERSIONS, where)
    current = run.progress.image_version_id or ""
    doomed, kept = retention_plan(listed.versions, keep, current, run.context.current_utc_datetime)
    report = RetentionReport(keep_latest=keep, kept=kept)
    run.progress.retention = report
    run.t.publish()
    for vid in doomed:
        try:
            gone = yield from delete_version(calls, vid, DELETE_POLLS)
        except StepFailed as exc:  # Azure refused: the version stays, with Azure's word for why
            info = failure_info(exc, step=Stage.RETAIN)
            report.kept.append(KeptVersion(version_id=vid, reason=f"delete refused: {info.message}"[:500]))
            continue
        report.deleted.append(vid if gone else f"{vid} (deletion still running)")
        run.t.publish()
    run.t.publish()
    return f"kept {len(report.kept)}, deleted {len(report.deleted)} (keepLatest {keep})"


def assign_waiting(
    calls: Calls, watch: CancelWatch, inp: RoleAssignmentInput
) -> Gen[tuple[RoleAssignmentResult, int]]:
    """``assign_role`` until the principal is known (or ``policy.principal_wait_seconds`` passed):
    the result and how many ``PrincipalNotFound`` answers were waited out. Raises ``StepFailed`` with
    advice when the principal never appeared. Reusable by any stage that grants a role."""
    answers: list[RoleAssignmentResult] = []

    def probe() -> Gen[RoleAssignmentResult]:
        result = yield from calls.run(ASSIGN_ROLE, inp)
        answers.append(result)
        return result

    verdict = yield from poll(
        calls.context,
        probe,
        lambda r: r.state != "principalNotFound",
        lambda polls, _: retry_delay(calls.policy, polls),
        timeout=calls.policy.principal_wait_seconds,
        watch=watch,
    )
    misses = sum(1 for a in answers if a.state == "principalNotFound")
    if isinstance(verdict, Done):
        return verdict.value, misses
    said = answers[-1].message if answers else None
    raise StepFailed(
        ErrorInfo.azure_failed(
            calls.step,
            "PrincipalNotFound",
            f"Role {inp.role_id} on {inp.scope} could not be assigned to principal {inp.principal_id} "
            f"({inp.principal_type}): Azure answered PrincipalNotFound {misses} time(s) over "
            f"{int(verdict.waited)} s: {said or 'no message'}",
            fallback_code="PrincipalNotFound",
            resource=inp.scope,
            advice="Check that principalId is the object id (not the application or client id) of a "
            f"{inp.principal_type} in this subscription's tenant and that principalType matches it. A principal "
            "created moments ago can take a while to replicate: raise SHARE_PRINCIPAL_WAIT_SECONDS or send the "
            "capture's share again later (the image version is usable meanwhile).",
        )
    )


def share(run: CaptureRun) -> Gen[str]:
    """Grant each principal its role on the gallery; the assignments in the status and the result."""
    assert run.req.share is not None
    calls, scope = run.calls(Stage.SHARE, patient=True), gallery_id(run)
    for p in run.req.share.principals:
        inp = RoleAssignmentInput(
            scope=scope,
            principal_id=p.principal_id,
            principal_type=p.principal_type,
            role_definition_id=p.role_id,
        )
        result, misses = yield from assign_waiting(calls, run.watch, inp)
        run.progress.shared.append(
            ShareReport(
                principal_id=p.principal_id,
                principal_type=p.principal_type,
                role_definition_id=p.role_id,
                assignment_id=result.assignment_id,
                state=result.state,
                principal_not_found=misses,
            )
        )
        run.t.publish()
    states = [s.state for s in run.progress.shared]
    return f"{states.count('created')} created, {states.count('existed')} existed on {scope}"
