"""One real S1 run in virtual time (local cloud + devhost + the baseline script) through the bench's
own runner: the capture completes, and the result has the figures the table and the README report."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import report
from bench.scenarios import run_s1

pytestmark = pytest.mark.e2e


def test_tiny_s1_run_yields_ratios_requests_history_and_cpu(tmp_path: Path) -> None:
    lines: list[str] = []
    out = run_s1(tmp_path / "s1", with_baseline=True, log=lines.append)
    ours, base = out["ours"], out["baseline"]
    assert ours["runtimeStatus"] == "Completed", ours.get("error")
    assert base["ok"], base["error"]
    cp = ours["criticalPath"]
    # nobody beats the lower bound; the sequential script is well above it (three copies in a row)
    assert ours["ratioToCriticalPath"] >= 1.0
    assert base["ratioToCriticalPath"] > ours["ratioToCriticalPath"]
    assert cp["bound_by"] == "replication" and cp["total_s"] > 7 * 3600
    assert ours["clock"] == base["clock"] == "virtual" and ours["runWallS"] < 60
    for figures in (ours["requests"], base["requests"]):
        assert (
            figures["total"] == figures["reads"] + figures["writes"] + figures["deletes"] + figures["polls"]
        )
        assert figures["writes"] >= 8  # deallocate, generalize, 3 snapshots, 3 grants at least
    # the capture ran as a root instance plus one version and three export sub-orchestrations
    assert len(ours["history"]["perInstance"]) == 5
    assert ours["history"]["maxEventsPerExecution"] > 0
    assert ours["devhostCpuS"] > 0 and out["oursOverBaseline"] < 1
    warm = out["oursWarm"]  # a second capture in the same host
    assert warm["runtimeStatus"] == "Completed" and warm["captureId"] != ours["captureId"]
    assert {"deallocate", "snapshot", "publish", "export"} <= set(ours["stageTimingsAzureS"])
    text = report.summary_table({"scenarios": {"S1": out}})
    assert "ours / baseline makespan" in text
