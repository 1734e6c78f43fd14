"""Terminate is followed by cleanup: an operator terminates a capture mid-export (Durable management API),
the janitor (run on demand through the admin endpoint, grace period 0) removes what it left and nothing else.

Stack: azsim + Azurite + devhost running the real function_app.py (tests/support/stack.py). The
export copies of the two captures stall, so both hold snapshots with an active SAS when the operator acts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.http import http, wait_for
from tests.support.leaks import secrets_in
from tests.support.stack import Stack, running_trigger_stack
from tests.support.worlds import JANITOR_FAULTS

pytestmark = pytest.mark.e2e

ENV = {"JANITOR_GRACE_SECONDS": "0"}  # JANITOR_SCOPES unset: the subscriptions of recent captures


@pytest.fixture(scope="module")
def jstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_trigger_stack(tmp_path_factory.mktemp("janitor"), faults=JANITOR_FAULTS, env=ENV) as s:
        yield s


def _start_copying(s: Stack, vm: str) -> dict[str, Any]:
    body = s.queue_request(
        vm, vhdExport={"accountUrl": s.cloud.storage_account_url("stexports"), "container": "vhds"}
    )
    code, answer, _ = http("POST", s.devhost.url("/api/captures"), body)
    assert code == 202, answer
    copying = s.wait(
        answer["id"],
        until=lambda st: bool(st["disks"]) and all(d.get("copyState") == "pending" for d in st["disks"]),
        timeout=120,
    )
    assert copying["runtimeStatus"] == "Running", copying  # the wait also returns when the capture ends
    return copying


def _snapshots(s: Stack) -> dict[str, dict[str, str]]:
    return {
        x.id.lower(): dict(x.tags or {}) for x in s.compute().snapshots.list_by_resource_group("rg-build")
    }


def _active(s: Stack) -> set[str]:
    return {d["id"].lower() for d in s.sim("state")["disks"] if d.get("activeAccess")}


def _terminate(s: Stack, instance_id: str) -> None:
    url = s.devhost.url(f"/runtime/webhooks/durabletask/instances/{instance_id}/terminate?reason=operator")
    code, body, _ = http("POST", url)
    assert code in (202, 410), (code, body)  # 410: it had already ended


def _run_janitor(s: Stack) -> dict[str, Any]:
    before = s.devhost.log_text().count("janitor summary: ")
    code, body, _ = http("POST", s.devhost.url("/admin/functions/janitor"), {"input": ""})
    assert code == 202, body

    def summary() -> Any:
        lines = [x for x in s.devhost.log_text().splitlines() if "janitor summary: " in x]
        return lines[before] if len(lines) > before else None

    line = wait_for("the janitor's summary", summary, timeout=60)
    return dict(json.loads(line.split("janitor summary: ", 1)[1]))


def _make_failed_version(s: Stack, run_tags: dict[str, str], source_snapshot: str) -> str:
    compute = s.compute()
    body = {
        "location": "westeurope",
        "tags": run_tags,
        "properties": {
            "publishingProfile": {"targetRegions": [{"name": "westeurope"}]},
            "storageProfile": {"osDiskImage": {"source": {"id": source_snapshot}}},
        },
    }
    version = compute.gallery_image_versions.begin_create_or_update(
        "rg-images", "galContoso", "vm-cancel-def", "9.9.9", body
    )
    try:
        version.result()
    except Exception:  # the injected replication failure ends the LRO Failed: that is the point
        pass
    got = compute.gallery_image_versions.get("rg-images", "galContoso", "vm-cancel-def", "9.9.9")
    assert got.provisioning_state == "Failed", got.provisioning_state
    return str(got.id)


def test_terminate_then_janitor_cleans_only_the_orphans(jstack: Stack) -> None:
    s = jstack
    victim = _start_copying(s, "vm-cancel")  # the capture the operator terminates
    other = _start_copying(s, "vm-notice")  # still running: its snapshots belong to it
    victim_snaps = {d["snapshotId"].lower() for d in victim["disks"]}
    other_snaps = {d["snapshotId"].lower() for d in other["disks"]}
    assert len(victim_snaps) == 2 and victim_snaps <= _active(s) and other_snaps <= _active(s)

    # an untagged snapshot (not the pipeline's) of another VM's disk
    compute = s.compute()
    disk = f"/subscriptions/{s.cloud.subscription_id}/resourceGroups/rg-build/providers/Microsoft.Compute/disks/vm-plain_OsDisk"
    untagged = compute.snapshots.begin_create_or_update(
        "rg-build",
        "manual-backup",
        {
            "location": "westeurope",
            "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk}},
        },
    ).result()
    run_tags = _snapshots(s)[sorted(victim_snaps)[0]]
    run_id = run_tags["image-pipeline:run-id"]
    os_snap = next(x for x in victim_snaps if x.endswith("-os"))
    failed_version = _make_failed_version(
        s, {k: v for k, v in run_tags.items() if k != "image-pipeline:disk"}, os_snap
    )

    # while the run's export sub-orchestrations still run, the janitor keeps everything of that run
    _terminate(s, victim["id"])
    assert s.wait(victim["id"], timeout=30)["runtimeStatus"] == "Terminated"
    first = _run_janitor(s)
    assert not [a for a in first["actions"] if a["runId"] == run_id], first
    assert victim_snaps <= set(_snapshots(s))

    # the operator stops the rest of the run too: now it is orphaned, with snapshots still exposed
    for key in ("os", "lun0"):
        _terminate(s, f"{run_id}:export:{key}")
    _terminate(s, f"{run_id}:version")
    assert victim_snaps <= set(_snapshots(s)) and victim_snaps <= _active(s)

    report = _run_janitor(s)
    acted = {(a["action"], a["resourceId"].lower()) for a in report["actions"] if a["done"]}
    for snap in victim_snaps:
        assert ("revokeAccess", snap) in acted and ("deleteSnapshot", snap) in acted, report
    assert ("deleteVersion", failed_version.lower()) in acted, report
    assert report["kept"].get("run still active", 0) >= 2, report  # the other capture's two snapshots
    assert report["dryRun"] is False and report["errors"] == [], report
    # the default scope: the subscription of the recent captures, through its subscription-wide lists
    assert f"/subscriptions/{s.cloud.subscription_id}" in report["scanned"], report["scanned"]

    # Azure's side: nothing of the terminated run left exposed or stored, the rest untouched
    wait_for("the run's snapshots to be deleted", lambda: not (victim_snaps & set(_snapshots(s))), timeout=30)
    assert not (victim_snaps & _active(s))
    remaining = _snapshots(s)
    assert other_snaps <= set(remaining) and other_snaps <= _active(s)
    assert untagged.id.lower() in remaining
    versions = compute.gallery_image_versions.list_by_gallery_image(
        "rg-images", "galContoso", "vm-cancel-def"
    )
    assert not [v for v in versions if v.provisioning_state == "Failed"]
    assert other["runtimeStatus"] == "Running"
    _, still = s.status(other["id"])
    assert still["runtimeStatus"] == "Running"

    # no secret in the janitor's logs or reports (nor anywhere else in devhost's store)
    leaks = secrets_in(s.devhost.workdir, [json.dumps(first), json.dumps(report)])
    assert not leaks, leaks
