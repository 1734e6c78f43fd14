"""The release stages VERIFY (a boot test per region) and PROMOTE (the version becomes "latest").

With ``verify.bootTest`` on (or the setting ``BOOT_TEST_DEFAULT``) the version is published with
``excludeFromLatest: true`` (``branches.publish_input``). VERIFY then boots a test VM from it in each
chosen target region, all regions in parallel: ``start_boot_test`` for every region, then one
``poll()`` whose probe moves every unfinished region on (``check_boot_test``: provisioning, the agent
Ready, the smoke script), until each has a verdict or the boot-test timeout passes. The test VMs and
everything made with them are then deleted, and the wait for that is a second ``poll()``. The stage
ends failed when a region failed, with each region's verdict in the status (``bootTests``).

PROMOTE lifts ``excludeFromLatest`` (to the request's own ``excludeFromLatest``) when every region
passed. When one failed, the version stays excluded (or, with ``onFailure: "delete"``, is deleted) and
the capture fails with ``ErrorInfo.boot_test_failed``: each region, Azure's code and what to do.
A cancel during the boot test, or a failure of the stage, deletes the test VMs (compensations below).
"""

from __future__ import annotations

from orchestrators.calls import Calls
from orchestrators.capture.run import CaptureRun
from orchestrators.polling import Done, TimedOut, poll
from orchestrators.publish_version import delete_version
from orchestrators.retrying import Gen, StepFailed
from orchestrators.timing import poll_delay
from shared.activity_types import (
    CHECK_BOOT_TEST,
    DELETE_BOOT_TEST,
    GET_BOOT_TEST_LEFTOVERS,
    SET_VERSION_LATEST,
    START_BOOT_TEST,
)
from shared.errors import ErrorInfo
from shared.ids import TAG_CAPTURE_ID
from shared.status import Stage
from shared.verify_spec import (
    BootTestCheck,
    BootTestCleanup,
    BootTestDefaults,
    BootTestInput,
    BootTestProgress,
    BootTestState,
    VersionLatestInput,
    boot_test_on,
    boot_vm_name,
    chosen_regions,
    plan_problems,
    subnet_for,
    subnet_group,
)

# Status checks of the test VMs' deletion (and of a promotion), poll_max_seconds apart at most.
CLEANUP_POLLS = 60
PROMOTE_POLLS = 60
VERSION_DELETE_POLLS = 200
DEFAULT_VM_SIZE = "Standard_D2s_v5"


def defaults(run: CaptureRun) -> BootTestDefaults:
    return run.inp.policy.boot_test


def enabled(run: CaptureRun) -> bool:
    return boot_test_on(run.req.verify, defaults(run))


def problems(run: CaptureRun, targets: list[str]) -> list[str]:
    """Preflight: why the boot test cannot run as asked (none when it is off)."""
    if not enabled(run):
        return []
    return plan_problems(run.req.verify, defaults(run), targets, run.req.gallery_subscription_id)


def boot_test_group(run: CaptureRun, targets: list[str]) -> str | None:
    """``/subscriptions/{s}/resourceGroups/{g}`` of the test VMs (the permission preflight's build group)."""
    if not enabled(run) or problems(run, targets):
        return None
    first = _inputs_for(run, chosen_regions(run.req.verify, targets), "")[0]
    return f"/subscriptions/{first.subscription_id}/resourceGroups/{first.resource_group}"


def _inputs_for(run: CaptureRun, regions: list[str], version_id: str) -> list[BootTestInput]:
    spec, d, facts = run.req.verify, defaults(run), run.vm
    out = []
    for region in regions:
        subnet = subnet_for(region, run.req.gallery_subscription_id, spec, d) or ""
        sub, group = subnet_group(subnet)
        name, computer = boot_vm_name(run.run_id, region)
        out.append(
            BootTestInput(
                run_id=run.run_id,
                region=region,
                version_id=version_id,
                subscription_id=sub,
                resource_group=d.resource_group or group,
                vm_name=name,
                computer_name=computer,
                subnet_id=subnet,
                vm_size=(spec.vm_size if spec else None) or d.vm_size or facts.vm_size or DEFAULT_VM_SIZE,
                os_type=facts.os_type,
                os_state=run.os_state,
                security_type=facts.security_type,
                data_luns=[x.lun for x in facts.data_disks if x.lun is not None],
                tags={TAG_CAPTURE_ID: run.inp.capture_id},
            )
        )
    return out


def inputs(run: CaptureRun) -> list[BootTestInput]:
    """One test per chosen region, from the published version (deterministic: compensations rebuild it)."""
    targets = [r.name for r in run.regions]
    return _inputs_for(run, chosen_regions(run.req.verify, targets), run.progress.image_version_id or "")


def skip_verify(run: CaptureRun) -> str | None:
    if not enabled(run):
        return "no boot test (verify.bootTest is off)"
    if run.deferred is not None or run.progress.image_version_state != "completed":
        return "the image version is not usable: nothing to boot"
    return None


def _record(run: CaptureRun, states: list[BootTestState]) -> None:
    by_region = {b.region: b for b in run.progress.boot_tests}
    for s in states:
        b = by_region[s.region]
        b.state = "passed" if s.phase == "passed" else "failed" if s.phase == "failed" else "running"
        b.detail, b.code, b.message, b.exit_code = s.detail or s.phase, s.code, s.message, s.exit_code
    run.t.publish()


def verify(run: CaptureRun) -> Gen[None]:
    """Boot-test every chosen region in parallel, then delete the test VMs (this stage times itself)."""
    tests, spec = inputs(run), run.req.verify
    calls = run.calls(Stage.VERIFY, patient=True)
    run.progress.boot_tests = [
        BootTestProgress(region=t.region, state="running", vm_id=t.vm_id, detail="creating") for t in tests
    ]
    run.t.begin(Stage.VERIFY)
    current = yield from calls.run_all(START_BOOT_TEST, tests)
    _record(run, current)

    def probe() -> Gen[list[BootTestState]]:
        nonlocal current
        open_ = [i for i, s in enumerate(current) if not s.ended]
        checks = [
            BootTestCheck(test=tests[i], state=current[i], smoke_script=spec.smoke_script if spec else None)
            for i in open_
        ]
        for i, state in zip(open_, (yield from calls.run_all(CHECK_BOOT_TEST, checks)), strict=True):
            current[i] = state
        _record(run, current)
        return list(current)

    verdict = yield from poll(
        run.context,
        probe,
        lambda states: all(s.ended for s in states),
        lambda polls, _: poll_delay(run.inp.policy, polls),
        timeout=defaults(run).timeout_seconds,
        watch=run.watch,
    )
    if isinstance(verdict, TimedOut):
        timeout = defaults(run).timeout_seconds
        current = [
            s
            if s.ended
            else s.model_copy(
                update={
                    "phase": "failed",
                    "code": "BootTestTimedOut",
                    "message": f"no verdict within {timeout:.0f} s (BOOT_TEST_TIMEOUT_SECONDS); last seen: "
                    f"{s.detail or s.phase}",
                }
            )
            for s in current
        ]
        _record(run, current)
    yield from delete_tests(run, calls, tests)
    passed = sum(1 for s in current if s.phase == "passed")
    run.t.end(
        Stage.VERIFY,
        state="succeeded" if passed == len(current) else "failed",
        note=f"{passed} of {len(current)} region(s) passed the boot test",
    )


def delete_tests(run: CaptureRun, calls: Calls, tests: list[BootTestInput]) -> Gen[bool]:
    """Delete each region's test VM (NIC and disks go with it) and wait until nothing of them is left."""
    by_region = {b.region: b for b in run.progress.boot_tests}
    refs = [
        BootTestCleanup(region=t.region, vm_id=t.vm_id, nic_id=t.nic_id, run_id=t.run_id)
        for t in tests
        if not (t.region in by_region and by_region[t.region].cleaned)
    ]
    left = {x.region: x.left for x in (yield from calls.run_all(DELETE_BOOT_TEST, refs))}

    def probe() -> Gen[dict[str, list[str]]]:
        pending = [r for r in refs if left.get(r.region)]
        for answer in (yield from calls.run_all(GET_BOOT_TEST_LEFTOVERS, pending)):
            left[answer.region] = answer.left
        return left

    verdict = yield from poll(
        run.context,
        probe,
        lambda now: not any(now.values()),
        lambda polls, _: poll_delay(run.inp.policy, polls),
        first=left,
        max_polls=CLEANUP_POLLS,
    )
    for region, still in left.items():
        b = by_region.get(region)
        if b is not None:
            b.cleaned = not still
            if still:
                b.detail = f"{b.detail or b.state}; left behind: {', '.join(still)}"
    run.t.publish()
    return isinstance(verdict, Done)


def delete_on_cancel(run: CaptureRun, calls: Calls) -> Gen[None]:
    """Compensation of VERIFY on cancel: the test VMs go; the status says so."""
    tests = inputs(run)
    for b in run.progress.boot_tests:
        if b.state == "running":
            b.state = "canceled"
    if (yield from delete_tests(run, calls, tests)):
        run.progress.cleaned.append(f"boot test VM(s) deleted: {', '.join(t.vm_name for t in tests)}")
    else:
        raise StepFailed(_leftover_error(run))


def delete_on_failure(run: CaptureRun) -> Gen[None]:
    """Compensation of VERIFY on a failure: no test VM outlives the capture."""
    yield from delete_tests(run, run.calls(Stage.VERIFY, patient=True), inputs(run))


def _leftover_error(run: CaptureRun) -> ErrorInfo:
    left = [b.detail or b.region for b in run.progress.boot_tests if not b.cleaned]
    return ErrorInfo.timed_out(
        "cancel",
        "BootTestCleanupTimedOut",
        f"the boot test's resources were still there {CLEANUP_POLLS} status checks after their deletion: "
        + "; ".join(left),
        resource=run.progress.image_version_id,
        advice="Delete the test VMs (tagged image-pipeline:run-id with this run) in the portal.",
    )


def skip_promote(run: CaptureRun) -> str | None:
    return skip_verify(run)


def promote(run: CaptureRun) -> Gen[str]:
    """Every region passed: the version takes the request's excludeFromLatest. Else: fail, as asked."""
    progress, spec = run.progress, run.req.verify
    version_id = progress.image_version_id or ""
    calls = run.calls(Stage.PROMOTE, patient=True)
    failed = [b for b in progress.boot_tests if b.state != "passed"]
    if failed:
        deleted = False
        if spec is not None and spec.on_failure == "delete":
            deleted = yield from delete_version(calls, version_id, VERSION_DELETE_POLLS)
        progress.image_version_state = "deleted" if deleted else "bootTestFailed"
        run.t.publish()
        raise StepFailed(
            ErrorInfo.boot_test_failed(
                version_id,
                [(b.region, b.code or "BootTestFailed", b.message or b.detail or "") for b in failed],
                deleted=deleted,
            )
        )
    wanted = run.req.exclude_from_latest
    verdict = yield from poll(
        run.context,
        lambda: calls.run(
            SET_VERSION_LATEST, VersionLatestInput(version_id=version_id, exclude_from_latest=wanted)
        ),
        lambda done: not done.changed,
        lambda polls, _: poll_delay(run.inp.policy, polls),
        max_polls=PROMOTE_POLLS,
        watch=run.watch,
    )
    if not isinstance(verdict, Done):
        raise StepFailed(
            ErrorInfo.timed_out(
                "promote",
                "PromotionTimedOut",
                f"image version {version_id} was still updating {PROMOTE_POLLS} status checks after its "
                f"excludeFromLatest was set to {str(wanted).lower()}",
                resource=version_id,
                advice="Check the version in the portal and set excludeFromLatest yourself; it passed its boot "
                "tests.",
            )
        )
    return f"excludeFromLatest {str(wanted).lower()}: every boot test passed"
