"""A VHD copy whose source SAS expires is restarted with a longer access (devhost virtual clock, fake activities)."""

from __future__ import annotations

import itertools
from typing import Any

from orchestrators.timing import MAX_COPY_RESTARTS


def _export_instance(run: Any, status: dict[str, Any], disk: str) -> dict[str, Any]:
    run_id = status.get("runId") or status["id"]  # per-run sub-orchestration ids, once captures have them
    return dict(run.instance(f"{run_id}:export:{disk}"))


def _order(run: Any, names: set[str]) -> list[tuple[str, Any]]:
    return [(c["name"], c["payload"]) for c in run.call_log() if c["name"] in names]


def test_copy_whose_sas_expired_is_restarted_with_longer_access_and_completes(run_with: Any) -> None:
    run = run_with({"dataDisks": 0, "copyStepBytes": 1024**3, "copyExpire": 1})
    status = run.capture()
    assert status["runtimeStatus"] == "Completed", status.get("error")
    steps = _order(run, {"start_export", "revoke_snapshot_access"})
    # grant + copy, (SAS expires) revoke, grant for longer + new copy, (copy done) revoke.
    assert [n for n, _ in steps] == [
        "start_export",
        "revoke_snapshot_access",
        "start_export",
        "revoke_snapshot_access",
    ]
    first, second = steps[0][1]["sasDurationSeconds"], steps[2][1]["sasDurationSeconds"]
    assert second >= 2 * first
    export = _export_instance(run, status, "os")
    assert export["customStatus"]["restarts"] == 1
    assert export["customStatus"]["state"] == "succeeded" and export["customStatus"]["accessRevoked"] is True
    disk = status["disks"][0]
    assert disk["copyState"] == "success" and disk["accessRevoked"] is True


def test_copy_whose_sas_keeps_expiring_fails_after_the_restart_budget_with_advice(run_with: Any) -> None:
    run = run_with({"dataDisks": 0, "copyStepBytes": 1024**3, "copyExpire": 100})
    status = run.capture()
    assert status["runtimeStatus"] == "Failed"
    err = status["error"]
    assert (err["step"], err["code"]) == ("export", "VhdExportSourceExpired")
    assert "expired before the copy finished" in err["message"]
    assert f"{MAX_COPY_RESTARTS} restart(s)" in err["message"]
    assert "CAPTURE_EXPECTED_COPY_MBPS" in err["advice"] and "CAPTURE_SAS_MARGIN_SECONDS" in err["advice"]
    assert "Check the export account" not in err["advice"]  # the old, misleading advice
    calls = run.calls()
    assert calls["start_export"] == 1 + MAX_COPY_RESTARTS
    assert calls["revoke_snapshot_access"] == 1 + MAX_COPY_RESTARTS  # one per restart, one at the end
    durations = [p["sasDurationSeconds"] for n, p in _order(run, {"start_export"})]
    assert all(b >= 2 * a for a, b in itertools.pairwise(durations))
    assert _export_instance(run, status, "os")["customStatus"]["restarts"] == MAX_COPY_RESTARTS
    assert status["disks"][0]["accessRevoked"] is True


def test_a_copy_that_fails_for_another_reason_is_not_restarted(run_with: Any) -> None:
    run = run_with({"dataDisks": 0, "copyStepBytes": 1024**3, "copyFail": True})
    status = run.capture()
    assert status["runtimeStatus"] == "Failed"
    assert status["error"]["code"] == "VhdExportFailed"
    assert run.calls()["start_export"] == 1
