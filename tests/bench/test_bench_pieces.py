"""The bench harness's pieces without a cloud: critical path, profile, request and history counting,
policy scaling, scale worlds, and the table / JSON / plot outputs."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from azsim.core.latency import LatencyProfile
from azsim.world import load_world
from bench import report
from bench.critical_path import DiskSpec, critical_path, disks_of
from bench.metrics import HistoryProbe, classify_counters, classify_requests, peak_rates, summarize_history
from bench.profile import (
    GIB,
    ProfileError,
    azure_copy_mbps,
    azure_profile,
    bench_profile,
    blob_bytes,
)
from bench.scenarios import policy_env
from bench.world import BENCH_WORLD, S1_BASELINE_VM, S1_VM, scale_vm_names, scale_world
from shared.contracts import CapturePolicy
from shared.settings import Settings


def s1_vm():
    return next(v for v in load_world(BENCH_WORLD).virtual_machines if v.name == S1_VM)


# --- world ------------------------------------------------------------------------------------


def test_bench_world_has_the_s1_and_baseline_vms_with_the_issue_sizes() -> None:
    vms = {v.name: v for v in load_world(BENCH_WORLD).virtual_machines}
    for name in (S1_VM, S1_BASELINE_VM):
        vm = vms[name]
        assert vm.os_type == "Linux"
        assert vm.os_disk.size_gi_b == 128
        assert [d.size_gi_b for d in vm.data_disks] == [256, 256]


def test_scale_world_copies_vm_s1_with_unique_vm_and_disk_names(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text(json.dumps(scale_world(3)))
    world = load_world(path)  # azsim accepts it
    names = [v.name for v in world.virtual_machines]
    assert names == scale_vm_names(3) == ["vm-scale-000", "vm-scale-001", "vm-scale-002"]
    disk_names = [d.name for v in world.virtual_machines for d in [v.os_disk, *v.data_disks]]
    assert len(set(disk_names)) == 9
    with pytest.raises(ValueError, match="at least 1"):
        scale_world(0)


# --- profile ----------------------------------------------------------------------------------


def test_copy_throughput_is_scaled_so_tiny_blobs_copy_as_long_as_their_provisioned_size() -> None:
    vm = s1_vm()
    base = azure_profile()
    prof = bench_profile(base, vm)
    assert azure_copy_mbps(prof, vm) == pytest.approx(base.copy_mb_per_s)
    for disk in [vm.os_disk, *vm.data_disks]:
        azure_seconds = disk.size_gi_b * GIB / (base.copy_mb_per_s * 1_000_000)
        # the 512-byte VHD footer is the only difference
        assert prof.copy_s(blob_bytes(disk.content_mi_b)) == pytest.approx(azure_seconds, rel=1e-3)


def test_long_copy_profile_makes_the_largest_disk_take_the_given_hours() -> None:
    vm = s1_vm()
    prof = bench_profile(azure_profile(), vm, copy_hours=24)
    largest = max([vm.os_disk, *vm.data_disks], key=lambda d: d.size_gi_b)
    assert prof.copy_s(blob_bytes(largest.content_mi_b)) == pytest.approx(24 * 3600, rel=1e-3)


def test_disks_with_different_content_ratios_are_refused_by_name() -> None:
    vm = s1_vm()
    odd = vm.model_copy(update={"os_disk": vm.os_disk.model_copy(update={"content_mi_b": 3})})
    with pytest.raises(ProfileError, match=r"vm-s1.*contentMiB/sizeGiB"):
        bench_profile(azure_profile(), odd)


def test_profile_overrides_need_a_known_field_and_a_source(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"overrides": {"deallocate_s": {"value": 120, "source": "measured"}}}))
    assert azure_profile(good).deallocate_s == 120
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"overrides": {"dealocate_s": {"value": 1, "source": "x"}}}))
    with pytest.raises(ProfileError, match=r"unknown.json: \$.overrides.dealocate_s: unknown latency field"):
        azure_profile(unknown)
    unsourced = tmp_path / "unsourced.json"
    unsourced.write_text(json.dumps({"overrides": {"deallocate_s": {"value": 1}}}))
    with pytest.raises(ProfileError, match=r"\$.overrides.deallocate_s: expected"):
        azure_profile(unsourced)


# --- critical path ----------------------------------------------------------------------------


def test_s1_critical_path_is_deallocate_snapshots_then_replication() -> None:
    p = LatencyProfile()
    prof = bench_profile(p, s1_vm())
    cp = critical_path(prof, disks_of(s1_vm()), regions=3)
    full = p.replication_s(640 * GIB)
    assert cp.snapshots_s == pytest.approx(p.snapshot_s(256))
    assert cp.replication_s == pytest.approx(full * p.source_region_fraction + full)
    assert cp.export_s == pytest.approx(p.grant_access_s + 256 * GIB / (p.copy_mb_per_s * 1e6), rel=1e-3)
    assert cp.bound_by == "replication"
    assert cp.total_s == pytest.approx(p.deallocate_s + cp.snapshots_s + cp.replication_s)
    assert cp.wall(0.001) == pytest.approx(cp.total_s / 1000)


def test_critical_path_follows_the_longer_branch_and_the_region_count() -> None:
    disks = [DiskSpec("os", 128, 10 * GIB), DiskSpec("lun0", 8, GIB)]
    slow_copy = replace(LatencyProfile(), copy_mb_per_s=1.0)
    cp = critical_path(slow_copy, disks, regions=2)
    assert cp.bound_by == "export"
    assert cp.export_s == pytest.approx(slow_copy.grant_access_s + 10 * GIB / 1e6)
    one_region = critical_path(LatencyProfile(), disks, regions=1, export=False)
    assert one_region.export_s == 0
    assert one_region.replication_s == pytest.approx(
        LatencyProfile().replication_s(136 * GIB) * LatencyProfile().source_region_fraction
    )
    with pytest.raises(ValueError):
        critical_path(LatencyProfile(), [], regions=1)


# --- policy -----------------------------------------------------------------------------------


def test_policy_env_scales_every_duration_and_keeps_the_copy_rate_in_azure_units() -> None:
    env = policy_env(0.01)
    settings = Settings.from_env(env)
    default = CapturePolicy()
    assert settings.policy.poll_min_seconds == pytest.approx(default.poll_min_seconds * 0.01)
    assert settings.policy.poll_max_seconds == pytest.approx(default.poll_max_seconds * 0.01)
    assert settings.policy.copy_stall_seconds == pytest.approx(default.copy_stall_seconds * 0.01)
    assert settings.lro_polling_interval_seconds == pytest.approx(
        Settings().lro_polling_interval_seconds * 0.01
    )
    assert settings.policy.expected_copy_mbps == default.expected_copy_mbps
    assert Settings.from_env(policy_env(0.01, 3.2)).policy.expected_copy_mbps == pytest.approx(3.2)


# --- requests and history ---------------------------------------------------------------------


def test_requests_are_split_into_reads_writes_deletes_and_operation_polls() -> None:
    op = "Microsoft.Compute/locations/operations/read"
    records = [
        {"method": "GET", "path": "/s/vm", "action": "Microsoft.Compute/virtualMachines/read", "status": 200},
        {"method": "GET", "path": "/s/VM", "action": "Microsoft.Compute/virtualMachines/read", "status": 200},
        {"method": "GET", "path": "/s/op1", "action": op, "status": 200},
        {"method": "POST", "path": "/s/vm/deallocate", "action": "x/deallocate/action", "status": 202},
        {"method": "PUT", "path": "/s/snap", "action": "x/write", "status": 429, "throttled": True},
        {"method": "DELETE", "path": "/s/snap", "action": "x/delete", "status": 202},
        {"method": "COPY", "path": "/acct/c/b", "action": "blob/write", "status": 0},
    ]
    got = classify_requests(records)
    assert (got["total"], got["reads"], got["polls"], got["writes"], got["deletes"]) == (6, 2, 1, 2, 1)
    assert got["repeatedReads"] == 1  # ARM paths are case-insensitive
    assert (got["status429"], got["throttled"]) == (1, 1)
    assert got["throttledPercent"] == pytest.approx(100 / 6, rel=1e-3)
    counted = classify_counters({op: {"total": 4, "200": 4}, "x/write": {"total": 6, "202": 5, "429": 1}})
    assert counted == {"total": 10, "polls": 4, "status429": 1, "status429Percent": 10.0}


def _devhost_like_store(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE history (instance_id TEXT NOT NULL, execution_id TEXT NOT NULL, seq INTEGER NOT NULL,"
            " event TEXT NOT NULL, PRIMARY KEY (instance_id, execution_id, seq));"
            "CREATE TABLE instances (instance_id TEXT PRIMARY KEY, runtime_status TEXT, created_at REAL,"
            " updated_at REAL);"
        )


def test_history_probe_keeps_the_peak_of_executions_dropped_at_continue_as_new(tmp_path: Path) -> None:
    db_path = tmp_path / "durable.sqlite3"
    _devhost_like_store(db_path)
    probe = HistoryProbe(db_path)
    probe.install()
    with sqlite3.connect(db_path) as db:
        db.executemany(
            "INSERT INTO history VALUES (?,?,?,?)",
            [("cap:export:os", "e1", i, "{}") for i in range(300)]
            + [("cap", "r1", i, "{}") for i in range(40)],
        )
        db.execute("DELETE FROM history WHERE execution_id='e1'")  # continue-as-new drops the old execution
        db.executemany(
            "INSERT INTO history VALUES (?,?,?,?)", [("cap:export:os", "e2", i, "{}") for i in range(7)]
        )
        db.execute("INSERT INTO instances VALUES ('cap', 'Completed', 10.0, 42.5)")
    per = probe.per_instance("cap")
    assert per["cap:export:os"] == {"executions": 2, "maxEvents": 300, "totalEvents": 307}
    assert per["cap"] == {"executions": 1, "maxEvents": 40, "totalEvents": 40}
    summary = summarize_history(per)
    assert summary["maxEventsPerExecution"] == 300
    assert summary["maxTotalEventsPerInstance"] == 307
    assert probe.instances(["cap", "missing"]) == {"cap": ("Completed", 10.0, 42.5)}


# --- outputs ----------------------------------------------------------------------------------


def _fake_result() -> dict:
    prof = bench_profile(LatencyProfile(), s1_vm())
    cp = critical_path(prof, disks_of(s1_vm()), regions=3).as_dict(0.001)
    req = classify_requests([{"method": "GET", "path": "/a", "action": "r", "status": 200}])
    hist = summarize_history({"c": {"executions": 1, "maxEvents": 100, "totalEvents": 100}})
    ours = {
        "runtimeStatus": "Completed",
        "makespanWallS": 27.0,
        "makespanAzureS": 27000.0,
        "criticalPath": cp,
        "ratioToCriticalPath": 1.036,
        "stageTimingsAzureS": {"publish": 26000.0},
        "history": hist,
        "requests": req,
        "devhostCpuS": 2.0,
        "devhostCpuNetS": 0.7,
    }
    base = {
        "ok": True,
        "makespanWallS": 44.0,
        "makespanAzureS": 44000.0,
        "ratioToCriticalPath": 1.69,
        "requests": req,
        "scriptCpuS": 5.0,
    }
    run = {
        "count": 10,
        "completed": 10,
        "failed": 0,
        "requests": classify_counters({"r": {"total": 1000, "429": 5}}),
        "requestsPerCapture": 100.0,
        "batchMakespanWallS": 30.0,
        "batchOverSingle": 1.05,
        "batchOverCriticalPath": 1.1,
        "devhostCpuPerCaptureS": 1.5,
        "devhostCpuNetPerCaptureS": 1.0,
        "history": hist,
    }
    return {
        "timestamp": "20260101T000000",
        "machine": {"cpus": 2},
        "scenarios": {
            "S1": {"timeScale": 0.001, "ours": ours, "baseline": base, "oursOverBaseline": 0.61},
            "longcopy": {"timeScale": 0.0004, "copyHours": 24, "ours": ours},
            "scale": {"timeScale": 0.001, "runs": [run, {"count": 200, "error": "TimeoutError: slow"}]},
        },
    }


def test_summary_table_shows_ours_baseline_critical_path_ratios_and_missed_targets() -> None:
    text = report.summary_table(_fake_result())
    assert "critical path" in text and "baseline" in text and "ours / baseline makespan: 0.610" in text
    assert "1.036" in text and "1.690" in text
    assert "makespan <= 1.03 x crit.path MISSED" in text  # 1.036 > 1.03
    assert "target <= 400 ok" in text
    assert "did not finish: TimeoutError: slow" in text


def test_result_json_and_plot_are_written(tmp_path: Path) -> None:
    result = _fake_result()
    j = report.write_json(result, tmp_path / "r.json")
    assert json.loads(j.read_text())["scenarios"]["S1"]["ours"]["ratioToCriticalPath"] == 1.036
    png = report.write_plot(result, tmp_path / "r.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_peak_rates_count_reads_and_writes_per_wall_second() -> None:
    t = "2026-01-01T00:00:0"
    records = [
        {"time": f"{t}1.1000000+00:00", "method": "GET", "action": "a/read"},
        {
            "time": f"{t}1.9000000+00:00",
            "method": "GET",
            "action": "Microsoft.Compute/locations/operations/read",
        },
        {"time": f"{t}2.0000000+00:00", "method": "GET", "action": "a/read"},
        {"time": f"{t}2.5000000+00:00", "method": "PUT", "action": "a/write"},
        {"time": f"{t}2.6000000+00:00", "method": "DELETE", "action": "a/delete"},
    ]
    assert peak_rates(records) == {"peakReadsPerWallS": 2, "peakWritesPerWallS": 2}
    assert peak_rates([]) == {"peakReadsPerWallS": 0, "peakWritesPerWallS": 0}
