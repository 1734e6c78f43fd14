"""Boot tests and promotion end to end (devhost + azsim + Azurite on one virtual clock, real SDKs).

A capture with ``verify.bootTest`` publishes its version excluded from latest, boots a test VM from it in
each region (azsim provisions it as the captured guest allows: a guest never deprovisioned fails
``OSProvisioningTimedOut`` after Azure's 40 simulated minutes), runs the smoke script, deletes every test
VM, NIC and disk, and promotes the version only when every region passed. Each test ends with the
secret scan, extended: no admin password or private key in devhost's or azsim's files.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError

from azsim.testing import local_cloud
from devhost.testing import running_devhost
from tests.e2e.least_privilege import least_privilege_world, load_actions
from tests.support.leaks import secrets_in_named
from tests.support.policy import FAST_POLICY
from tests.support.stack import Stack, running_stack
from tests.support.worlds import REPO_ROOT, WORLD

pytestmark = pytest.mark.e2e

REGIONS = [{"name": "westeurope"}, {"name": "eastus2"}, {"name": "northeurope"}]
SUBNETS = (
    "/subscriptions/{subscription}/resourceGroups/rg-image-build/providers/Microsoft.Network/"
    "virtualNetworks/vnet-boottest-{region}/subnets/snet-boot-tests"
)
# Virtual time: polls may be as far apart as in Azure (they cost no wall time), so a 40-minute
# provisioning timeout is a few dozen polls, not thousands.
VIRTUAL_POLICY = {
    **FAST_POLICY,
    "CAPTURE_POLL_MIN_SECONDS": "15",
    "CAPTURE_POLL_MAX_SECONDS": "120",
    "CAPTURE_GUEST_STOP_TIMEOUT_SECONDS": "3600",
    "CAPTURE_POWER_STATE_TIMEOUT_SECONDS": "1800",
    "CAPTURE_SNAPSHOT_TIMEOUT_SECONDS": "7200",
    "CAPTURE_REPLICATION_TIMEOUT_SECONDS": "86400",
    "CAPTURE_TRANSIENT_RETRY_FIRST_SECONDS": "30",
    "BOOT_TEST_SUBNET_TEMPLATE": SUBNETS,
    "BOOT_TEST_VM_SIZE": "Standard_D2s_v5",
}
BOOT_ROLE = "Image Pipeline Boot Tests"
# Words that would only appear next to a test VM's credential.
CREDENTIAL_MARKERS = ("adminPassword", "PRIVATE KEY", "admin_password")


def _files(root: Path) -> list[str]:
    """The files' texts, but azsim's own TLS keys (certs/) and devhost's function keys (keys.json)."""
    return [
        p.read_bytes().decode("latin-1")
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.parent.name != "certs" and p.name != "keys.json"
    ]


@pytest.fixture
def vstack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """A stack on one simulated clock (azsim owns it); after the test, the secret scan, extended."""
    stacks: list[Stack] = []
    with contextlib.ExitStack() as exits:

        def start(env: dict[str, str] | None = None) -> Stack:
            wd = tmp_path / f"stack{len(stacks)}"
            cloud = exits.enter_context(
                local_cloud(wd / "azsim", world=WORLD, time_scale=1.0, virtual_clock=True)
            )
            dh = exits.enter_context(
                running_devhost(
                    REPO_ROOT,
                    wd / "devhost",
                    env={**dict(cloud), **VIRTUAL_POLICY, **(env or {})},
                    clock_url=cloud.clock_url,
                )
            )
            exits.enter_context(cloud.apply())
            stack = Stack(cloud=cloud, devhost=dh, workdir=wd)
            stacks.append(stack)
            return stack

        yield start
        for s in stacks:
            s.assert_no_secrets()
            named = {"devhost files": _files(s.devhost.workdir), "azsim files": _files(s.workdir / "azsim")}
            named["statuses"] = s.seen
            leaks = [
                name
                for name, texts in named.items()
                if any(m in t for t in texts for m in CREDENTIAL_MARKERS)
            ]
            assert not leaks and not secrets_in_named(named), f"a test VM credential leaked into: {leaks}"


def _request(stack: Stack, vm: str, verify: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return stack.request(vm, export=False, targetRegions=REGIONS, verify=verify, **overrides)


def _version(stack: Stack, definition: str) -> Any:
    return stack.compute().gallery_image_versions.get("rg-images", "galContoso", definition, "1.0.0")


def _test_resources(stack: Stack) -> list[str]:
    """Every test VM, NIC and disk in azsim (their names start with imgtest-)."""
    state = stack.sim("state")
    ids = [x["id"] for key in ("virtualMachines", "disks", "networkInterfaces") for x in state[key]]
    return [i for i in ids if i.rsplit("/", 1)[-1].startswith("imgtest-")]


def _vm_puts(stack: Stack) -> list[str]:
    return [
        r["path"].rsplit("/", 1)[-1]
        for r in stack.sim("requests")["value"]
        if r["method"] == "PUT" and "/virtualMachines/imgtest-" in r["path"]
    ]


def test_boot_tests_in_three_regions_pass_and_the_version_is_promoted(vstack: Callable[..., Stack]) -> None:
    stack = vstack()
    status = stack.run(_request(stack, "vm-web", {"bootTest": True, "smokeScript": "echo smoke ok\nexit 0"}))
    assert status["runtimeStatus"] == "Completed", status.get("error")
    stages = {s["name"]: s["state"] for s in status["stages"]}
    assert stages["verify"] == stages["promote"] == "succeeded", stages
    verdicts = {b["region"]: (b["state"], b["cleaned"], b.get("exitCode")) for b in status["bootTests"]}
    assert verdicts == {r["name"]: ("passed", True, 0) for r in REGIONS}, status["bootTests"]
    # Published excluded from latest, promoted at the end; three test VMs, all gone again.
    assert _version(stack, "vm-web-def").publishing_profile.exclude_from_latest is False
    assert len(_vm_puts(stack)) == 3
    patches = [
        r for r in stack.sim("requests")["value"] if r["method"] == "PATCH" and "/versions/" in r["path"]
    ]
    assert len(patches) == 1
    assert _test_resources(stack) == []


def test_a_guest_never_deprovisioned_fails_osprovisioningtimedout_and_is_not_promoted(
    vstack: Callable[..., Stack],
) -> None:
    stack = vstack()
    # prepare "none" on a guest nobody deprovisioned: the version replicates, then never boots.
    status = stack.run(_request(stack, "vm-web-2", {"bootTest": True}, prepare="none"))
    assert status["runtimeStatus"] == "Failed"
    error = status["error"]
    assert (error["code"], error["azureCode"], error["step"]) == (
        "BootTestFailed",
        "OSProvisioningTimedOut",
        "verify",
    ), error
    for region in ("westeurope", "eastus2", "northeurope"):
        assert f"{region}: OSProvisioningTimedOut" in error["message"], error["message"]
    assert "did not finish in the allotted time" in error["message"]
    assert "deprovision" in error["advice"] and "waagent" in error["advice"]
    assert {(b["state"], b["code"], b["cleaned"]) for b in status["bootTests"]} == {
        ("failed", "OSProvisioningTimedOut", True)
    }
    assert status["imageVersionState"] == "bootTestFailed"
    # Kept, but excluded from latest: a VM created from "latest" never gets it.
    assert _version(stack, "vm-web-2-def").publishing_profile.exclude_from_latest is True
    assert _test_resources(stack) == []

    # The same with onFailure "delete": the version is removed.
    status = stack.run(_request(stack, "vm-web-3", {"bootTest": True, "onFailure": "delete"}, prepare="none"))
    assert status["runtimeStatus"] == "Failed" and status["error"]["azureCode"] == "OSProvisioningTimedOut"
    assert status["imageVersionState"] == "deleted"
    assert "was deleted" in status["error"]["message"]
    with pytest.raises(ResourceNotFoundError):
        _version(stack, "vm-web-3-def")
    assert _test_resources(stack) == []


def test_a_smoke_script_that_exits_non_zero_fails_its_region(vstack: Callable[..., Stack]) -> None:
    stack = vstack()
    verify = {"bootTest": True, "regions": ["eastus2"], "smokeScript": "echo checking nginx\nexit 3"}
    status = stack.run(_request(stack, "vm-web-3", verify))
    assert status["runtimeStatus"] == "Failed"
    (test,) = status["bootTests"]
    assert (test["region"], test["state"], test["code"], test["exitCode"]) == (
        "eastus2",
        "failed",
        "SmokeTestFailed",
        3,
    ), test
    assert "checking nginx" in test["message"]
    assert status["error"]["azureCode"] == "SmokeTestFailed"
    assert _version(stack, "vm-web-3-def").publishing_profile.exclude_from_latest is True
    assert _vm_puts(stack) == [test["vmId"].rsplit("/", 1)[-1]]  # only the region asked for
    assert _test_resources(stack) == []


def test_cancel_during_a_boot_test_deletes_the_test_vms(vstack: Callable[..., Stack]) -> None:
    stack = vstack()
    # A smoke script that runs for an hour: the cancel comes while the test VMs exist.
    verify = {"bootTest": True, "smokeScript": "sleep 3600\necho done"}
    code, answer, _ = stack.post(_request(stack, "vm-web", verify))
    assert code == 202, answer
    cid = answer["id"]

    def smoking(st: dict[str, Any]) -> bool:
        return any(b.get("detail") == "smoke script running" for b in st.get("bootTests", []))

    stack.wait(cid, until=smoking)
    with stack.cloud.hold("cancel while the smoke script runs"):
        assert _test_resources(stack), "the test VMs should exist while their smoke script runs"
        assert stack.cancel(cid, {"reason": "boot test canceled by the test"})[0] == 202
    status = stack.wait(cid)
    assert status["runtimeStatus"] == "Canceled", status.get("error")
    assert any("boot test VM(s) deleted" in c for c in status["cleaned"]), status["cleaned"]
    assert {b["state"] for b in status["bootTests"]} == {"canceled"}
    assert all(b["cleaned"] for b in status["bootTests"])
    assert _test_resources(stack) == []


def test_preflight_refuses_a_boot_test_it_could_not_run_before_anything_changes(tmp_path: Path) -> None:
    """Without the role "Image Pipeline Boot Tests" at the build group, or with a boot-test region that is
    not a target region, preflight fails after reads only (the VM still runs, untouched)."""
    # No role at the build group at all: the clone's role there holds the boot tests' actions too.
    roles = [r for r in load_actions()["roles"] if r["scope"] != "buildGroup"]
    world = least_privilege_world(tmp_path / "world.json", roles=roles)
    with running_stack(tmp_path, world=world, env={"BOOT_TEST_SUBNET_TEMPLATE": SUBNETS}) as stack:
        body = _request(stack, "vm-web", {"bootTest": True}, captureMode="specialized")
        del body["prepare"]
        status = stack.run(body)
        assert status["runtimeStatus"] == "Failed"
        err = status["error"]
        assert (err["step"], err["code"]) == ("preflight", "MissingPermissions"), err
        assert (
            "/resourceGroups/rg-image-build: " in err["message"] and f'role "{BOOT_ROLE}"' in err["message"]
        )
        assert "Microsoft.Compute/virtualMachines/runCommand/action" in err["message"]

        body["verify"] = {"bootTest": True, "regions": ["eastus"]}
        status = stack.run(body)
        err = status["error"]
        assert (err["step"], err["code"]) == ("preflight", "PreflightFailed"), err
        assert "verify.regions eastus are not target regions" in err["message"]
        writes = [r for r in stack.sim("requests")["value"] if r["method"] not in ("GET", "HEAD")]
        assert writes == [], writes
        assert stack.vm_state("vm-web")["powerState"] == "running"
        stack.assert_no_secrets()


def test_a_trusted_launch_windows_version_boots_with_a_generated_password_found_nowhere(
    vstack: Callable[..., Stack],
) -> None:
    stack = vstack()
    verify = {"bootTest": True, "regions": ["westeurope"], "smokeScript": 'Write-Output "smoke ok"'}
    status = stack.run(_request(stack, "vm-win", verify), timeout=240)
    assert status["runtimeStatus"] == "Completed", status.get("error")
    (test,) = status["bootTests"]
    assert (test["state"], test["cleaned"]) == ("passed", True), test
    # The test VM was created with its data disks from the image and Trusted Launch, then deleted with them.
    assert _vm_puts(stack) == [test["vmId"].rsplit("/", 1)[-1]]
    assert _test_resources(stack) == []
    assert _version(stack, "vm-win-def").publishing_profile.exclude_from_latest is False
    # The password itself was made and dropped inside start_boot_test: the fixture's scan finds no
    # adminPassword field in devhost's history, logs or statuses, nor in azsim's files.
