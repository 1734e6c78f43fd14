"""Steps of ``capture_image`` that wait on Azure's long-running operations, and how a failure is told.

``wait_power`` polls the VM's power state (and, given one, the operation that should change it);
``deallocate`` reads the deallocation's outcome instead of waiting out its timeout;
``take_snapshots`` creates a snapshot again after a transient failure of its create; ``cleanup``
deletes snapshots and waits until they are gone; ``with_leftovers`` makes a failure after generalize
name the VM's state and everything left behind. Deterministic, like every orchestrator module.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import azure.durable_functions as df

from orchestrators import names
from orchestrators.cancellation import CancelWatch
from orchestrators.retrying import StepFailed, call, call_all, sleep
from orchestrators.timing import (
    DEALLOCATE_FIRST_POLL_FACTOR,
    SNAPSHOT_FIRST_POLL_FACTOR,
    first_poll_delay,
    poll_delay,
    retry_delay,
)
from shared.contracts import (
    CapturePolicy,
    Done,
    GuestPrepareInput,
    GuestPrepareResult,
    PowerState,
    SnapshotInput,
    SnapshotRef,
    SnapshotResult,
    VmFacts,
    VmRef,
)
from shared.errors import ErrorInfo
from shared.ids import TAG_CAPTURE_ID, TAG_RUN_ID, TAG_SOURCE_VM
from shared.status import CaptureProgress

if TYPE_CHECKING:
    from orchestrators.capture_image import Tracker

Gen = Generator[Any, Any, Any]


def wait_power(
    context: df.DurableOrchestrationContext,
    facts: VmFacts,
    wanted: set[str] | frozenset[str],
    *,
    timeout: float,
    step: str,
    waiting_for: str,
    policy: CapturePolicy,
    watch: CancelWatch | None = None,
    first_delay: float | None = None,
    operation_url: str | None = None,
    note: str | None = None,
) -> Gen:
    """Poll get_power_state on durable timers until it is one of ``wanted``; fail after ``timeout`` s.

    With ``first_delay`` the first poll comes after that wait (the operation's usual duration)
    instead of at once. Each wait is a safe point: a ``cancel`` raises ``Canceled``. With
    ``operation_url`` (the operation that should get the VM there) every poll reads its outcome too,
    and a state whose operation ended Failed/Canceled is returned at once for the caller to judge.
    ``note`` is added to the timeout's message (what Azure said when the step started).
    """
    started = context.current_utc_datetime
    polls = 0
    if first_delay:
        yield from sleep(context, first_delay, watch)
    while True:
        state = PowerState.from_wire(
            (
                yield from call(
                    context,
                    names.GET_POWER_STATE,
                    VmRef(vm_id=facts.id, operation_url=operation_url).to_wire(),
                    step=step,
                    policy=policy,
                )
            )
        )
        if state.power_state in wanted:
            return state
        if state.operation is not None and state.operation.status.lower() in ("failed", "canceled"):
            return state
        waited = (context.current_utc_datetime - started).total_seconds()
        if waited >= timeout:
            raise StepFailed(
                ErrorInfo.timed_out(
                    step,
                    "GuestPreparationTimedOut" if step == "prepare" else "PowerStateTimedOut",
                    resource=facts.id,
                    message=f"{facts.name} was still {state.power_state} after {int(waited)} s waiting for "
                    f"{waiting_for}." + (f" {note}" if note else ""),
                    advice=(
                        "Check the guest (boot diagnostics / serial console): the deprovision or sysprep step "
                        "must end by shutting the VM down. The VM was not generalized."
                        if step == "prepare"
                        else "Check the VM's activity log, then run the capture again."
                    ),
                )
            )
        yield from sleep(context, poll_delay(policy, polls), watch)
        polls += 1


# How often a deallocation that Azure reports Failed with a transient code is started again.
DEALLOCATE_RESTARTS = 3


def deallocate(
    context: df.DurableOrchestrationContext, facts: VmFacts, policy: CapturePolicy, watch: CancelWatch
) -> Gen:
    """Start deallocating and wait until deallocated, reading the operation's outcome on every poll.

    A deallocation Azure reports Failed with a transient code is started again (at most
    ``DEALLOCATE_RESTARTS`` times); any other Failed ends the capture at once with Azure's code,
    before generalize, instead of waiting out the power-state timeout.
    """
    restarts = 0
    while True:
        state = PowerState.from_wire(
            (
                yield from call(
                    context,
                    names.START_DEALLOCATE,
                    VmRef(vm_id=facts.id).to_wire(),
                    step="deallocate",
                    policy=policy,
                )
            )
        )
        if state.power_state == "deallocated":
            return state
        state = yield from wait_power(
            context,
            facts,
            {"deallocated"},
            timeout=policy.power_state_timeout_seconds,
            step="deallocate",
            waiting_for="the deallocation to finish",
            policy=policy,
            watch=watch,
            first_delay=first_poll_delay(policy, DEALLOCATE_FIRST_POLL_FACTOR),
            operation_url=state.operation_url,
        )
        op = state.operation
        if state.power_state == "deallocated" or op is None:
            return state
        if not op.transient or restarts >= DEALLOCATE_RESTARTS:
            raise StepFailed(
                ErrorInfo.azure_failed(
                    "deallocate",
                    op.code,
                    transient=op.transient,
                    fallback_code="DeallocateFailed",
                    resource=facts.id,
                    message=f"Azure's deallocation of {facts.name} ended {op.status}: {op.code}: {op.message} "
                    f"(the VM is {state.power_state}"
                    + (f", after {restarts} restart(s) of the deallocation" if restarts else "")
                    + ").",
                    advice="The VM was not generalized. Check the VM's activity log for this code, fix the "
                    "cause, then run the capture again.",
                )
            )
        restarts += 1
        yield from sleep(context, retry_delay(policy, restarts - 1), watch)


# How often the guest step is started again after Azure ended its Run Command Failed with a transient
# code while the VM kept running (the script never ran: nothing in the guest changed).
GUEST_RESTARTS = 2
STOPPED = frozenset({"stopped", "deallocated"})


def prepare_guest(
    context: df.DurableOrchestrationContext, facts: VmFacts, policy: CapturePolicy, watch: CancelWatch
) -> Gen:
    """Start the deprovision/sysprep Run Command and wait from outside for the guest to stop the VM.

    Run Command cannot report the end of a step that shuts the guest down, so the wait is for the
    power state; but every poll also reads the Run Command's operation. A Run Command that Azure ends
    Failed while the VM is still running (checked once more after a poll, because a guest shutting down
    mid-command ends it so too) is started again for a transient code and fails the step at once, with
    Azure's code, for any other — instead of waiting out the guest timeout and blaming the guest.
    """
    what = (
        "waagent -deprovision+user to power the VM off"
        if facts.os_type == "Linux"
        else "sysprep /generalize /oobe /shutdown to shut the VM down"
    )
    restarts = 0
    while True:
        begun = GuestPrepareResult.from_wire(
            (
                yield from call(
                    context,
                    names.START_GUEST_PREPARE,
                    GuestPrepareInput(vm_id=facts.id, os_type=facts.os_type).to_wire(),
                    step="prepare",
                    policy=policy,
                )
            )
        )
        conflict = (
            f"When the capture started the guest step, Azure answered {begun.conflict}: a Run Command "
            "was already running on the VM, which may have been another one's (an operator's or a tool's), "
            "not the capture's, so the deprovision may never have run."
            if begun.already_in_progress and begun.conflict
            else None
        )
        state = yield from wait_power(
            context,
            facts,
            STOPPED,
            timeout=policy.guest_stop_timeout_seconds,
            step="prepare",
            waiting_for=what,
            policy=policy,
            watch=watch,
            note=conflict,
            operation_url=begun.operation_url,
        )
        op = state.operation
        if state.power_state in STOPPED or op is None:
            return state
        yield from sleep(context, poll_delay(policy, 0), watch)
        again = PowerState.from_wire(
            (
                yield from call(
                    context,
                    names.GET_POWER_STATE,
                    VmRef(vm_id=facts.id).to_wire(),
                    step="prepare",
                    policy=policy,
                )
            )
        )
        if again.power_state != "running":  # stopping or stopped: the guest is shutting down, as intended
            return (
                yield from wait_power(
                    context,
                    facts,
                    STOPPED,
                    timeout=policy.guest_stop_timeout_seconds,
                    step="prepare",
                    waiting_for=what,
                    policy=policy,
                    watch=watch,
                )
            )
        if not op.transient or restarts >= GUEST_RESTARTS:
            raise StepFailed(
                ErrorInfo.azure_failed(
                    "prepare",
                    op.code,
                    f"Azure's Run Command for the guest step on {facts.name} ended {op.status}: "
                    f"{op.code}: {op.message} (the VM is still running"
                    + (f", after {restarts} restart(s) of the step" if restarts else "")
                    + ").",
                    fallback_code="GuestPreparationFailed",
                    resource=facts.id,
                    advice="The VM was not generalized and is still running. Check the VM's Run Command "
                    "and agent status for this code, fix the cause, then run the capture again.",
                )
            )
        restarts += 1
        yield from sleep(context, retry_delay(policy, restarts - 1), watch)


def facts_name(progress: CaptureProgress, vm_id: str) -> str:
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


def take_snapshots(
    context: df.DurableOrchestrationContext,
    t: Tracker,
    facts: VmFacts,
    cid: str,
    tags: dict[str, str],
    policy: CapturePolicy,
    watch: CancelWatch | None = None,
    made: list[SnapshotResult] | None = None,
) -> Gen:
    """Start a snapshot of every disk (names derived from the run id ``cid``) and poll until all Succeeded.

    ``made`` collects every snapshot as soon as Azure accepted it, so a failure cleans them up. A
    snapshot whose create failed with a transient code (its operation's error) is created again by
    ``start_snapshot`` (which deletes a Failed one of this run first), within the snapshot timeout;
    a terminal code fails the step with Azure's code and message.
    """
    made = made if made is not None else []
    snap_tags = {TAG_CAPTURE_ID: cid, **tags, TAG_RUN_ID: cid, TAG_SOURCE_VM: facts.id[:256]}
    inputs = {
        d.key: SnapshotInput(
            capture_id=cid,
            disk=d,
            subscription_id=facts.subscription_id,
            resource_group=facts.resource_group,
            location=facts.location,
            hyper_v_generation=facts.hyper_v_generation,
            tags=snap_tags,
        ).to_wire()
        for d in facts.disks
    }
    snaps = yield from _start_snapshots(context, inputs, list(inputs), policy, made)
    begun = context.current_utc_datetime
    polls = 0
    recreated = 0
    while True:
        for s in snaps.values():
            disk = t.progress.disk(s.disk_key)
            disk.snapshot_id, disk.snapshot_state = s.snapshot_id, s.provisioning_state
            disk.snapshot_percent = 100.0 if s.provisioning_state == "Succeeded" else s.completion_percent
        t.publish()
        failed = [s for s in snaps.values() if s.provisioning_state == "Failed"]
        waited = (context.current_utc_datetime - begun).total_seconds()
        if failed:
            retry = all(s.failure is not None and s.failure.transient for s in failed)
            if not retry or waited >= policy.snapshot_timeout_seconds:
                raise StepFailed(_snapshot_failure(failed[0], recreated))
            yield from sleep(context, retry_delay(policy, min(recreated, 4)), watch)
            recreated += 1
            snaps.update(
                (yield from _start_snapshots(context, inputs, [s.disk_key for s in failed], policy, made))
            )
            continue
        pending = [s for s in snaps.values() if s.provisioning_state != "Succeeded"]
        if not pending:
            return [snaps[d.key] for d in facts.disks]
        if waited >= policy.snapshot_timeout_seconds:
            raise StepFailed(
                ErrorInfo.timed_out(
                    "snapshot",
                    "SnapshotTimedOut",
                    resource=pending[0].snapshot_id,
                    message=f"Snapshots {', '.join(s.name for s in pending)} were not ready after {int(waited)} s.",
                    advice="Check the snapshots' state, then run the capture again (it reuses them).",
                )
            )
        # The first poll at a snapshot's usual duration: earlier ones would only find it still Creating.
        delay = (
            first_poll_delay(policy, SNAPSHOT_FIRST_POLL_FACTOR) if polls == 0 else poll_delay(policy, polls)
        )
        yield from sleep(context, delay, watch)
        polls += 1
        answers = yield from call_all(
            context,
            [
                (
                    names.GET_SNAPSHOT,
                    SnapshotRef(snapshot_id=s.snapshot_id, operation_url=s.operation_url).to_wire(),
                )
                for s in pending
            ],
            step="snapshot",
            policy=policy,
            patient=True,
        )
        for a in answers:
            s = SnapshotResult.from_wire(a)
            snaps[s.disk_key] = s


def _start_snapshots(
    context: df.DurableOrchestrationContext,
    inputs: dict[str, dict[str, Any]],
    keys: list[str],
    policy: CapturePolicy,
    made: list[SnapshotResult],
) -> Gen:
    started = yield from call_all(
        context,
        [(names.START_SNAPSHOT, inputs[k]) for k in keys],
        step="snapshot",
        policy=policy,
        patient=True,
    )
    snaps = {s.disk_key: s for s in (SnapshotResult.from_wire(x) for x in started)}
    known = {m.snapshot_id for m in made}
    made.extend(s for s in snaps.values() if s.snapshot_id not in known)
    return snaps


def _snapshot_failure(s: SnapshotResult, recreated: int) -> ErrorInfo:
    f = s.failure
    said = f"Azure said {f.code}: {f.message}" if f is not None else "Azure gave no reason"
    again = f" (created {recreated} more time(s) after transient failures)" if recreated else ""
    return ErrorInfo.azure_failed(
        "snapshot",
        f.code if f is not None else None,
        fallback_code="SnapshotFailed",
        resource=s.snapshot_id,
        message=f"Snapshot {s.name} of disk {s.disk_key} failed to provision{again}: {said}.",
        advice="Check the snapshot in the portal/activity log for this code, then run the capture again.",
    )


def _mark_deleted(progress: CaptureProgress, snapshot_ids: list[str]) -> None:
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


def cleanup(
    context: df.DurableOrchestrationContext,
    t: Tracker,
    snapshots: list[SnapshotResult],
    delete: bool,
    policy: CapturePolicy,
) -> Gen:
    """Delete the capture's snapshots when asked (idempotent) and wait until they are gone; return their ids.

    A delete is an LRO that can fail after Azure accepted it: ``get_snapshot_deletion`` follows each
    one and deletes again after a transient failure, so "deleted" in the result means gone.
    """
    if not delete:
        t.skip("cleanup", "deleteSnapshots is false: snapshots kept")
        return []
    t.begin("cleanup")
    started = yield from call_all(
        context,
        [(names.DELETE_SNAPSHOT, SnapshotRef(snapshot_id=s.snapshot_id).to_wire()) for s in snapshots],
        step="cleanup",
        policy=policy,
        patient=True,
    )
    pending = {d.resource_id: d.operation_url for d in (Done.from_wire(x) for x in started) if d.changed}
    _mark_deleted(t.progress, [s.snapshot_id for s in snapshots if s.snapshot_id not in pending])
    begun = context.current_utc_datetime
    polls = 0
    while pending:
        waited = (context.current_utc_datetime - begun).total_seconds()
        if waited >= policy.snapshot_timeout_seconds:
            raise StepFailed(
                ErrorInfo.timed_out(
                    "cleanup",
                    "SnapshotDeleteTimedOut",
                    resource=next(iter(pending)),
                    message=f"Snapshots {', '.join(pending)} still existed {int(waited)} s after their deletion.",
                    advice="Delete them in the portal or with the CLI.",
                )
            )
        yield from sleep(context, poll_delay(policy, polls))
        polls += 1
        answers = yield from call_all(
            context,
            [
                (names.GET_SNAPSHOT_DELETION, SnapshotRef(snapshot_id=i, operation_url=u).to_wire())
                for i, u in pending.items()
            ],
            step="cleanup",
            policy=policy,
            patient=True,
        )
        for d in (Done.from_wire(x) for x in answers):
            if d.changed:
                pending.pop(d.resource_id, None)
                _mark_deleted(t.progress, [d.resource_id])
            else:
                pending[d.resource_id] = d.operation_url
    t.end("cleanup")
    return [s.snapshot_id for s in snapshots]
