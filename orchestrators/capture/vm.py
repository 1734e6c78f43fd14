"""The stages on the source VM: preflight (read-only), prepare the guest, deallocate, generalize.

``wait_power`` polls the VM's power state (and, given one, the operation that should change it);
``deallocate`` reads the deallocation's outcome instead of waiting out its timeout; ``prepare``
starts the guest step again after a transient Run Command failure. Deterministic, like every
orchestrator module.
"""

from __future__ import annotations

from orchestrators.capture.rules import (
    STOPPED,
    mode_problems,
    preflight_problems,
    region_problems,
    shown_consistency,
    target_regions,
)
from orchestrators.capture.run import CaptureRun
from orchestrators.polling import Done, poll
from orchestrators.retrying import Gen, StepFailed, sleep
from orchestrators.timing import DEALLOCATE_FIRST_POLL_FACTOR, first_poll_delay, poll_delay, retry_delay
from shared.activity_types import (
    CHECK_EXPORT_TARGET,
    CHECK_GALLERY,
    CHECK_PERMISSIONS,
    GENERALIZE_VM,
    GET_POWER_STATE,
    GET_VM_FACTS,
    LIST_REGIONS,
    START_DEALLOCATE,
    START_GUEST_PREPARE,
)
from shared.contracts import (
    ExportCheckInput,
    GalleryCheckInput,
    GalleryCheckResult,
    GuestPrepareInput,
    OperationOutcome,
    PowerState,
    RegionsInput,
    VmFacts,
    VmRef,
)
from shared.errors import ErrorInfo
from shared.permissions import CapturePlanNeeds, PermissionsCheckInput, missing_permissions_error
from shared.status import DiskProgress, RegionProgress, Stage

IRREVERSIBLE = (
    "The VM is generalized: it can no longer be started. Recreate a VM from the image version if needed."
)
# How often a deallocation that Azure reports Failed with a transient code is started again.
DEALLOCATE_RESTARTS = 3
# How often the guest step is started again after Azure ended its Run Command Failed with a transient
# code while the VM kept running (the script never ran: nothing in the guest changed).
GUEST_RESTARTS = 2


def preflight(run: CaptureRun) -> Gen[None]:
    """Read the VM, check the gallery, the regions and the export target; fail before anything changes."""
    req, calls = run.req, run.calls(Stage.PREFLIGHT)
    facts = run.facts = yield from calls.run(GET_VM_FACTS, VmRef(vm_id=req.vm_id))
    run.progress.disks = [
        DiskProgress(key=d.key, name=d.name, lun=d.lun, size_gb=d.size_gb) for d in facts.disks
    ]
    run.progress.generalized = facts.generalized
    if facts.generalized:
        run.progress.source_state = "generalized"
    gallery = CHECK_GALLERY.bind(
        GalleryCheckInput(
            gallery=run.gallery,
            definition=req.image_definition,
            version=req.version,
            vm=facts,
            os_state=run.os_state,
            run_id=run.run_id,
        )
    )
    # The image version lives in the gallery's subscription: its regions are the ones that count.
    regions = LIST_REGIONS.bind(RegionsInput(subscription_id=req.gallery_subscription_id))
    target = req.vhd_export
    export = (
        CHECK_EXPORT_TARGET.bind(ExportCheckInput(account_url=target.account_url, container=target.container))
        if target is not None
        else None
    )
    answers = yield from calls.gather(gallery, regions, export)
    gcheck = run.gallery_check = answers[gallery]
    problems = preflight_problems(req.prepare or "none", facts, gcheck, answers.get(export))
    problems += mode_problems(req, facts) + region_problems(
        req.target_regions,
        facts,
        req.gallery.name,
        gcheck.gallery_location,
        req.gallery_subscription_id,
        answers[regions].regions,
    )
    if problems:
        raise StepFailed(ErrorInfo.preflight_failed(req.vm_id, problems, facts.name))
    yield from _check_permissions(run, facts, gcheck)
    run.regions = target_regions(req.target_regions, facts.location, gcheck.gallery_location)
    run.progress.regions = [RegionProgress(region=r.name) for r in run.regions]
    run.progress.image_version = gcheck.resolved_version
    run.progress.consistency = shown_consistency(req, facts)


def _check_permissions(run: CaptureRun, facts: VmFacts, gcheck: GalleryCheckResult) -> Gen[None]:
    """Every action this run will need, held by the identity at its scope: else one error naming them all."""
    req = run.req
    in_place = req.capture_mode == "inPlace"
    running = not facts.generalized and facts.power_state != "deallocated"
    needs = CapturePlanNeeds(
        source_vm_id=req.vm_id,
        gallery_group_id=f"/subscriptions/{req.gallery_subscription_id}/resourceGroups/{req.gallery.resource_group}",
        capture_mode=req.capture_mode,
        export=req.vhd_export is not None,
        prepare_running_vm=in_place and running,
        stopped_consistency=not in_place and running and req.effective_consistency == "stopped",
        create_if_missing=not gcheck.gallery_exists or gcheck.definition is None,
    )
    found = yield from run.calls(Stage.PREFLIGHT).run(CHECK_PERMISSIONS, PermissionsCheckInput(plan=needs))
    if found.missing:
        raise StepFailed(missing_permissions_error(found.missing, resource=req.source_vm_id))


def skip_prepare(run: CaptureRun) -> str | None:
    if run.vm.generalized:
        return "the VM is already generalized"
    if run.req.prepare != "deprovision":
        return "prepare is 'none': the caller deprovisioned the guest"
    return None


def skip_generalized(run: CaptureRun) -> str | None:
    return "the VM is already generalized" if run.vm.generalized else None


def wait_power(
    run: CaptureRun,
    wanted: frozenset[str],
    *,
    step: Stage,
    timeout: float,
    waiting_for: str,
    first_delay: float | None = None,
    operation_url: str | None = None,
    note: str | None = None,
) -> Gen[PowerState]:
    """Poll get_power_state until it is one of ``wanted``; fail after ``timeout`` s.

    With ``first_delay`` the first poll comes after that wait (the operation's usual duration)
    instead of at once. With ``operation_url`` (the operation that should get the VM there) every
    poll reads its outcome too, and a state whose operation ended Failed/Canceled is returned at once
    for the caller to judge. ``note`` is added to the timeout's message.
    """
    facts, policy, calls = run.vm, run.inp.policy, run.calls(step)

    def ended(s: PowerState) -> bool:
        failed = s.operation is not None and s.operation.status.lower() in ("failed", "canceled")
        return s.power_state in wanted or failed

    verdict = yield from poll(
        run.context,
        lambda: calls.run(GET_POWER_STATE, VmRef(vm_id=facts.id, operation_url=operation_url)),
        ended,
        lambda polls, _: poll_delay(policy, polls),
        timeout=timeout,
        watch=run.watch,
        first_delay=first_delay,
    )
    if isinstance(verdict, Done):
        return verdict.value
    guest = step == Stage.PREPARE
    last = verdict.last.power_state if verdict.last is not None else "unknown"
    raise StepFailed(
        ErrorInfo.timed_out(
            step,
            "GuestPreparationTimedOut" if guest else "PowerStateTimedOut",
            resource=facts.id,
            message=f"{facts.name} was still {last} after {int(verdict.waited)} s waiting "
            f"for {waiting_for}." + (f" {note}" if note else ""),
            advice="Check the guest (boot diagnostics / serial console): the deprovision or sysprep step "
            "must end by shutting the VM down. The VM was not generalized."
            if guest
            else "Check the VM's activity log, then run the capture again.",
        )
    )


def deallocate(run: CaptureRun) -> Gen[None]:
    """Start deallocating and wait until deallocated, reading the operation's outcome on every poll.

    A deallocation Azure reports Failed with a transient code is started again (at most
    ``DEALLOCATE_RESTARTS`` times); any other Failed ends the capture at once with Azure's code,
    before generalize, instead of waiting out the power-state timeout.
    """
    facts, policy, calls = run.vm, run.inp.policy, run.calls(Stage.DEALLOCATE)
    for restarts in range(DEALLOCATE_RESTARTS + 1):
        state = yield from calls.run(START_DEALLOCATE, VmRef(vm_id=facts.id))
        if state.power_state == "deallocated":
            return
        state = yield from wait_power(
            run,
            frozenset({"deallocated"}),
            step=Stage.DEALLOCATE,
            timeout=policy.power_state_timeout_seconds,
            waiting_for="the deallocation to finish",
            first_delay=first_poll_delay(policy, DEALLOCATE_FIRST_POLL_FACTOR),
            operation_url=state.operation_url,
        )
        op = state.operation
        if state.power_state == "deallocated" or op is None:
            return
        if not op.transient or restarts >= DEALLOCATE_RESTARTS:
            raise StepFailed(
                ErrorInfo.azure_failed(
                    Stage.DEALLOCATE,
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
        yield from sleep(run.context, retry_delay(policy, restarts), run.watch)


def generalize(run: CaptureRun) -> Gen[str | None]:
    """Generalize the VM: irreversible (the shell's cancel check before it is the last safe point)."""
    yield from run.calls(Stage.GENERALIZE).run(GENERALIZE_VM, VmRef(vm_id=run.vm.id))
    run.progress.generalized, run.progress.source_state = True, "generalized"
    run.progress.irreversible_note = IRREVERSIBLE
    return IRREVERSIBLE


def prepare(run: CaptureRun) -> Gen[None]:
    """Start the deprovision/sysprep Run Command and wait from outside for the guest to stop the VM.

    Run Command cannot report the end of a step that shuts the guest down, so the wait is for the
    power state; but every poll also reads the Run Command's operation. A Run Command that Azure ends
    Failed while the VM is still running (checked once more after a poll, because a guest shutting down
    mid-command ends it so too) is started again for a transient code and fails the step at once, with
    Azure's code, for any other — instead of waiting out the guest timeout and blaming the guest.
    """
    facts, policy, calls = run.vm, run.inp.policy, run.calls(Stage.PREPARE)
    what = (
        "waagent -deprovision+user to power the VM off"
        if facts.os_type == "Linux"
        else "sysprep /generalize /oobe /shutdown to shut the VM down"
    )
    timeout = policy.guest_stop_timeout_seconds
    for restarts in range(GUEST_RESTARTS + 1):
        begun = yield from calls.run(
            START_GUEST_PREPARE, GuestPrepareInput(vm_id=facts.id, os_type=facts.os_type)
        )
        conflict = (
            f"When the capture started the guest step, Azure answered {begun.conflict}: a Run Command "
            "was already running on the VM, which may have been another one's (an operator's or a tool's), "
            "not the capture's, so the deprovision may never have run."
            if begun.already_in_progress and begun.conflict
            else None
        )
        state = yield from wait_power(
            run,
            STOPPED,
            step=Stage.PREPARE,
            timeout=timeout,
            waiting_for=what,
            note=conflict,
            operation_url=begun.operation_url,
        )
        op = state.operation
        if state.power_state in STOPPED or op is None:
            return
        yield from sleep(run.context, poll_delay(policy, 0), run.watch)
        again = yield from calls.run(GET_POWER_STATE, VmRef(vm_id=facts.id))
        if again.power_state != "running":  # stopping or stopped: the guest is shutting down, as intended
            yield from wait_power(run, STOPPED, step=Stage.PREPARE, timeout=timeout, waiting_for=what)
            return
        if not op.transient or restarts >= GUEST_RESTARTS:
            raise StepFailed(_guest_failed(run, op, restarts))
        yield from sleep(run.context, retry_delay(policy, restarts), run.watch)


def _guest_failed(run: CaptureRun, op: OperationOutcome, restarts: int) -> ErrorInfo:
    facts = run.vm
    return ErrorInfo.azure_failed(
        Stage.PREPARE,
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
