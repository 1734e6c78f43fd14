"""A capture by clone and a boot test that died leave VMs, NICs and disks in the build group: one janitor
run (on demand through the admin endpoint) deletes them — the VMs, whose delete takes their NICs and
disks along, and the NIC and disk left alone — and keeps a NIC of a run still active and one younger than
the grace period; with JANITOR_DRY_RUN the same orphans are only reported.

Stack: azsim + Azurite + devhost running the real function_app.py (tests/support/stack.py). The
resources are made by the test as an operator through the real SDKs (tests/support/janitor_machines.py),
tagged as the app tags them. The active run is a capture whose export copy stalls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.mgmt.network import NetworkManagementClient

from shared.ids import capture_instance_id, new_run_id, ownership_tags, vm_id
from tests.support.http import http, wait_for
from tests.support.janitor_machines import CLONE_SUBNET, existing, make_nic, orphans
from tests.support.leaks import secrets_in
from tests.support.stack import Stack, running_trigger_stack
from tests.support.worlds import JANITOR_FAULTS, WORLD

pytestmark = pytest.mark.e2e

GRACE = 20.0  # seconds: what the test makes before its pause is older, the NIC made after it is not
ENV = {"JANITOR_GRACE_SECONDS": str(GRACE)}  # JANITOR_SCOPES unset: the subscriptions of recent captures


@pytest.fixture(scope="module")
def jstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_trigger_stack(tmp_path_factory.mktemp("janitor-vms"), faults=JANITOR_FAULTS, env=ENV) as s:
        yield s


def _active_run(s: Stack) -> str:
    """Start a capture whose export copy stalls; its run id, from its snapshots' tags."""
    body = s.queue_request(
        "vm-notice", vhdExport={"accountUrl": s.cloud.storage_account_url("stexports"), "container": "vhds"}
    )
    code, answer, _ = http("POST", s.devhost.url("/api/captures"), body)
    assert code == 202, answer
    copying = s.wait(
        answer["id"],
        until=lambda st: bool(st["disks"]) and all(d.get("copyState") == "pending" for d in st["disks"]),
        timeout=120,
    )
    assert copying["runtimeStatus"] == "Running", copying
    snap = copying["disks"][0]["snapshotId"].rsplit("/", 1)[1]
    return str(s.compute().snapshots.get("rg-build", snap).tags["image-pipeline:run-id"])


def _run_janitor(s: Stack) -> dict[str, Any]:
    before = s.devhost.log_text().count("janitor summary: ")
    code, body, _ = http("POST", s.devhost.url("/admin/functions/janitor"), {"input": ""})
    assert code == 202, body

    def summary() -> Any:
        lines = [x for x in s.devhost.log_text().splitlines() if "janitor summary: " in x]
        return lines[before] if len(lines) > before else None

    line = wait_for("the janitor's summary", summary, timeout=60)
    return dict(json.loads(line.split("janitor summary: ", 1)[1]))


def test_janitor_deletes_the_orphaned_clone_and_boot_test(jstack: Stack) -> None:
    s = jstack
    sub = s.cloud.subscription_id
    compute, network = s.compute(), s.cloud.arm_client(NetworkManagementClient)
    active = _active_run(s)
    gone_capture = capture_instance_id(vm_id(sub, "rg-build", "vm-gone"))
    orphan_run = new_run_id(gone_capture, datetime.now(UTC) - timedelta(hours=1))  # its capture is gone
    made = orphans(compute, network, sub, orphan_run, "old")
    active_nic = make_nic(network, sub, "act-nic", CLONE_SUBNET, ownership_tags(active))
    time.sleep(GRACE + 1)
    young_run = new_run_id(capture_instance_id(vm_id(sub, "rg-build", "vm-young")), datetime.now(UTC))
    young_nic = make_nic(network, sub, "young-nic", CLONE_SUBNET, ownership_tags(young_run))

    report = _run_janitor(s)
    acted = {(a["action"], a["resourceId"].lower()) for a in report["actions"] if a["done"]}
    ids = {k: v.lower() for k, v in made.items()}
    assert {
        ("deleteVm", ids["cloneVm"]),
        ("deleteVm", ids["testVm"]),
        ("deleteNic", ids["loneNic"]),
        ("deleteDisk", ids["loneDisk"]),
    } <= acted, report
    assert report["dryRun"] is False and report["errors"] == [], report
    # the clone's NIC and disk and the test VM's NIC were attached: their VM's delete takes them along
    assert report["kept"].get("still attached to a VM") == 3, report
    assert report["kept"].get("younger than the grace period", 0) >= 1, report
    assert report["kept"].get("run still active", 0) >= 1, report  # the NIC (and snapshots) of the capture
    touched = {a["resourceId"].lower() for a in report["actions"]}
    assert not touched & {active_nic.lower(), young_nic.lower()}, report

    everything = set(ids.values())  # with the boot-test VM's untagged OS disk (deleteOption Delete)
    wait_for("the orphans to go", lambda: not (everything & existing(compute, network)) or None, timeout=60)
    left = existing(compute, network)
    assert active_nic.lower() in left and young_nic.lower() in left

    # no secret in the janitor's logs or report (nor anywhere else in devhost's store)
    leaks = secrets_in(s.devhost.workdir, [json.dumps(report)])
    assert not leaks, leaks


@pytest.fixture(scope="module")
def dry_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    sub = json.loads(WORLD.read_text())["subscriptions"][0]["id"]  # the tagged world's subscription too
    env = {"JANITOR_GRACE_SECONDS": "0", "JANITOR_DRY_RUN": "true", "JANITOR_SCOPES": f"/subscriptions/{sub}"}
    workdir = tmp_path_factory.mktemp("janitor-vms-dry")
    with running_trigger_stack(workdir, faults=JANITOR_FAULTS, env=env) as s:
        yield s


def test_dry_run_changes_nothing(dry_stack: Stack) -> None:
    s = dry_stack
    sub = s.cloud.subscription_id
    compute, network = s.compute(), s.cloud.arm_client(NetworkManagementClient)
    run = new_run_id(
        capture_instance_id(vm_id(sub, "rg-build", "vm-gone")), datetime.now(UTC) - timedelta(hours=1)
    )
    made = orphans(compute, network, sub, run, "dry")
    before = existing(compute, network)
    report = _run_janitor(s)
    assert report["dryRun"] is True and report["errors"] == [], report
    mine = [a for a in report["actions"] if a["runId"] == run]
    assert {a["action"] for a in mine} == {"deleteVm", "deleteNic", "deleteDisk"}, report
    assert all(not a["done"] and a["detail"].startswith("dry run: would have") for a in mine), report
    time.sleep(2)
    assert existing(compute, network) == before and {v.lower() for v in made.values()} <= before
    leaks = secrets_in(s.devhost.workdir, [json.dumps(report)])
    assert not leaks, leaks
