"""A capture on one simulated clock (azsim --virtual-clock + devhost --clock-url) is deterministic.

S1 (3 disks exported, 3 target regions, 7+ simulated hours) runs twice, each in a fresh local cloud
and devhost: both reach Completed in seconds of wall time with identical simulated stage timings and
makespan, because virtual time only moves when nothing is runnable anywhere.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bench.critical_path import critical_path, disks_of
from bench.profile import azure_profile, bench_profile
from bench.scenarios import REGIONS, _capture_figures, _vm, running_stack
from bench.world import BENCH_WORLD, S1_VM

pytestmark = pytest.mark.e2e


def _capture_once(workdir: Path) -> tuple[dict[str, Any], float]:
    vm = _vm(BENCH_WORLD, S1_VM)
    profile = bench_profile(azure_profile(), vm)
    cp = critical_path(profile, disks_of(vm), regions=len(REGIONS))
    with running_stack(workdir, BENCH_WORLD, profile, 1.0, log=lambda _m: None, virtual=True) as stack:
        t0 = time.monotonic()
        cid, sent = stack.submit(S1_VM)
        rows = stack.wait([cid], timeout=120)
        wall = time.monotonic() - t0
        return _capture_figures(stack, cid, sent, rows[cid], cp), wall


def test_s1_in_virtual_time_twice_gives_identical_simulated_timings(tmp_path: Path) -> None:
    first, wall1 = _capture_once(tmp_path / "run1")
    second, wall2 = _capture_once(tmp_path / "run2")
    for run in (first, second):
        assert run["runtimeStatus"] == "Completed", run.get("error")
        assert run["clock"] == "virtual"
    assert first["makespanAzureS"] > 7 * 3600  # the simulated day's work really happened
    assert max(wall1, wall2) < 60  # ... in seconds of wall time
    assert first["stageTimingsAzureS"] == second["stageTimingsAzureS"]
    assert first["makespanAzureS"] == second["makespanAzureS"]
    assert {"deallocate", "snapshot", "publish", "export"} <= set(first["stageTimingsAzureS"])
