"""The orchestrators through devhost (real Durable SDK, real replay) with scripted fake activities.

devhost's virtual clock jumps to the next durable timer when nothing else is running, so these
tests use the *production* timing policy — polls every 15-300 s, 30-minute stall window, 72-hour
replication timeout — and a day-long VHD copy finishes in seconds of real time.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devhost.testing import running_devhost

APP = Path(__file__).resolve().parent / "fakeapp"
VM = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/vm-fake"
REQUEST = {
    "sourceVmId": VM,
    "gallery": {"resourceGroup": "rg-images", "name": "galContoso"},
    "imageDefinition": {"name": "fake", "publisher": "contoso", "offer": "fake", "sku": "s"},
    "version": "1.0.0",
    "targetRegions": [{"name": "eastus2"}, {"name": "northeurope"}],
    "prepare": "deprovision",
    "vhdExport": {"accountUrl": "https://stexports.blob.core.windows.net", "container": "vhds"},
}
TERMINAL = {"Completed", "Failed", "Terminated", "Canceled"}
# What a capture may call that is an ARM request (copy status polls go to the storage data plane).
ARM_ACTIVITIES = {
    "get_vm_facts", "check_gallery", "start_guest_prepare", "get_power_state", "start_deallocate",
    "generalize_vm", "start_snapshot", "get_snapshot", "ensure_definition", "start_image_version",
    "get_version_status", "revoke_snapshot_access", "delete_snapshot", "start_export", "list_regions",
}  # fmt: skip
# What a capture failing in preflight may call: reads only (check_export_target's probe blob is the export
# account's own check), then the completion notice.
READ_ONLY = {"get_vm_facts", "check_gallery", "list_regions", "check_export_target", "publish_notice"}


def _http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


class Run:
    def __init__(self, tmp: Path, scenario: dict[str, Any]) -> None:
        self.calls_path = tmp / "calls.jsonl"
        self.env = {"FAKE_SCENARIO": json.dumps(scenario), "FAKE_CALLS": str(self.calls_path)}
        self.tmp = tmp
        self.base = ""

    def call_log(self) -> list[dict[str, Any]]:
        lines = self.calls_path.read_text().splitlines() if self.calls_path.exists() else []
        return [json.loads(line) for line in lines]

    def calls(self) -> Counter[str]:
        return Counter(c["name"] for c in self.call_log())

    def capture(self, request: dict[str, Any] | None = None, timeout: float = 120.0) -> dict[str, Any]:
        code, answer = _http("POST", f"{self.base}/api/captures", request or REQUEST)
        assert code == 202, answer
        return self.wait(answer["id"], timeout)

    def wait(self, capture_id: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: Any = None
        while time.monotonic() < deadline:
            code, status = _http("GET", f"{self.base}/api/captures/{capture_id}")
            assert code == 200, status
            if status["runtimeStatus"] in TERMINAL:
                return dict(status)
            time.sleep(0.2)
        raise AssertionError(f"not finished in {timeout}s: {json.dumps(status)[:3000]}")

    def instance(self, instance_id: str) -> dict[str, Any]:
        code, body = _http(
            "GET", f"{self.base}/runtime/webhooks/durabletask/instances/{instance_id}?showHistory=true"
        )
        assert code in (200, 202), body
        return dict(body)


@pytest.fixture
def run_with(tmp_path: Path) -> Iterator[Any]:
    stack: list[Any] = []

    def start(scenario: dict[str, Any]) -> Run:
        run = Run(tmp_path, scenario)
        cm = running_devhost(APP, tmp_path / "devhost", env=run.env, virtual_clock=True)
        dh = cm.__enter__()
        stack.append(cm)
        run.base = dh.base_url
        return run

    try:
        yield start
    finally:
        for cm in stack:
            cm.__exit__(None, None, None)


def test_day_long_copy_finishes_with_bounded_history_and_few_requests(run_with: Any) -> None:
    gb = 5 * 1024  # 5 TiB: about 24 h at the expected 60 MB/s
    run = run_with({"diskGb": gb, "dataDisks": 0, "copyStepBytes": gb * 1024**3 // 300, "regionStep": 10})
    status = run.capture(timeout=240)
    assert status["runtimeStatus"] == "Completed", status.get("error")
    stages = {s["name"]: s for s in status["stages"]}
    assert stages["export"]["seconds"] >= 20 * 3600  # a day of (virtual) copying
    calls = run.calls()
    assert 300 <= calls["get_copy_status"] <= 301  # step rounding: the last poll sees the remainder
    assert sum(calls[n] for n in ARM_ACTIVITIES) <= 100, calls
    assert calls["revoke_snapshot_access"] == 1
    export = run.instance(f"{status['runId']}:export:os")
    assert export["customStatus"]["executions"] >= 300 // 40  # continued as new, carrying state
    assert len(export["historyEvents"]) <= 400
    main = run.instance(status["id"])
    assert len(main["historyEvents"]) <= 400


def test_stalled_copy_is_aborted_and_access_revoked(run_with: Any) -> None:
    run = run_with({"dataDisks": 1, "copyStepBytes": 1024**3, "copyStallAfter": 2})
    status = run.capture()
    assert status["runtimeStatus"] == "Failed"
    err = status["error"]
    assert (err["step"], err["code"]) == ("export", "VhdExportStalled")
    assert "made no progress" in err["message"] and "aborted" in err["message"]
    calls = run.calls()
    assert calls["abort_copy"] == 2 and calls["revoke_snapshot_access"] == 2
    assert calls["delete_snapshot"] == 2  # cleanup still ran after both branches settled
    assert all(d["accessRevoked"] is True for d in status["disks"])


def test_failed_copy_revokes_access_and_names_the_blob(run_with: Any) -> None:
    run = run_with({"dataDisks": 0, "copyStepBytes": 1024**3, "copyFail": True})
    status = run.capture()
    assert status["runtimeStatus"] == "Failed"
    assert status["error"]["code"] == "VhdExportFailed"
    assert "/vhds/cap/os.vhd" in status["error"]["message"] and "unreadable" in status["error"]["message"]
    assert run.calls()["revoke_snapshot_access"] == 1


def test_transient_failures_are_retried_on_durable_timers(run_with: Any) -> None:
    run = run_with(
        {"dataDisks": 0, "transient": {"get_vm_facts": 2, "get_copy_status": 1, "start_snapshot": 1}}
    )
    status = run.capture()
    assert status["runtimeStatus"] == "Completed", status.get("error")
    calls = run.calls()
    assert calls["get_vm_facts"] == 3
    assert calls["start_snapshot"] == 2


def test_transient_failure_that_persists_fails_after_the_attempt_budget(run_with: Any) -> None:
    run = run_with({"dataDisks": 0, "transient": {"get_vm_facts": 100}})
    status = run.capture()
    assert status["runtimeStatus"] == "Failed"
    assert status["error"]["code"] == "ServerBusy" and status["error"]["step"] == "get_vm_facts"
    assert run.calls()["get_vm_facts"] == 6  # 1 + transient_retry_attempts (5)


def test_terminal_failure_fails_at_once_with_azure_code(run_with: Any) -> None:
    run = run_with({"dataDisks": 0, "terminal": {"start_deallocate": "AuthorizationFailed"}})
    status = run.capture()
    assert status["runtimeStatus"] == "Failed"
    err = status["error"]
    assert (err["code"], err["azureCode"]) == ("AuthorizationFailed", "AuthorizationFailed")
    calls = run.calls()
    assert calls["start_deallocate"] == 1 and calls["generalize_vm"] == 0
    assert status["generalized"] is False
    stages = {s["name"]: s["state"] for s in status["stages"]}
    assert stages["deallocate"] == "failed" and stages["generalize"] == "pending"


def test_guest_that_never_stops_times_out_naming_the_guest_step(run_with: Any) -> None:
    run = run_with({"dataDisks": 0, "guestPolls": -1})
    status = run.capture()
    assert status["runtimeStatus"] == "Failed"
    err = status["error"]
    assert (err["step"], err["code"]) == ("prepare", "GuestPreparationTimedOut")
    assert "waagent -deprovision+user" in err["message"]
    calls = run.calls()
    assert calls["start_deallocate"] == 0 and calls["generalize_vm"] == 0
    assert calls["get_power_state"] < 40  # backoff up to 300 s over the 1-hour guest timeout


def test_region_failure_is_reported_with_azure_details(run_with: Any) -> None:
    run = run_with({"dataDisks": 0, "failRegion": "eastus2", "regionStep": 30})
    status = run.capture()
    assert status["runtimeStatus"] == "Failed"
    err = status["error"]
    assert (
        err["code"] == "ReplicationFailed"
        and "eastus2" in err["message"]
        and "AllocationFailed" in err["message"]
    )
    regions = {r["region"]: r["state"] for r in status["regions"]}
    assert regions["eastus2"] == "Failed" and set(regions) == {"eastus2", "northeurope", "westeurope"}
    assert run.calls()["revoke_snapshot_access"] == 1


def test_preflight_problems_fail_before_touching_the_vm(run_with: Any) -> None:
    run = run_with(
        {"problems": ["the image definition fake is Hyper-V V1 but vm-fake is V2: use a V2 definition"]}
    )
    status = run.capture()
    assert status["runtimeStatus"] == "Failed"
    assert status["error"]["step"] == "preflight" and "V1" in status["error"]["message"]
    assert set(run.calls()) <= READ_ONLY


def test_unknown_target_region_fails_preflight_with_one_problem_per_region(run_with: Any) -> None:
    run = run_with({})
    regions = [{"name": "westeuropa"}, {"name": "eastus2"}, {"name": "marsnorth"}]
    status = run.capture({**REQUEST, "targetRegions": regions})
    assert status["runtimeStatus"] == "Failed"
    err = status["error"]
    assert (err["step"], err["code"]) == ("preflight", "PreflightFailed")
    sub = "00000000-0000-0000-0000-000000000001"
    choices = "choose one of: eastus, eastus2, northeurope, uksouth, westeurope, westus2"
    assert (
        f"target region westeuropa is not a region of subscription {sub} (did you mean westeurope?); {choices}"
        in err["message"]
    )
    assert f"target region marsnorth is not a region of subscription {sub}; {choices}" in err["message"]
    assert "eastus2 is not" not in err["message"]
    assert "untouched" in err["advice"]
    calls = run.calls()
    assert set(calls) <= READ_ONLY and calls["list_regions"] == 1
    assert status["generalized"] is False
    stages = {s["name"]: s["state"] for s in status["stages"]}
    assert stages["preflight"] == "failed" and stages["prepare"] == "pending"


def test_existing_gallery_in_another_region_is_replicated_and_waited_for(run_with: Any) -> None:
    # Azure requires the version's own location (the gallery's) among its target regions.
    run = run_with({"dataDisks": 0, "galleryLocation": "UK South"})
    status = run.capture({**REQUEST, "vhdExport": None})
    assert status["runtimeStatus"] == "Completed", status.get("error")
    regions = {r["region"]: r["state"] for r in status["result"]["regions"]}
    assert regions == dict.fromkeys(["eastus2", "northeurope", "westeurope", "uksouth"], "Completed")
    version = next(c for c in run.call_log() if c["name"] == "start_image_version")["payload"]
    assert version["location"] == "uksouth"


def test_gallery_region_unknown_to_the_subscription_fails_preflight(run_with: Any) -> None:
    run = run_with({"galleryLocation": "westus3"})
    status = run.capture()
    assert status["runtimeStatus"] == "Failed"
    assert "the region westus3 of gallery galContoso" in status["error"]["message"]
    assert set(run.calls()) <= READ_ONLY


def test_a_finished_capture_of_a_vm_can_be_sent_again(run_with: Any) -> None:
    # "Fix the request and send it again": the deterministic id is free once the first capture ended.
    run = run_with({"problems": ["the image definition fake does not exist: set createIfMissing"]})
    first = run.capture()
    assert first["runtimeStatus"] == "Failed"
    second = run.capture()
    assert second["id"] == first["id"]
    assert second["runtimeStatus"] in ("Pending", "Running", "Failed")
    deadline = time.monotonic() + 30
    while run.calls()["get_vm_facts"] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run.calls()["get_vm_facts"] == 2  # the second request really ran a new capture


def _notices(run: Run) -> list[dict[str, Any]]:
    return [c["payload"]["notice"] for c in run.call_log() if c["name"] == "publish_notice"]


def _cancel_mid_copy(run_with: Any, **scenario: Any) -> tuple[Run, dict[str, Any]]:
    """Start a capture with a day-long copy, cancel it while it copies, return the final status."""
    gb = 5 * 1024
    run = run_with({"diskGb": gb, "dataDisks": 0, "copyStepBytes": gb * 1024**3 // 300, **scenario})
    code, answer = _http("POST", f"{run.base}/api/captures", REQUEST)
    assert code == 202, answer
    cid = answer["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and run.calls()["get_copy_status"] < 3:
        time.sleep(0.05)
    code, body = _http("POST", f"{run.base}/api/captures/{cid}/cancel", {"reason": "test"})
    assert code == 202, body
    status = run.wait(cid)
    assert status["runtimeStatus"] == "Canceled", status
    assert run.calls()["abort_copy"] == 1 and run.calls()["revoke_snapshot_access"] == 1
    return run, status


def test_cancel_whose_snapshot_cleanup_fails_does_not_claim_the_snapshots_deleted(run_with: Any) -> None:
    run, status = _cancel_mid_copy(run_with, terminal={"delete_snapshot": "AuthorizationFailed"})
    assert any(c.startswith("image version /g/images/d/versions/1.0.0 deleted") for c in status["cleaned"])
    assert any("cleanup incomplete" in c and "AuthorizationFailed" in c for c in status["cleaned"])
    assert run.calls()["delete_snapshot"] == 1 and run.calls()["revoke_snapshot_access"] == 1
    (notice,) = _notices(run)
    assert notice["outcome"] == "canceled"
    snap = "/subscriptions/s/resourceGroups/rg-build/providers/Microsoft.Compute/snapshots/snap-os"
    assert notice.get("snapshotsDeleted", []) == [] and notice["snapshotsKept"] == [snap]


def test_every_capture_ends_with_one_notice(run_with: Any) -> None:
    run = run_with({"dataDisks": 0})
    status = run.capture()
    assert status["runtimeStatus"] == "Completed"
    (notice,) = _notices(run)
    assert notice["outcome"] == "completed" and notice["snapshotsDeleted"] and not notice.get("snapshotsKept")


def test_cancel_keeps_the_snapshots_while_the_deleted_version_still_exists(run_with: Any) -> None:
    # The version is built from the snapshots: they may go only once the version is really gone.
    run, status = _cancel_mid_copy(run_with, versionDeleteStuck=True)
    cleaned = " | ".join(status["cleaned"])
    assert "cleanup incomplete" in cleaned and "still exists" in cleaned, cleaned
    assert "versions/1.0.0 deleted" not in cleaned
    assert run.calls()["delete_snapshot"] == 0
    (notice,) = _notices(run)
    assert not notice.get("snapshotsDeleted") and len(notice["snapshotsKept"]) == 1


def test_after_generalize_transient_failures_outlast_the_attempt_budget(run_with: Any) -> None:
    # 12 transient failures each: beyond transient_retry_attempts (5), within the replication timeout.
    run = run_with({"dataDisks": 0, "transient": {"start_snapshot": 12, "start_image_version": 12}})
    status = run.capture()
    assert status["runtimeStatus"] == "Completed", status.get("error")
    calls = run.calls()
    assert calls["start_snapshot"] == 13 and calls["start_image_version"] == 13
    assert status["generalized"] is True


def test_guest_timeout_after_a_run_command_conflict_says_azures_409_not_only_the_guest(run_with: Any) -> None:
    said = "409 Conflict: Run command extension execution is in progress. Please wait for completion."
    run = run_with({"dataDisks": 0, "guestPolls": -1, "guestConflict": said})
    status = run.capture()
    assert status["runtimeStatus"] == "Failed"
    err = status["error"]
    assert (err["step"], err["code"]) == ("prepare", "GuestPreparationTimedOut")
    assert said in err["message"] and "not the capture's" in err["message"]
    assert run.calls()["generalize_vm"] == 0
