"""What a run costs: ARM requests by kind, durable history per instance, CPU of a process tree.

- ``classify_requests``: azsim's request log (``/_sim/requests``) split into reads, writes, deletes
  and polls (GETs of async-operation status URLs), plus 429s and repeated reads of one resource.
- ``HistoryProbe``: an AFTER INSERT trigger on devhost's SQLite ``history`` table that keeps the
  largest event count each execution reached. devhost drops an execution's history at
  continue-as-new, so reading the table afterwards would undercount; the trigger sees every event.
- ``CpuMeter``: user+system CPU seconds of a process and its descendants (psutil).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import psutil

POLL_ACTION = "Microsoft.Compute/locations/operations/read"
# azsim names each operation family's poll by its own action (VMs, disks and snapshots, galleries).
POLL_ACTIONS = frozenset(
    f"Microsoft.Compute/locations/{family}/read"
    for family in ("operations", "DiskOperations", "capsOperations")
)


def request_kind(record: Mapping[str, Any]) -> str:
    """``poll`` | ``read`` | ``write`` | ``delete`` | ``other`` for one azsim request record."""
    method = str(record.get("method", "")).upper()
    action = str(record.get("action") or "")
    if method == "GET" and action in POLL_ACTIONS:
        return "poll"
    if method in ("GET", "HEAD"):
        return "read"
    if method == "DELETE":
        return "delete"
    if method in ("PUT", "POST", "PATCH"):
        return "write"
    return "other"


def classify_requests(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Totals by kind, 429s (throttled and injected), repeated reads, and counts per ARM action."""
    kinds: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    read_paths: Counter[str] = Counter()
    status_429 = throttled = 0
    for r in records:
        if r.get("method") == "COPY":  # azsim's note of an injected copy fault, not a request
            continue
        kind = request_kind(r)
        kinds[kind] += 1
        actions[f"{r.get('method')} {r.get('action') or r.get('path')}"] += 1
        if kind == "read":
            read_paths[str(r.get("path", "")).lower()] += 1
        if r.get("status") == 429:
            status_429 += 1
        if r.get("throttled"):
            throttled += 1
    total = sum(kinds.values())
    return {
        "total": total,
        "reads": kinds["read"],
        "writes": kinds["write"],
        "deletes": kinds["delete"],
        "polls": kinds["poll"],
        "other": kinds["other"],
        "repeatedReads": sum(n - 1 for n in read_paths.values() if n > 1),
        "status429": status_429,
        "throttled": throttled,
        "throttledPercent": round(100.0 * throttled / total, 3) if total else 0.0,
        "byAction": dict(sorted(actions.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def classify_counters(counters: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """Totals from ``/_sim/counters`` (never truncated, unlike the request log): requests and 429s."""
    total = sum(int(v.get("total", 0)) for k, v in counters.items() if not k.startswith("COPY"))
    s429 = sum(int(v.get("429", 0)) for v in counters.values())
    polls = sum(int(counters.get(a, {}).get("total", 0)) for a in POLL_ACTIONS)
    return {
        "total": total,
        "polls": polls,
        "status429": s429,
        "status429Percent": round(100.0 * s429 / total, 3) if total else 0.0,
    }


def peak_rates(records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Most reads / writes (incl. deletes) seen in one wall-clock second of the request log.

    Under a compressed time scale, ARM's buckets refill 1/time-scale times faster in wall time, so a
    burst that real Azure would throttle passes in azsim; the wall-second peak is what Azure would see
    from a host as fast as this one, to hold against ARM's 250 read / 200 write burst per principal.
    """
    reads: Counter[str] = Counter()
    writes: Counter[str] = Counter()
    for r in records:
        second = str(r.get("time", ""))[:19]
        kind = request_kind(r)
        if kind in ("read", "poll"):
            reads[second] += 1
        elif kind in ("write", "delete"):
            writes[second] += 1
    return {
        "peakReadsPerWallS": max(reads.values(), default=0),
        "peakWritesPerWallS": max(writes.values(), default=0),
    }


_TRIGGER_SQL = """
CREATE TABLE IF NOT EXISTS bench_history_peak (
    instance_id TEXT NOT NULL, execution_id TEXT NOT NULL, events INTEGER NOT NULL,
    PRIMARY KEY (instance_id, execution_id)
);
CREATE TRIGGER IF NOT EXISTS bench_history_peak_ins AFTER INSERT ON history BEGIN
    INSERT INTO bench_history_peak(instance_id, execution_id, events)
    VALUES (new.instance_id, new.execution_id, new.seq + 1)
    ON CONFLICT(instance_id, execution_id) DO UPDATE SET events = MAX(events, excluded.events);
END;
"""


class HistoryProbe:
    """Counts durable history events per instance and execution in devhost's store (see module doc)."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(str(self.db_path), timeout=30)

    def install(self, deadline_s: float = 30.0) -> None:
        end = time.monotonic() + deadline_s
        while not self.db_path.exists():
            if time.monotonic() > end:
                raise FileNotFoundError(
                    f"devhost store {self.db_path} did not appear within {deadline_s:.0f} s"
                )
            time.sleep(0.05)
        with contextlib.closing(self._connect()) as db:
            db.executescript(_TRIGGER_SQL)

    def per_instance(self, prefix: str = "") -> dict[str, dict[str, int]]:
        """``{instance: {executions, maxEvents, totalEvents}}`` for instances whose id starts with ``prefix``."""
        with contextlib.closing(self._connect()) as db:
            rows = db.execute(
                "SELECT instance_id, COUNT(*), MAX(events), SUM(events) FROM bench_history_peak "
                "WHERE instance_id LIKE ? GROUP BY instance_id ORDER BY instance_id",
                (prefix.replace("%", r"\%") + "%",),
            ).fetchall()
        return {r[0]: {"executions": r[1], "maxEvents": r[2], "totalEvents": r[3]} for r in rows}

    def instances(self, ids: Iterable[str]) -> dict[str, tuple[str, float, float]]:
        """``{id: (runtime_status, created_at, updated_at)}`` for the given root instance ids."""
        wanted = list(ids)
        out: dict[str, tuple[str, float, float]] = {}
        with contextlib.closing(self._connect()) as db:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for row in db.execute(
                    f"SELECT instance_id, runtime_status, created_at, updated_at FROM instances "
                    f"WHERE instance_id IN ({marks})",
                    chunk,
                ):
                    out[row[0]] = (row[1], float(row[2]), float(row[3]))
        return out


def summarize_history(per_instance: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """The largest execution any instance reached, and events per capture over all its instances."""
    if not per_instance:
        return {"instances": 0, "maxEventsPerExecution": 0, "maxTotalEventsPerInstance": 0}
    return {
        "instances": len(per_instance),
        "maxEventsPerExecution": max(v["maxEvents"] for v in per_instance.values()),
        "maxTotalEventsPerInstance": max(v["totalEvents"] for v in per_instance.values()),
        "maxExecutionsPerInstance": max(v["executions"] for v in per_instance.values()),
        "totalEvents": sum(v["totalEvents"] for v in per_instance.values()),
    }


class CpuMeter:
    """CPU seconds (user + system) used by a process tree since ``start()``."""

    def __init__(self, pids: Iterable[int]) -> None:
        self.roots = [psutil.Process(p) for p in pids]
        self._seen: dict[int, float] = {}
        self._base = 0.0

    def _tree(self) -> list[psutil.Process]:
        procs: list[psutil.Process] = []
        for root in self.roots:
            with contextlib.suppress(psutil.Error):
                procs.append(root)
                procs.extend(root.children(recursive=True))
        return procs

    def _sample(self) -> float:
        for p in self._tree():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                # children_* covers waited-for children that have already exited
                self._seen[p.pid] = t.user + t.system + t.children_user + t.children_system
        return sum(self._seen.values())

    def start(self) -> None:
        self._seen.clear()
        self._base = self._sample()

    def seconds(self) -> float:
        return round(self._sample() - self._base, 3)

    def idle_rate(self, seconds: float = 2.0) -> float:
        """CPU seconds per second the tree spends doing nothing useful (its own pollers), over ``seconds``."""
        self.start()
        t0 = time.monotonic()
        time.sleep(seconds)
        return round(self.seconds() / (time.monotonic() - t0), 4)
