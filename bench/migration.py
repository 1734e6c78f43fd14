"""The migration scenario: 200 managed images of one subscription moved into a gallery, throttling on.

``python -m bench --scenario migration``. The world is the bench world plus a resource group
``rg-legacy`` holding ``MIGRATION_IMAGES`` managed images of mixed sizes (``migration_world``), in
virtual time (docs/virtual-time.md): one simulated clock, so the makespan is simulated seconds read
from it. One ``POST /api/migrations`` (3 target regions, ``deleteSourceAfter: "verified"``) with
``MIGRATION_MAX_PARALLEL`` = ``PARALLEL``; measured against the lower bound

    max(slowest image's critical path, ARM write budget)

- an image's critical path: gallery create → definition create → version replication (source region at
  ``source_region_fraction`` of a full replication, then the other regions in parallel) → the source's
  deletion (``lower_bound``); the image with the most GiB is the slowest;
- the ARM write budget: the writes the migration needs (the gallery, and per image its definition and its
  version; deletes have a bucket of their own, 200 ≤ its burst) beyond ARM's burst of 200, at 10 per
  second per principal (``azsim.core.throttling.ARM_LIMITS``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from azsim.core.latency import LatencyProfile
from azsim.core.throttling import ARM_LIMITS
from bench.metrics import CpuMeter, classify_counters, classify_requests, summarize_history
from bench.profile import GIB, azure_profile
from bench.scenarios import REGIONS, REPO, Log, http, policy_env, running_stack
from bench.world import BENCH_WORLD
from shared.settings import Settings

MIGRATION_IMAGES = 200
PARALLEL = 200  # MIGRATION_MAX_PARALLEL for the run: every image at once (the default is 8)
LEGACY_RG = "rg-legacy"
OS_SIZES_GIB = (30, 30, 64, 127)  # cycled over the images
DATA_DISK_GIB = 32  # every fifth image has one data disk
TARGET = 1.1


def image_sizes(i: int) -> tuple[int, list[int]]:
    """(OS disk GiB, data disk GiB list) of the i-th image."""
    return OS_SIZES_GIB[i % len(OS_SIZES_GIB)], [DATA_DISK_GIB] if i % 5 == 0 else []


def migration_world(n: int = MIGRATION_IMAGES, template: Path = BENCH_WORLD) -> dict[str, Any]:
    """The bench world with ``n`` managed images in ``rg-legacy`` (Linux Gen2 and Windows Gen1 mixed)."""
    world = json.loads(template.read_text(encoding="utf-8"))
    sub = world["subscriptions"][0]["id"]
    world["virtualMachines"] = []
    world["resourceGroups"].append({"name": LEGACY_RG, "location": "westeurope"})
    images = []
    for i in range(n):
        os_gib, data = image_sizes(i)
        windows = i % 3 == 2
        images.append(
            {
                "name": f"img-{i:03d}",
                "resourceGroup": LEGACY_RG,
                "location": "westeurope",
                "osType": "Windows" if windows else "Linux",
                "hyperVGeneration": "V1" if windows else "V2",
                "osDiskSizeGiB": os_gib,
                "dataDisks": [{"lun": k, "sizeGiB": g} for k, g in enumerate(data)],
                "tags": {"source": "packer"},
            }
        )
    world["managedImages"] = images
    # Read the images, make versions from them, delete them once migrated.
    world["roleAssignments"].append(
        {
            "principal": "id-image-pipeline",
            "roleDefinitionName": "Contributor",
            "scope": f"/subscriptions/{sub}/resourceGroups/{LEGACY_RG}",
        }
    )
    return world


@dataclass(frozen=True)
class LowerBound:
    slowest_image_s: float  # its critical path
    slowest_image_gib: int
    writes_needed: int
    write_budget_s: float
    total_s: float
    bound_by: str


def lower_bound(profile: LatencyProfile, n: int, regions: int, *, delete: bool) -> LowerBound:
    gib = max(sum((os, *data)) for os, data in (image_sizes(i) for i in range(n)))
    full = profile.replication_s(gib * GIB)
    replication = full * profile.source_region_fraction + (full if regions > 1 else 0.0)
    deletion = profile.snapshot_base_s if delete else 0.0  # azsim deletes an image in snapshot_base_s
    slowest = profile.gallery_s + profile.gallery_image_s + replication + deletion
    writes = 1 + 2 * n  # the gallery; per image its definition and its version
    burst, rate = ARM_LIMITS["writes"]
    budget = max(0.0, writes - burst) / rate
    return LowerBound(
        slowest_image_s=round(slowest, 3),
        slowest_image_gib=gib,
        writes_needed=writes,
        write_budget_s=round(budget, 3),
        total_s=round(max(slowest, budget), 3),
        bound_by="slowest image" if slowest >= budget else "ARM write budget",
    )


def _request(sub: str) -> dict[str, Any]:
    return {
        "scope": f"/subscriptions/{sub}/resourceGroups/{LEGACY_RG}",
        "gallery": {"resourceGroup": "rg-images", "name": "galMigrate", "createIfMissing": True},
        "definitionName": "{image}",
        "publisher": "bench",
        "offer": "migrated",
        "targetRegions": [{"name": r} for r in REGIONS],
        "deleteSourceAfter": "verified",
        "tags": {"bench": "migration"},
    }


def _figures(stack: Any, view: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    images = view.get("images") or []
    counters = classify_counters(stack.sim("counters"))
    requests = classify_requests(records)
    n = max(1, len(images))
    return {
        "counts": view.get("counts"),
        "failedImages": [
            {"name": i["name"], "error": (i.get("error") or {}).get("message", "")[:300]}
            for i in images
            if i.get("state") != "completed"
        ][:10],
        "sourcesDeleted": sum(1 for i in images if i.get("sourceDeleted")),
        "requests": {**requests, "countersTotal": counters["total"], "status429": counters["status429"]},
        "requestsPerImage": round(counters["total"] / n, 1),
        "writesPerImage": round(requests["writes"] / n, 2),
        "status429": counters["status429"],
        "status429Percent": counters["status429Percent"],
    }


APP_SOURCE = '''"""Bench app: the repository's function_app.py as is (this folder only changes host.json)."""
import importlib.util
import pathlib

_spec = importlib.util.spec_from_file_location("image_pipeline_function_app", pathlib.Path({root!r}) / "function_app.py")
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
app = _mod.app
'''
# devhost in virtual time counts a queued activity as runnable: with every activity slot taken by an
# activity waiting in virtual time (an SDK poller's sleep) and more queued, the clock could never move.
# The bench app gives devhost a slot per capture that may run at once (Azure scales the host out instead).
ACTIVITY_SLOTS = 256


def bench_app(app_dir: Path, slots: int = ACTIVITY_SLOTS) -> Path:
    """A folder running the repository's app with ``slots`` concurrent activities (host.json only)."""
    app_dir.mkdir(parents=True, exist_ok=True)
    (app_dir / "function_app.py").write_text(APP_SOURCE.format(root=str(REPO)), encoding="utf-8")
    host = json.loads((REPO / "host.json").read_text(encoding="utf-8"))
    host["extensions"]["durableTask"]["maxConcurrentActivityFunctions"] = slots
    (app_dir / "host.json").write_text(json.dumps(host, indent=1), encoding="utf-8")
    return app_dir


def run_migration(
    workdir: Path, *, log: Log, n: int = MIGRATION_IMAGES, parallel: int = PARALLEL
) -> dict[str, Any]:
    """One migration of ``n`` managed images, in virtual time, measured against its lower bound."""
    profile = azure_profile()
    bound = lower_bound(profile, n, len(REGIONS), delete=True)
    log(
        f"migration: {n} managed images, {parallel} at once; lower bound {bound.total_s:.0f} simulated s "
        f"(bound by {bound.bound_by}), in virtual time"
    )
    workdir.mkdir(parents=True, exist_ok=True)
    world = workdir / "world.json"
    world.write_text(json.dumps(migration_world(n), indent=1), encoding="utf-8")
    out: dict[str, Any] = {
        "clock": "virtual",
        "images": n,
        "maxParallel": parallel,
        "startSpacingS": Settings().migration_start_spacing_seconds,  # the default, not changed
        "lowerBound": asdict(bound),
        "policy": policy_env(1.0),
    }
    env = {"MIGRATION_MAX_PARALLEL": str(parallel)}
    app = bench_app(workdir / "app")
    opts: dict[str, Any] = {"log": log, "virtual": True, "extra_env": env, "app_dir": app}
    with running_stack(workdir / "stack", world, profile, 1.0, **opts) as stack:
        cpu = CpuMeter([stack.devhost.proc.pid] if stack.devhost.proc else [])
        idle = cpu.idle_rate()
        cpu.start()
        n0 = len(stack.records())
        wall0 = time.monotonic()
        sent = stack.now()
        code, answer = http(
            "POST", stack.devhost.url("/api/migrations"), _request(stack.cloud.subscription_id)
        )
        if code != 202:
            raise RuntimeError(f"POST /api/migrations answered {code}: {str(answer)[:500]}")
        mid = str(answer["id"])
        rows = stack.wait([mid], timeout=1800)
        wall = time.monotonic() - wall0
        cpu_s = cpu.seconds()
        makespan = rows[mid][2] - sent
        _, view = http("GET", stack.devhost.url(f"/api/migrations/{mid}"))
        out.update(_figures(stack, view if isinstance(view, dict) else {}, stack.records()[n0:]))
        out.update(
            {
                "migrationId": mid,
                "runtimeStatus": rows[mid][0],
                "state": view.get("state") if isinstance(view, dict) else None,
                "makespanS": round(makespan, 1),
                "ratioToLowerBound": round(makespan / bound.total_s, 4),
                "runWallS": round(wall, 1),
                "devhostCpuS": round(cpu_s, 2),
                "devhostCpuPerImageS": round(max(0.0, cpu_s - idle * wall) / n, 3),
                "history": summarize_history(stack.probe.per_instance("")),
                "historyMigration": summarize_history(stack.probe.per_instance("migration-")),
            }
        )
    log(
        f"  {out['runtimeStatus']} ({out['state']}): makespan {out['makespanS']:.0f} s vs lower bound "
        f"{bound.total_s:.0f} s -> x{out['ratioToLowerBound']:.3f}; {out['requestsPerImage']} ARM requests/image, "
        f"{out['status429']} x 429, failed {out['counts'] and out['counts'].get('failed')}; {wall:.0f} s wall"
    )
    return out


def summary(m: dict[str, Any]) -> list[str]:
    """The summary table's lines for the migration scenario."""
    if "makespanS" not in m:
        return []
    b, c = m["lowerBound"], m.get("counts") or {}
    ok = m["ratioToLowerBound"] <= TARGET and c.get("failed", 1) == 0
    return [
        "",
        f"migration: {m['images']} managed images, {m['maxParallel']} at once (first starts "
        f"{m.get('startSpacingS', 0)} s apart), 3 regions, deleteSourceAfter verified; virtual time",
        f"  {m['runtimeStatus']} ({m['state']}): done {c.get('done')}, failed {c.get('failed')}, sources deleted "
        f"{m['sourcesDeleted']}",
        f"  makespan {m['makespanS'] / 3600:.2f} h ({m['makespanS']:.0f} s) vs lower bound {b['total_s']:.0f} s "
        f"(slowest image {b['slowest_image_s']:.0f} s, write budget {b['write_budget_s']:.0f} s) -> "
        f"x{m['ratioToLowerBound']:.3f}",
        f"  ARM requests {m['requests']['countersTotal']} ({m['requestsPerImage']}/image, writes "
        f"{m['writesPerImage']}/image), 429s {m['status429']}; devhost CPU {m['devhostCpuS']:.1f} s; "
        f"history max {m['history']['maxEventsPerExecution']} events/execution; {m['runWallS']:.0f} s wall",
        f"  target: 0 failed and makespan <= {TARGET} x lower bound: {'ok' if ok else 'MISSED'}",
    ]
