"""The snapshot and cleanup stages, and the compensations that remove a run's snapshots.

``snapshot`` starts a snapshot of every disk (names derived from the run id) and polls until all
Succeeded, creating one again after a transient failure of its create; ``cleanup`` deletes them
when asked and waits until they are gone. On cancel ``delete_on_cancel`` deletes them (when the
request asked to clean up); on failure ``cleanup_on_failure`` runs the cleanup stage if nothing
needs them any more.
"""

from __future__ import annotations

from orchestrators.calls import Calls
from orchestrators.capture.run import CaptureRun
from orchestrators.polling import Done, poll
from orchestrators.retrying import Gen, StepFailed, sleep
from orchestrators.timing import SNAPSHOT_FIRST_POLL_FACTOR, first_poll_delay, poll_delay, retry_delay
from shared.activity_types import DELETE_SNAPSHOT, GET_SNAPSHOT, GET_SNAPSHOT_DELETION, START_SNAPSHOT
from shared.contracts import SnapshotInput, SnapshotRef, SnapshotResult
from shared.errors import ErrorInfo
from shared.ids import TAG_CAPTURE_ID, TAG_RUN_ID, TAG_SOURCE_VM
from shared.status import CaptureProgress, Stage


class _Snapshots:
    """The snapshots being made: what ``poll`` probes, judges and paces (see ``snapshot``)."""

    def __init__(self, run: CaptureRun, inputs: dict[str, SnapshotInput]) -> None:
        self.run, self.inputs = run, inputs
        self.calls = run.calls(Stage.SNAPSHOT, patient=True)
        self.policy = run.inp.policy
        self.snaps: dict[str, SnapshotResult] = {}
        self.recreated = 0
        self.begun = run.context.current_utc_datetime

    def failed(self) -> list[SnapshotResult]:
        return [s for s in self.snaps.values() if s.provisioning_state == "Failed"]

    def start(self, keys: list[str]) -> Gen[dict[str, SnapshotResult]]:
        started = yield from self.calls.run_all(START_SNAPSHOT, [self.inputs[k] for k in keys])
        made = self.run.snapshots
        known = {m.snapshot_id for m in made}
        made.extend(s for s in started if s.snapshot_id not in known)
        self.snaps.update({s.disk_key: s for s in started})
        return self.snaps

    def done(self, snaps: dict[str, SnapshotResult]) -> bool:
        progress = self.run.progress
        for s in snaps.values():
            disk = progress.disk(s.disk_key)
            disk.snapshot_id, disk.snapshot_state = s.snapshot_id, s.provisioning_state
            disk.snapshot_percent = 100.0 if s.provisioning_state == "Succeeded" else s.completion_percent
        self.run.t.publish()
        failed = self.failed()
        if failed:
            waited = (self.run.context.current_utc_datetime - self.begun).total_seconds()
            retry = all(s.failure is not None and s.failure.transient for s in failed)
            if not retry or waited >= self.policy.snapshot_timeout_seconds:
                raise StepFailed(_snapshot_failure(failed[0], self.recreated))
            return False
        return all(s.provisioning_state == "Succeeded" for s in snaps.values())

    def delay(self, polls: int, _: object) -> float | None:
        if self.failed():
            return None  # probe() creates them again after its own back-off
        # The first poll at a snapshot's usual duration: earlier ones would only find it still Creating.
        if polls == 0:
            return first_poll_delay(self.policy, SNAPSHOT_FIRST_POLL_FACTOR)
        return poll_delay(self.policy, polls)

    def probe(self) -> Gen[dict[str, SnapshotResult]]:
        failed = self.failed()
        if failed:
            yield from sleep(
                self.run.context, retry_delay(self.policy, min(self.recreated, 4)), self.run.watch
            )
            self.recreated += 1
            return (yield from self.start([s.disk_key for s in failed]))
        pending = [s for s in self.snaps.values() if s.provisioning_state != "Succeeded"]
        refs = [SnapshotRef(snapshot_id=s.snapshot_id, operation_url=s.operation_url) for s in pending]
        self.snaps.update({s.disk_key: s for s in (yield from self.calls.run_all(GET_SNAPSHOT, refs))})
        return self.snaps


def snapshot(run: CaptureRun) -> Gen[None]:
    """Snapshot every disk and wait until all Succeeded.

    ``run.snapshots`` collects every snapshot as soon as Azure accepted it, so a failure cleans them
    up. A snapshot whose create failed with a transient code is created again by ``start_snapshot``
    (which deletes a Failed one of this run first), within the snapshot timeout; a terminal code
    fails the stage with Azure's code and message.
    """
    facts, cid = run.vm, run.run_id
    tags = {TAG_CAPTURE_ID: cid, **run.req.tags}
    tags.update({TAG_CAPTURE_ID: run.inp.capture_id, TAG_RUN_ID: cid, TAG_SOURCE_VM: facts.id[:256]})
    inputs = {
        d.key: SnapshotInput(
            run_id=cid,
            disk=d,
            subscription_id=facts.subscription_id,
            resource_group=facts.resource_group,
            location=facts.location,
            hyper_v_generation=facts.hyper_v_generation,
            tags=tags,
        )
        for d in facts.disks
    }
    snaps = _Snapshots(run, inputs)
    first = yield from snaps.start(list(inputs))
    verdict = yield from poll(
        run.context,
        snaps.probe,
        snaps.done,
        snaps.delay,
        timeout=run.inp.policy.snapshot_timeout_seconds,
        watch=run.watch,
        first=first,
    )
    if not isinstance(verdict, Done):
        pending = [s for s in snaps.snaps.values() if s.provisioning_state != "Succeeded"]
        raise StepFailed(
            ErrorInfo.timed_out(
                Stage.SNAPSHOT,
                "SnapshotTimedOut",
                resource=pending[0].snapshot_id,
                message=f"Snapshots {', '.join(s.name for s in pending)} were not ready after "
                f"{int(verdict.waited)} s.",
                advice="Check the snapshots' state, then run the capture again (it reuses them).",
            )
        )
    run.snapshots[:] = [verdict.value[d.key] for d in facts.disks]


def _snapshot_failure(s: SnapshotResult, recreated: int) -> ErrorInfo:
    f = s.failure
    said = f"Azure said {f.code}: {f.message}" if f is not None else "Azure gave no reason"
    again = f" (created {recreated} more time(s) after transient failures)" if recreated else ""
    return ErrorInfo.azure_failed(
        Stage.SNAPSHOT,
        f.code if f is not None else None,
        fallback_code="SnapshotFailed",
        resource=s.snapshot_id,
        message=f"Snapshot {s.name} of disk {s.disk_key} failed to provision{again}: {said}.",
        advice="Check the snapshot in the portal/activity log for this code, then run the capture again.",
    )


def mark_deleted(progress: CaptureProgress, snapshot_ids: list[str]) -> None:
    """Record which snapshots are gone, so a cleanup that fails half-way names only the ones left."""
    gone = {i.lower() for i in snapshot_ids}
    for disk in progress.disks:
        if disk.snapshot_id and disk.snapshot_id.lower() in gone:
            disk.snapshot_state = "Deleted"


def snapshots_left(progress: CaptureProgress, snapshot_ids: list[str]) -> list[str]:
    """The ids among ``snapshot_ids`` that the cleanup has not seen gone."""
    deleted = {
        d.snapshot_id.lower() for d in progress.disks if d.snapshot_id and d.snapshot_state == "Deleted"
    }
    return [i for i in snapshot_ids if i.lower() not in deleted]


def skip_cleanup(run: CaptureRun) -> str | None:
    return None if run.req.delete_snapshots else "deleteSnapshots is false: snapshots kept"


def cleanup(run: CaptureRun) -> Gen[None]:
    """Delete the run's snapshots (idempotent) and wait until they are gone.

    A delete is an LRO that can fail after Azure accepted it: ``get_snapshot_deletion`` follows each
    one and deletes again after a transient failure, so "deleted" in the result means gone.
    """
    calls, progress, snapshots = run.calls(Stage.CLEANUP, patient=True), run.progress, run.snapshots
    started = yield from calls.run_all(
        DELETE_SNAPSHOT, [SnapshotRef(snapshot_id=s.snapshot_id) for s in snapshots]
    )
    pending = {d.resource_id: d.operation_url for d in started if d.changed}
    mark_deleted(progress, [s.snapshot_id for s in snapshots if s.snapshot_id not in pending])

    def probe() -> Gen[dict[str, str | None]]:
        refs = [SnapshotRef(snapshot_id=i, operation_url=u) for i, u in pending.items()]
        for d in (yield from calls.run_all(GET_SNAPSHOT_DELETION, refs)):
            if d.changed:
                pending.pop(d.resource_id, None)
                mark_deleted(progress, [d.resource_id])
            else:
                pending[d.resource_id] = d.operation_url
        return pending

    policy = run.inp.policy
    verdict = yield from poll(
        run.context,
        probe,
        lambda left: not left,
        lambda polls, _: poll_delay(policy, polls),
        timeout=policy.snapshot_timeout_seconds,
        first=pending,
    )
    if not isinstance(verdict, Done):
        raise StepFailed(
            ErrorInfo.timed_out(
                Stage.CLEANUP,
                "SnapshotDeleteTimedOut",
                resource=next(iter(pending)),
                message=f"Snapshots {', '.join(pending)} still existed {int(verdict.waited)} s after their deletion.",
                advice="Delete them in the portal or with the CLI.",
            )
        )
    run.deleted = [s.snapshot_id for s in snapshots]


def delete_on_cancel(run: CaptureRun, calls: Calls) -> Gen[None]:
    """Compensation of ``snapshot`` on cancel: delete the snapshots when the request asked to clean up."""
    snapshot_ids = [d.snapshot_id for d in run.progress.disks if d.snapshot_id]
    cleaned = run.progress.cleaned
    if run.req.delete_snapshots and snapshot_ids:
        yield from calls.run_all(DELETE_SNAPSHOT, [SnapshotRef(snapshot_id=i) for i in snapshot_ids])
        run.deleted = list(snapshot_ids)
        cleaned += [f"snapshot {i.rsplit('/', 1)[-1]} deleted" for i in snapshot_ids]
    elif snapshot_ids:
        cleaned.append(f"snapshots kept (deleteSnapshots is false): {', '.join(snapshot_ids)}")
