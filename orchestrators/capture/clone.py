"""The stages of a capture by clone (captureMode "clone"): a copy of the VM is generalized instead of the VM.

After the source's snapshots (the snapshot stage, crash-consistent or with the source deallocated and
started again) the copies of its disks are made in the build group (``clone_disks``; the source's
snapshots are deleted once the copies exist), then a NIC on the build subnet and a VM of the copies
(``clone_vm``; it waits for the guest agent). The guest step, deallocate and the clone's snapshots are the
inPlace stages run on the clone (``on_clone``: the run's VM facts are the clone's for that stage only);
``generalize`` marks the clone, never the source. ``delete_clone`` removes the clone VM with its NIC and
disks before publish. ``remove_clone`` and ``delete_source_snapshots`` are the compensations: after a
failure or a cancel nothing of the clone is left. The source VM's disks and power state never change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrators.calls import Calls
from orchestrators.cancellation import Canceled
from orchestrators.capture import snapshots, specialized
from orchestrators.capture.pipeline import Plan
from orchestrators.capture.run import CaptureRun
from orchestrators.polling import Done, poll
from orchestrators.retrying import Gen, StepFailed, failure_info
from orchestrators.timing import poll_delay
from shared.activity_types import (
    CREATE_CLONE_VM,
    DELETE_CLONE,
    DELETE_SNAPSHOT,
    ENSURE_CLONE_DISK,
    ENSURE_CLONE_NIC,
    GENERALIZE_VM,
    GET_CLONE_VM,
    GET_SNAPSHOT_DELETION,
    GET_VM_FACTS,
)
from shared.clones import (
    CloneDiskInput,
    CloneDiskResult,
    CloneLeft,
    CloneNicInput,
    CloneProgress,
    CloneRef,
    CloneVmInput,
    clone_disk_name,
)
from shared.contracts import Done as Deleted
from shared.contracts import SnapshotRef, VmRef
from shared.errors import ErrorInfo
from shared.ids import TAG_CAPTURE_ID, TAG_RUN_ID, TAG_SOURCE_VM
from shared.status import Stage


def _clone(run: CaptureRun) -> CloneProgress:
    if run.progress.clone is None:
        raise RuntimeError("the preflight stage has not planned the clone")
    return run.progress.clone


def _tags(run: CaptureRun) -> dict[str, str]:
    return {
        **run.req.tags,
        TAG_CAPTURE_ID: run.inp.capture_id,
        TAG_RUN_ID: run.run_id,
        TAG_SOURCE_VM: run.req.vm_id[:256],
    }


def on_clone(stage: Callable[[CaptureRun], Gen[Any]]) -> Callable[[CaptureRun], Gen[Any]]:
    """``stage`` run on the clone: the run's VM facts are the clone's while it runs, the source's after."""

    def run_on_clone(run: CaptureRun) -> Gen[Any]:
        source = run.facts
        run.facts = run.clone_facts
        try:
            return (yield from stage(run))
        finally:
            run.facts = source

    return run_on_clone


def _wait(
    run: CaptureRun, probe: Callable[[], Gen[Any]], done: Callable[[Any], bool], *, watch: bool = True
) -> Gen[Any]:
    """One ``poll`` with the run's pacing and power-state timeout; the value, or None when it timed out."""
    policy = run.inp.policy
    verdict = yield from poll(
        run.context,
        probe,
        done,
        lambda polls, _: poll_delay(policy, polls),
        timeout=policy.power_state_timeout_seconds,
        watch=run.watch if watch else None,
    )
    return verdict.value if isinstance(verdict, Done) else None


def clone_disks(run: CaptureRun) -> Gen[str]:
    """Copy every source disk from its snapshot into the build group; then delete the source's snapshots."""
    clone, calls = _clone(run), run.calls(Stage.CLONE_DISKS)
    by_key = {s.disk_key: s.snapshot_id for s in run.snapshots}
    clone.source_snapshot_ids = list(by_key.values())
    clone.state = "creating"
    inputs = [
        CloneDiskInput(
            run_id=run.run_id,
            build_group_id=clone.build_group_id,
            location=run.vm.location,
            disk=d,
            snapshot_id=by_key[d.key],
            tags=_tags(run),
        )
        for d in run.vm.disks
    ]
    copies: list[CloneDiskResult] = []

    def probe() -> Gen[list[CloneDiskResult]]:
        copies[:] = yield from calls.run_all(ENSURE_CLONE_DISK, inputs)
        clone.disk_ids = [c.disk_id for c in copies]
        run.t.publish()
        return copies

    made = yield from _wait(run, probe, lambda cs: all(c.provisioning_state == "Succeeded" for c in cs))
    if made is None:
        raise StepFailed(
            ErrorInfo.timed_out(
                Stage.CLONE_DISKS,
                "CloneDiskTimedOut",
                "the copies of the source's disks were not ready in time: "
                + ", ".join(f"{c.disk_id} ({c.provisioning_state})" for c in copies),
                resource=clone.build_group_id,
                advice="Check the disks in the build resource group; the capture deletes them. Run it again.",
            )
        )
    yield from delete_source_snapshots(run, calls)
    return f"{len(made)} disk(s) copied into {clone.build_group_id.rsplit('/', 1)[-1]}"


def delete_source_snapshots(run: CaptureRun, calls: Calls) -> Gen[None]:
    """Delete the snapshots of the source's disks (the copies are made from them) and wait until they are gone."""
    clone = run.progress.clone
    ids = (clone.source_snapshot_ids if clone else []) or [s.snapshot_id for s in run.snapshots]
    if (clone is not None and clone.source_snapshots_deleted) or not ids:
        return
    started = yield from calls.run_all(DELETE_SNAPSHOT, [SnapshotRef(snapshot_id=i) for i in ids])
    pending = {d.resource_id: d.operation_url for d in started if d.changed}

    def probe() -> Gen[dict[str, str | None]]:
        refs = [SnapshotRef(snapshot_id=i, operation_url=u) for i, u in pending.items()]
        answers: list[Deleted] = yield from calls.run_all(GET_SNAPSHOT_DELETION, refs)
        for d in answers:
            if d.changed:
                pending.pop(d.resource_id, None)
            else:
                pending[d.resource_id] = d.operation_url
        return pending

    if pending and (yield from _wait(run, probe, lambda left: not left, watch=False)) is None:
        raise StepFailed(
            ErrorInfo.timed_out(
                "cleanup",
                "SnapshotDeleteTimedOut",
                f"the source's snapshots {', '.join(pending)} still existed after their deletion",
                resource=next(iter(pending)),
                advice="Delete them in the portal or with the CLI.",
            )
        )
    snapshots.mark_deleted(run.progress, ids)
    if clone is not None:
        clone.source_snapshots_deleted = True
    run.snapshots.clear()  # the clone's snapshots come next: they are the ones the image is made of
    run.progress.cleaned.append(f"{len(ids)} snapshot(s) of the source's disks deleted (the copies exist)")
    run.t.publish()


def clone_vm(run: CaptureRun) -> Gen[str]:
    """The NIC on the build subnet, the VM of the copies (created again after AllocationFailed), its agent Ready."""
    clone, calls, facts = _clone(run), run.calls(Stage.CLONE_VM), run.vm
    target = run.clone_target
    if target is None:
        raise RuntimeError("the preflight stage has not checked the clone settings")
    nic = yield from calls.run(
        ENSURE_CLONE_NIC,
        CloneNicInput(
            run_id=run.run_id,
            build_group_id=clone.build_group_id,
            location=facts.location,
            subnet_id=target.subnet_id or "",
            tags=_tags(run),
        ),
    )
    clone.nic_id = nic.nic_id
    disk_ids = {d.key: i for d, i in zip(facts.disks, clone.disk_ids, strict=True)}
    vm_input = CloneVmInput(
        run_id=run.run_id,
        build_group_id=clone.build_group_id,
        source=facts,
        vm_size=clone.vm_size or facts.vm_size or "",
        nic_id=nic.nic_id,
        disk_ids=disk_ids,
        uefi_settings=target.uefi_settings,
        tags=_tags(run),
    )
    state = yield from calls.run(CREATE_CLONE_VM, vm_input)  # AllocationFailed is transient: retried
    clone.vm_id = state.vm_id
    run.t.publish()
    yield from _agent_ready(run, clone, calls)
    run.clone_facts = yield from calls.run(GET_VM_FACTS, VmRef(vm_id=clone.vm_id))
    clone.state = "running"
    return f"{clone.vm_id.rsplit('/', 1)[-1]} runs; its agent is Ready"


def _agent_ready(run: CaptureRun, clone: CloneProgress, calls: Calls) -> Gen[None]:
    """Wait until the clone's guest agent is Ready (Run Command needs it); fail on a create that ended Failed."""
    ready = yield from _wait(
        run,
        lambda: calls.run(GET_CLONE_VM, VmRef(vm_id=clone.vm_id)),
        lambda s: s.agent_ready or s.provisioning_state.lower() == "failed",
    )
    if ready is not None and not ready.agent_ready:  # a create that failed after an activity re-execution
        raise StepFailed(
            ErrorInfo.azure_failed(
                Stage.CLONE_VM,
                None,
                f"the clone {clone.vm_id} ended provisioningState Failed after its create was accepted",
                fallback_code="CloneCreateFailed",
                resource=clone.vm_id,
                advice="Check the clone's activity log for Azure's code; the capture deletes the clone. Run it again.",
                transient=False,
            )
        )
    if ready is None:
        raise StepFailed(
            ErrorInfo.timed_out(
                Stage.CLONE_VM,
                "VMAgentNotReady",
                f"the clone {clone.vm_id} runs, but its guest agent did not report Ready in time, so the guest "
                "step cannot run on it",
                resource=clone.vm_id,
                advice="Check that the source's VM agent works and that the build subnet allows outbound access "
                "to Azure storage; the capture deletes the clone. Run it again.",
            )
        )


def skip_prepare(run: CaptureRun) -> str | None:
    return (
        None
        if run.req.prepare == "deprovision"
        else "prepare is 'none': the source's guest was deprovisioned"
    )


def generalize(run: CaptureRun) -> Gen[str]:
    """Generalize the clone (never the source)."""
    clone = _clone(run)
    yield from run.calls(Stage.GENERALIZE).run(GENERALIZE_VM, VmRef(vm_id=clone.vm_id))
    clone.state = "generalized"
    return f"{clone.vm_id.rsplit('/', 1)[-1]} (the clone) is generalized; the source VM is untouched"


def delete_clone(run: CaptureRun) -> Gen[str | None]:
    yield from remove_clone(run, run.calls(Stage.DELETE_CLONE), fail=True)
    return "the clone VM, its network interface and its disks are deleted"


def remove_clone(run: CaptureRun, calls: Calls, *, fail: bool = False) -> Gen[None]:
    """Delete the clone VM (its NIC and disks go with it) and what is left of it, and wait until all are gone."""
    clone = run.progress.clone
    if clone is None or clone.state in ("planned", "deleted"):
        return
    clone.state = "deleting"
    run.t.publish()
    # The copies' names are the run's: a copy whose create failed half-way is found too.
    disks = clone.disk_ids or [
        f"{clone.build_group_id}/providers/Microsoft.Compute/disks/{clone_disk_name(run.run_id, d.key)}"
        for d in run.vm.disks
    ]
    ref = CloneRef(vm_id=clone.vm_id, nic_id=clone.nic_id, disk_ids=disks)
    last: list[CloneLeft] = []

    def probe() -> Gen[CloneLeft]:
        left = yield from calls.run(DELETE_CLONE, ref)
        ref.vm_delete_url = left.vm_delete_url
        last[:] = [left]
        return left

    gone = yield from _wait(run, probe, lambda left: not left.left, watch=False)
    if gone is None:
        left = last[0].left if last else [clone.vm_id]
        info = ErrorInfo.timed_out(
            "cleanup",
            "CloneDeleteTimedOut",
            f"parts of the clone still exist after their deletion: {', '.join(left)}",
            resource=left[0],
            advice="Delete them in the portal or with the CLI (they carry the tag image-pipeline:run-id of this run).",
        )
        if fail:
            raise StepFailed(info)
        run.progress.cleaned.append(f"cleanup incomplete: {info.message}")
        return
    clone.state = "deleted"
    run.progress.cleaned.append(
        f"clone {clone.vm_id.rsplit('/', 1)[-1]} deleted with its network interface and disks"
    )
    run.t.publish()


def _undo(run: CaptureRun, calls: Calls) -> Gen[None]:
    try:
        yield from remove_clone(run, calls)
    except Exception as exc:  # name what is left; the ending stays the run's
        run.progress.cleaned.append(f"cleanup incomplete: {failure_info(exc, step='cleanup').message}")


def remove_clone_on_cancel(run: CaptureRun, calls: Calls) -> Gen[None]:
    yield from _undo(run, calls)


def remove_clone_on_failure(run: CaptureRun) -> Gen[None]:
    yield from _undo(run, run.calls("cleanup"))


def source_snapshots_on_cancel(run: CaptureRun, calls: Calls) -> Gen[None]:
    yield from delete_source_snapshots(run, calls)


def source_snapshots_on_failure(run: CaptureRun) -> Gen[None]:
    yield from delete_source_snapshots(run, run.calls("cleanup"))


def canceled(run: CaptureRun, plan: Plan, c: Canceled) -> Gen[dict[str, Any]]:
    """A canceled clone capture: the source runs again first (if it was stopped), then the clone goes."""
    return (yield from specialized.canceled(run, plan, c))
