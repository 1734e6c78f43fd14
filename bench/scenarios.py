"""The scenarios: S1 (one capture), baseline (same world, same run), longcopy (24 h copy), scale (N at once).

Each scenario starts its own local cloud (azsim + Azurite, throttling on) and devhost running
``function_app.py`` in a work dir under ``.bench/``, on free ports, and stops both on exit (also on
failure). The pipeline gets its default timing policy with every duration multiplied by the time
scale (``policy_env``), so it paces itself against the compressed cloud as it would against Azure.

S1, baseline and longcopy run in virtual time (docs/virtual-time.md): azsim ``--virtual-clock`` owns
the one simulated clock, devhost shares it (``--clock-url``), the time scale is 1 and every duration
(makespan, stage timings, the baseline's steps) is read from that clock, with no wall-time
conversion. CPU stays a wall measure. The scale scenario still runs on the real clock at a time scale.
"""

from __future__ import annotations

import json
import shutil
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from azsim.core.latency import LatencyProfile
from azsim.testing import CloudEnv, local_cloud
from azsim.world import VirtualMachine, load_world
from bench import baseline as baseline_mod
from bench.critical_path import CriticalPath, critical_path, disks_of
from bench.metrics import (
    CpuMeter,
    HistoryProbe,
    classify_counters,
    classify_requests,
    peak_rates,
    summarize_history,
)
from bench.profile import azure_copy_mbps, azure_profile, bench_profile, write_latency_file
from bench.world import BENCH_WORLD, S1_BASELINE_VM, S1_VM, S1_WARM_VM, scale_vm_names, write_scale_world
from devhost.testing import DevhostProcess, running_devhost
from shared.contracts import CapturePolicy
from shared.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DEVHOST_DB = "durable.sqlite3"  # devhost.engine.DB_NAME (not imported: that would import the engine)
TERMINAL = {"Completed", "Failed", "Terminated", "Canceled"}
REGIONS = ["westeurope", "northeurope", "eastus2"]  # the VM's region is one of them: 3 in all
Log = Callable[[str], None]


def policy_env(time_scale: float, expected_copy_mbps: float | None = None) -> dict[str, str]:
    """The pipeline's default timing settings, each duration multiplied by ``time_scale``.

    One exception: ``CAPTURE_EXPECTED_COPY_MBPS`` stays in Azure units (default: the pipeline's own
    default), because the pipeline also derives the SAS lifetime it asks Azure for from it
    (size / (rate / 30) + ``CAPTURE_SAS_MARGIN_SECONDS``, which stays at its 3600 Azure s too) and
    azsim, rightly, counts that lifetime in Azure seconds. Scaling the rate would make the SAS expire
    mid-copy. Its other use, pacing copy polls until a copy reports progress, is then clamped by the
    scaled ``CAPTURE_POLL_MAX_SECONDS``. ``expected_copy_mbps`` overrides it (no scenario needs to).
    """
    p, s = CapturePolicy(), Settings()

    def sec(v: float) -> str:
        return f"{v * time_scale:.6g}"

    return {
        "CAPTURE_POLL_MIN_SECONDS": sec(p.poll_min_seconds),
        "CAPTURE_POLL_MAX_SECONDS": sec(p.poll_max_seconds),
        "CAPTURE_GUEST_STOP_TIMEOUT_SECONDS": sec(p.guest_stop_timeout_seconds),
        "CAPTURE_POWER_STATE_TIMEOUT_SECONDS": sec(p.power_state_timeout_seconds),
        "CAPTURE_SNAPSHOT_TIMEOUT_SECONDS": sec(p.snapshot_timeout_seconds),
        "CAPTURE_COPY_STALL_SECONDS": sec(p.copy_stall_seconds),
        "CAPTURE_REPLICATION_TIMEOUT_SECONDS": sec(p.replication_timeout_seconds),
        "CAPTURE_EXPECTED_COPY_MBPS": f"{expected_copy_mbps or p.expected_copy_mbps:.6g}",
        "CAPTURE_TRANSIENT_RETRY_ATTEMPTS": str(p.transient_retry_attempts),
        "CAPTURE_TRANSIENT_RETRY_FIRST_SECONDS": sec(p.transient_retry_first_seconds),
        "AZURE_ARM_RETRY_TOTAL": str(s.arm_retry_total),
        "AZURE_ARM_RETRY_BACKOFF_SECONDS": sec(s.arm_retry_backoff_seconds),
        "AZURE_ARM_RETRY_BACKOFF_MAX_SECONDS": sec(s.arm_retry_backoff_max_seconds),
        "AZURE_LRO_POLLING_INTERVAL_SECONDS": sec(s.lro_polling_interval_seconds),
        # The world's export account: exports are refused until an account is allow-listed.
        "CAPTURE_EXPORT_ACCOUNTS": "stexports",
    }


def http(
    method: str, url: str, body: Any = None, timeout: float = 60.0, *, ca_file: str | None = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, method=method, data=data, headers={"Content-Type": "application/json"})
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


@dataclass
class Stack:
    cloud: CloudEnv
    devhost: DevhostProcess
    probe: HistoryProbe
    time_scale: float
    virtual: bool = False

    def now(self) -> float:
        """Epoch seconds on the stack's clock: the simulated clock's (as devhost stamps) or real time."""
        if not self.virtual:
            return time.time()
        state = self.cloud.clock()
        return float(state["epoch"]) + float(state["now"])

    def sim(self, path: str) -> Any:
        url = f"{self.cloud.control_url.rstrip('/')}/{path.lstrip('/')}"
        code, body = http("GET", url, ca_file=self.cloud.ca_bundle)
        if code != 200:
            raise RuntimeError(f"azsim /_sim/{path} answered {code}: {str(body)[:300]}")
        return body

    def records(self) -> list[dict[str, Any]]:
        return list(self.sim("requests")["value"])

    def vm_id(self, name: str, rg: str = "rg-build") -> str:
        return (
            f"/subscriptions/{self.cloud.subscription_id}/resourceGroups/{rg}"
            f"/providers/Microsoft.Compute/virtualMachines/{name}"
        )

    def capture_request(self, vm: str) -> dict[str, Any]:
        return {
            "sourceVmId": self.vm_id(vm),
            "captureMode": "inPlace",
            "gallery": {"resourceGroup": "rg-images", "name": "galBench", "createIfMissing": True},
            "imageDefinition": {
                "name": f"{vm}-def",
                "publisher": "bench",
                "offer": "s1",
                "sku": vm,
                "createIfMissing": True,
            },
            "version": "1.0.0",
            "targetRegions": [{"name": r} for r in REGIONS],
            "prepare": "none",
            "vhdExport": {"accountUrl": self.cloud.storage_account_url("stexports"), "container": "vhds"},
            "deleteSnapshots": True,
            "tags": {"bench": "s1"},
        }

    def submit(self, vm: str) -> tuple[str, float]:
        """POST a capture of ``vm``; ``(capture id, time the POST was sent on the stack's clock)``."""
        sent = self.now()
        code, answer = http("POST", self.devhost.url("/api/captures"), self.capture_request(vm))
        if code != 202:
            raise RuntimeError(f"POST /api/captures for {vm} answered {code}: {str(answer)[:500]}")
        return str(answer["id"]), sent

    def wait(self, ids: list[str], timeout: float) -> dict[str, tuple[str, float, float]]:
        """Read the root instances from devhost's store (no HTTP, so no CPU spent in devhost) until all end."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.probe.instances(ids)
            if len(rows) == len(ids) and all(r[0] in TERMINAL for r in rows.values()):
                return rows
            if time.monotonic() > deadline:
                pending = [i for i in ids if rows.get(i, ("Pending",))[0] not in TERMINAL]
                raise TimeoutError(
                    f"{len(pending)} of {len(ids)} captures had not ended after {timeout:.0f} s "
                    f"(first: {pending[:3]})\n{self.devhost.log_tail(30)}"
                )
            time.sleep(0.1)

    def status(self, capture_id: str) -> dict[str, Any]:
        code, body = http("GET", self.devhost.url(f"/api/captures/{capture_id}"))
        return (
            body if code == 200 and isinstance(body, dict) else {"httpStatus": code, "body": str(body)[:500]}
        )

    def cloud_pids(self) -> list[int]:
        pids = [self.cloud.pid] if self.cloud.pid else []
        pid_file = self.cloud.workdir / "azurite.pid"  # Azurite runs in its own process group
        try:
            pids.append(int(pid_file.read_text()))
        except (OSError, ValueError):
            pass
        return [p for p in pids if psutil.pid_exists(p)]


@contextmanager
def running_stack(
    workdir: Path,
    world: Path,
    profile: LatencyProfile,
    time_scale: float,
    *,
    log: Log,
    expected_copy_mbps: float | None = None,
    virtual: bool = False,
    extra_env: dict[str, str] | None = None,
    app_dir: Path = REPO,
) -> Iterator[Stack]:
    """azsim + devhost; with ``virtual`` on one simulated clock (then ``time_scale`` must be 1)."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    latency = write_latency_file(profile, workdir / "latency.json")
    t0 = time.monotonic()
    with local_cloud(
        workdir / "azsim",
        world=world,
        time_scale=time_scale,
        latency=latency,
        throttle=True,
        virtual_clock=virtual,
        start_timeout=300,
    ) as cloud:
        env = {**dict(cloud), **policy_env(time_scale, expected_copy_mbps), **(extra_env or {})}
        clock_url = cloud.clock_url if virtual else None
        with running_devhost(
            app_dir, workdir / "devhost", env=env, clock_url=clock_url, startup_timeout=120
        ) as dh:
            probe = HistoryProbe(workdir / "devhost" / DEVHOST_DB)
            probe.install()
            mode = "virtual time" if virtual else f"time scale {time_scale:g}"
            log(f"  local cloud + devhost up in {time.monotonic() - t0:.1f} s ({mode})")
            yield Stack(cloud, dh, probe, time_scale, virtual)


def _vm(world: Path, name: str) -> VirtualMachine:
    return next(v for v in load_world(world).virtual_machines if v.name == name)


def _capture_figures(
    stack: Stack, cid: str, sent: float, row: tuple[str, float, float], cp: CriticalPath
) -> dict[str, Any]:
    status = stack.status(cid)
    makespan = row[2] - sent  # both on the stack's clock: simulated seconds in virtual time
    ts = stack.time_scale
    history = stack.probe.per_instance(cid)
    result = status.get("result") or {}
    out: dict[str, Any] = {
        "captureId": cid,
        "runtimeStatus": row[0],
        "clock": "virtual" if stack.virtual else "real",
        "makespanAzureS": round(makespan / ts, 1),
        "criticalPath": cp.as_dict(ts),
        "ratioToCriticalPath": round(makespan / cp.wall(ts), 4),
        "stageTimingsAzureS": {k: round(v / ts, 1) for k, v in (result.get("timings") or {}).items()},
        "history": {"perInstance": history, **summarize_history(history)},
        "error": status.get("error"),
    }
    if not stack.virtual:
        out["makespanWallS"] = round(makespan, 3)
    return out


def _export_restarts(stack: Stack, cid: str) -> dict[str, int]:
    """Per disk, how often the export restarted its copy because the snapshot's SAS expired (0 = never)."""
    status = stack.status(cid)
    run_id = status.get("runId") or cid
    out: dict[str, int] = {}
    for disk in status.get("disks") or []:
        iid = f"{run_id}:export:{disk['key']}"
        code, body = http("GET", stack.devhost.url(f"/runtime/webhooks/durabletask/instances/{iid}"))
        if code in (200, 202) and isinstance(body, dict):
            out[disk["key"]] = int((body.get("customStatus") or {}).get("restarts", 0))
    return out


def _cpu_figures(total: float, idle_rate: float, wall: float) -> dict[str, float]:
    """devhost's CPU over the run, and the same without what it burns when idle (its store/queue pollers)."""
    return {
        "devhostCpuS": total,
        "devhostIdleCpuPerS": idle_rate,
        "devhostCpuNetS": round(max(0.0, total - idle_rate * wall), 3),
    }


def _one_capture(stack: Stack, vm_name: str, cp: CriticalPath, idle: float) -> dict[str, Any]:
    """Capture ``vm_name`` alone and measure it: makespan, ratio, requests, history, CPU."""
    n0 = len(stack.records())
    cpu = CpuMeter([stack.devhost.proc.pid] if stack.devhost.proc else [])
    cloud_cpu = CpuMeter(stack.cloud_pids())
    cpu.start()
    cloud_cpu.start()
    wall0 = time.monotonic()
    cid, sent = stack.submit(vm_name)
    rows = stack.wait([cid], timeout=_wait_s(stack, cp))
    wall = time.monotonic() - wall0
    ours = _capture_figures(stack, cid, sent, rows[cid], cp)
    ours["runWallS"] = round(wall, 3)
    ours.update(_cpu_figures(cpu.seconds(), idle, wall))
    ours["cloudCpuS"] = cloud_cpu.seconds()
    ours["exportRestarts"] = _export_restarts(stack, cid)  # after the CPU reading: it asks devhost
    ours["requests"] = classify_requests(stack.records()[n0:])
    return ours


def _wait_s(stack: Stack, cp: CriticalPath) -> float:
    # Wall seconds to wait for a capture: in virtual time a capture takes seconds whatever it simulates.
    return 300.0 if stack.virtual else max(120.0, 8 * cp.wall(stack.time_scale))


def _baseline(stack: Stack, cp: CriticalPath) -> tuple[baseline_mod.BaselineResult, dict[str, Any]]:
    """The sequential script in the bench process, on the stack's clock; its figures in Azure seconds."""
    me = psutil.Process()
    t = me.cpu_times()
    cpu0 = t.user + t.system
    wall0 = time.monotonic()
    clock = baseline_mod.CloudClock(stack.cloud) if stack.virtual else None
    with stack.cloud.apply():
        res = baseline_mod.run_baseline(
            vm_name=S1_BASELINE_VM,
            resource_group="rg-build",
            gallery_rg="rg-images",
            gallery_name="galBaseline",
            image_name=f"{S1_BASELINE_VM}-def",
            version="1.0.0",
            regions=REGIONS,
            export_account_url=stack.cloud.storage_account_url("stexports"),
            export_container="vhds-baseline",
            time_scale=stack.time_scale,
            timeout_s=_wait_s(stack, cp),
            clock=clock,
        )
    t = me.cpu_times()
    b = res.as_dict()
    b["runWallS"] = round(time.monotonic() - wall0, 3)
    b["clock"] = "virtual" if stack.virtual else "real"
    b["makespanAzureS"] = round(res.makespan_s / stack.time_scale, 1)
    b["ratioToCriticalPath"] = round(res.makespan_s / cp.wall(stack.time_scale), 4)
    b["scriptCpuS"] = round(t.user + t.system - cpu0, 3)
    return res, b


def run_s1(workdir: Path, *, with_baseline: bool, log: Log) -> dict[str, Any]:
    """S1 (one capture through the pipeline) and, in the same cloud afterwards, the baseline script."""
    base = azure_profile()
    vm = _vm(BENCH_WORLD, S1_VM)
    profile = bench_profile(base, vm)
    cp = critical_path(profile, disks_of(vm), regions=len(REGIONS))
    log(f"S1: critical path {cp.total_s:.0f} Azure s (bound by {cp.bound_by}), in virtual time")
    out: dict[str, Any] = {
        "clock": "virtual",
        "copyMBps": round(azure_copy_mbps(profile, vm), 3),
        "policy": policy_env(1.0),
    }
    with running_stack(workdir, BENCH_WORLD, profile, 1.0, log=log, virtual=True) as stack:
        cpu = CpuMeter([stack.devhost.proc.pid] if stack.devhost.proc else [])
        idle = cpu.idle_rate()
        # first capture in a fresh host (pays imports, clients, connections), then one more in the warm host
        for key, vm_name in (("ours", S1_VM), ("oursWarm", S1_WARM_VM)):
            out[key] = ours = _one_capture(stack, vm_name, cp, idle)
            log(
                f"  {key}: {ours['runtimeStatus']} in {ours['makespanAzureS']:.0f} simulated s "
                f"({ours['runWallS']:.1f} s wall), ratio {ours['ratioToCriticalPath']:.3f}, "
                f"{ours['requests']['total']} ARM requests, devhost CPU {ours['devhostCpuS']:.2f} s"
            )
        ours = out["ours"]
        if with_baseline:
            n1 = len(stack.records())
            res, b = _baseline(stack, cp)
            b["requests"] = classify_requests(stack.records()[n1:])
            out["baseline"] = b
            out["oursOverBaseline"] = (
                round(ours["makespanAzureS"] / b["makespanAzureS"], 4) if res.ok else None
            )
            log(
                f"  baseline: ok={res.ok} in {b['makespanAzureS']:.0f} simulated s, ratio "
                f"{b['ratioToCriticalPath']:.3f}, {b['requests']['total']} ARM requests {res.error or ''}"
            )
    return out


def run_longcopy(workdir: Path, copy_hours: float, *, log: Log) -> dict[str, Any]:
    vm = _vm(BENCH_WORLD, S1_VM)
    profile = bench_profile(azure_profile(), vm, copy_hours=copy_hours)
    cp = critical_path(profile, disks_of(vm), regions=len(REGIONS))
    log(
        f"longcopy: {copy_hours:g} h copy of the largest disk; critical path {cp.total_s:.0f} Azure s "
        f"(bound by {cp.bound_by}), in virtual time"
    )
    out: dict[str, Any] = {
        "clock": "virtual",
        "copyHours": copy_hours,
        "copyMBps": round(azure_copy_mbps(profile, vm), 4),
    }
    # The pipeline's default policy, as in S1: its SAS is sized for a copy 30x slower than the
    # expected 60 MB/s (38 h + 1 h for 256 GiB), and a copy that outlives its SAS anyway is restarted.
    out["policy"] = policy_env(1.0)
    with running_stack(workdir, BENCH_WORLD, profile, 1.0, log=log, virtual=True) as stack:
        cpu = CpuMeter([stack.devhost.proc.pid] if stack.devhost.proc else [])
        idle = cpu.idle_rate()
        out["ours"] = ours = _one_capture(stack, S1_VM, cp, idle)
    log(
        f"  ours: {ours['runtimeStatus']} in {ours['makespanAzureS']:.0f} simulated s ({ours['runWallS']:.1f} s "
        f"wall), ratio {ours['ratioToCriticalPath']:.3f}, history max "
        f"{ours['history']['maxEventsPerExecution']} events/execution"
    )
    return out


def run_scale(workdir: Path, counts: list[int], time_scale: float, *, log: Log) -> dict[str, Any]:
    """N concurrent S1 captures of N different VMs in one subscription, throttling on, per N a fresh stack."""
    template = _vm(BENCH_WORLD, S1_VM)
    profile = bench_profile(azure_profile(), template)
    cp = critical_path(profile, disks_of(template), regions=len(REGIONS))
    out: dict[str, Any] = {
        "timeScale": time_scale,
        "criticalPath": cp.as_dict(time_scale),
        "policy": policy_env(time_scale),
        "runs": [],
    }
    single: float | None = None
    for n in counts:
        log(f"scale: {n} concurrent capture(s)")
        wd = workdir / f"n{n}"
        shutil.rmtree(wd, ignore_errors=True)
        world = write_scale_world(wd / "world.json", n)
        run: dict[str, Any] = {"count": n}
        try:
            with running_stack(wd / "stack", world, profile, time_scale, log=log) as stack:
                cpu = CpuMeter([stack.devhost.proc.pid] if stack.devhost.proc else [])
                cloud_cpu = CpuMeter(stack.cloud_pids())
                idle = cpu.idle_rate()
                cpu.start()
                cloud_cpu.start()
                names = scale_vm_names(n)
                first = time.time()
                with ThreadPoolExecutor(max_workers=min(16, n)) as pool:
                    submitted = list(pool.map(stack.submit, names))
                ids = [cid for cid, _ in submitted]
                posted = time.time() - first
                rows = stack.wait(ids, timeout=max(300.0, 40 * cp.wall(time_scale) + 10 * n))
                last = max(r[2] for r in rows.values())
                per = [rows[cid][2] - sent for cid, sent in submitted]
                completed = sum(1 for r in rows.values() if r[0] == "Completed")
                failed_ids = [cid for cid in ids if rows[cid][0] != "Completed"]
                batch = last - first
                run.update(
                    {
                        "completed": completed,
                        "failed": len(ids) - completed,
                        "submitSeconds": round(posted, 3),
                        "batchMakespanWallS": round(batch, 3),
                        "batchMakespanAzureS": round(batch / time_scale, 1),
                        "meanMakespanWallS": round(sum(per) / len(per), 3),
                        "maxMakespanWallS": round(max(per), 3),
                        "batchOverCriticalPath": round(batch / cp.wall(time_scale), 4),
                        **_cpu_figures(cpu.seconds(), idle, batch),
                        "cloudCpuS": cloud_cpu.seconds(),
                        "requests": {
                            **classify_counters(stack.sim("counters")),
                            # the log keeps the last 20,000 records: peaks may miss the start beyond that
                            **peak_rates(stack.records()),
                        },
                        "failures": [stack.status(cid).get("error") for cid in failed_ids[:5]],
                    }
                )
                run["devhostCpuPerCaptureS"] = round(run["devhostCpuS"] / n, 3)
                run["devhostCpuNetPerCaptureS"] = round(run["devhostCpuNetS"] / n, 3)
                run["requestsPerCapture"] = round(run["requests"]["total"] / n, 1)
                hist = stack.probe.per_instance("")
                run["history"] = summarize_history(hist)
        except Exception as exc:  # report what happened at this N and go on with the others
            run["error"] = f"{type(exc).__name__}: {str(exc)[:1500]}"
            log(f"  N={n} did not finish: {run['error'][:300]}")
        if "batchMakespanWallS" in run:
            if n == 1:
                single = run["batchMakespanWallS"]
            if single:
                run["batchOverSingle"] = round(run["batchMakespanWallS"] / single, 4)
            log(
                f"  N={n}: {run['completed']} completed, {run['failed']} failed, batch {run['batchMakespanWallS']:.1f} s "
                f"wall (x{run.get('batchOverSingle', float('nan')):.3f} single), 429s "
                f"{run['requests']['status429Percent']:.2f} %, devhost CPU {run['devhostCpuPerCaptureS']:.2f} s/capture"
            )
        out["runs"].append(run)
    return out
