"""The migration scenario's pieces without a cloud: its world, its lower bound, its summary lines."""

from __future__ import annotations

import json
from pathlib import Path

from azsim.core.latency import LatencyProfile
from azsim.world import load_world
from bench import report
from bench.migration import LEGACY_RG, bench_app, image_sizes, lower_bound, migration_world, summary
from bench.profile import GIB


def test_the_world_holds_the_images_and_lets_the_app_delete_them(tmp_path: Path) -> None:
    path = tmp_path / "world.json"
    path.write_text(json.dumps(migration_world(200)), encoding="utf-8")
    world = load_world(path)  # azsim's own validation
    images = [i for i in world.managed_images if i.resource_group == LEGACY_RG]
    assert len(images) == 200 and not world.virtual_machines
    assert {i.hyper_v_generation for i in images} == {"V1", "V2"}
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert any(a["scope"].endswith(f"/resourceGroups/{LEGACY_RG}") for a in raw["roleAssignments"])


def test_the_lower_bound_is_the_slowest_image_or_the_write_budget() -> None:
    p = LatencyProfile()
    b = lower_bound(p, 200, 3, delete=True)
    gib = max(sum((os, *data)) for os, data in (image_sizes(i) for i in range(200)))
    full = p.replication_s(gib * GIB)
    assert b.slowest_image_gib == gib == 159
    assert b.slowest_image_s == round(p.gallery_s + p.gallery_image_s + 1.5 * full + p.snapshot_base_s, 3)
    assert (b.writes_needed, b.write_budget_s) == (401, 20.1)
    assert b.bound_by == "slowest image" and b.total_s == b.slowest_image_s
    # With writes that are slow enough to matter, the budget binds.
    fast = LatencyProfile(
        replication_base_s=0.0, replication_mb_per_s=1e9, gallery_s=0.0, gallery_image_s=0.0
    )
    assert lower_bound(fast, 2000, 1, delete=False).bound_by == "ARM write budget"


def test_the_bench_app_only_changes_the_activity_slots(tmp_path: Path) -> None:
    app = bench_app(tmp_path / "app", slots=64)
    host = json.loads((app / "host.json").read_text(encoding="utf-8"))
    assert host["extensions"]["durableTask"]["maxConcurrentActivityFunctions"] == 64
    assert "function_app.py" in (app / "function_app.py").read_text(encoding="utf-8")


def test_the_summary_says_whether_the_target_was_met() -> None:
    m = {
        "images": 200,
        "maxParallel": 200,
        "startSpacingS": 1.0,
        "lowerBound": {"total_s": 6607.0, "slowest_image_s": 6607.0, "write_budget_s": 20.1},
        "runtimeStatus": "Completed",
        "state": "succeeded",
        "counts": {"done": 200, "failed": 0},
        "sourcesDeleted": 200,
        "makespanS": 6700.0,
        "ratioToLowerBound": 1.014,
        "requests": {"countersTotal": 7000},
        "requestsPerImage": 35.0,
        "writesPerImage": 2.0,
        "status429": 0,
        "devhostCpuS": 60.0,
        "history": {"maxEventsPerExecution": 250},
        "runWallS": 100.0,
    }
    lines = summary(m)
    assert lines[-1].endswith("ok") and "x1.014" in "\n".join(lines)
    assert summary({**m, "counts": {"done": 199, "failed": 1}})[-1].endswith("MISSED")
    assert "migration: 200 managed images" in report.summary_table({"scenarios": {"migration": m}})
