"""The stages of a specialized capture that an inPlace capture has not: when to deallocate, the restart.

A specialized capture never generalizes the VM. With consistency "stopped" a running VM is
deallocated for the snapshots and started again right after them, and on every other ending too
(failure, cancel): the capture never leaves a VM stopped that it found running. The restart has no
cancel safe point: a cancel must not stop it half-way.
"""

from __future__ import annotations

from typing import Any

from orchestrators.calls import Calls
from orchestrators.cancellation import Canceled
from orchestrators.capture import endings
from orchestrators.capture.pipeline import Plan
from orchestrators.capture.rules import STOPPED
from orchestrators.capture.run import CaptureRun
from orchestrators.polling import Done, poll
from orchestrators.retrying import Gen, StepFailed, failure_info
from orchestrators.timing import poll_delay
from shared.activity_types import START_VM
from shared.contracts import PowerState, VmRef
from shared.errors import ErrorInfo
from shared.status import Stage

# Power states from which the VM is on its way to running: it was running when the capture found it.
RUNNING = frozenset({"running", "starting"})


def skip_deallocate(run: CaptureRun) -> str | None:
    if run.req.effective_consistency != "stopped":
        return "consistency is crash: the snapshots are of the VM as it runs"
    if run.vm.power_state in STOPPED:
        return f"the VM is already {run.vm.power_state}"
    return None


def _deallocated_by_us(run: CaptureRun) -> bool:
    """This run deallocated a VM that was running (the deallocate stage started), and it is not running yet."""
    started = run.progress.stage_of(Stage.DEALLOCATE).state not in ("pending", "skipped")
    return started and run.facts is not None and run.facts.power_state in RUNNING and not run.restarted


def skip_restart(run: CaptureRun) -> str | None:
    if _deallocated_by_us(run):
        return None
    if run.progress.stage_of(Stage.DEALLOCATE).state == "skipped":
        return "the capture did not deallocate the VM"
    return f"the VM was {run.vm.power_state} before the capture: it stays so"


def restart(run: CaptureRun, step: str = Stage.RESTART) -> Gen[str]:
    """Start the VM again and wait until it runs; ``start_vm`` is called on each poll (idempotent).

    No cancel watch: the restart is what a cancel wants too.
    """
    facts, policy, calls = run.vm, run.inp.policy, run.calls(step)

    def probe() -> Gen[PowerState]:
        return calls.run(START_VM, VmRef(vm_id=facts.id))

    verdict = yield from poll(
        run.context,
        probe,
        lambda s: s.power_state == "running",
        lambda polls, _: poll_delay(policy, polls),
        timeout=policy.power_state_timeout_seconds,
    )
    if isinstance(verdict, Done):
        run.restarted = True
        return f"{facts.name} is running again"
    last = verdict.last.power_state if verdict.last is not None else "unknown"
    raise StepFailed(
        ErrorInfo.timed_out(
            step,
            "PowerStateTimedOut",
            resource=facts.id,
            message=f"{facts.name} was still {last} after {int(verdict.waited)} s waiting for it to start "
            "again (the capture deallocated it for consistent snapshots).",
            advice=f"Start {facts.name} yourself and check its activity log; the VM was not generalized.",
        )
    )


def _restart_after(run: CaptureRun, step: str) -> Gen[None]:
    """Start the VM again if this run deallocated it; say what happened in the run's ``cleaned`` list."""
    if not _deallocated_by_us(run):
        return
    name = run.vm.name
    try:
        yield from restart(run, step)
    except Exception as exc:  # the VM's state is what matters to the caller: say it, keep the ending
        info = failure_info(exc, step=step)
        run.progress.cleaned.append(
            f"cleanup incomplete: {name} is still deallocated: start it ({info.message})"
        )
        return
    run.progress.cleaned.append(f"{name} started again (it was deallocated for the snapshots)")


def restart_on_cancel(run: CaptureRun, calls: Calls) -> Gen[None]:
    """The deallocate stage's compensation: the VM runs again."""
    yield from _restart_after(run, "cancel")


def restart_on_failure(run: CaptureRun) -> Gen[None]:
    yield from _restart_after(run, "cleanup")


def canceled(run: CaptureRun, plan: Plan, c: Canceled) -> Gen[dict[str, Any]]:
    """A canceled specialized capture: the VM runs again first, whatever the other compensations do.

    (The plan's compensation stops at the first that fails; the restart must not depend on them.)
    """
    yield from restart_on_cancel(run, run.calls("cancel"))
    return (yield from endings.canceled(run, plan, c))
