"""The bench's outputs: the summary table (text), the result JSON and the PNG plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.migration import summary as migration_summary

TARGETS = {
    "ratioToCriticalPath": 1.03,
    "requestsPerCapture": 100,
    "historyEventsLongCopy": 400,
    "scaleFailed": 0,
    "scaleThrottledPercent": 1.0,
    "scaleBatchOverSingle": 1.1,
    "cpuPerCaptureS": 0.5,
}


def _f(v: Any, fmt: str = "{:.3f}") -> str:
    if v is None:
        return "-"
    if isinstance(v, int | float):
        return fmt.format(v)
    return str(v)


def _hours(azure_s: Any) -> str:
    return "-" if azure_s is None else f"{azure_s / 3600:.2f} h"


def _mode(scenario: dict[str, Any]) -> str:
    if scenario.get("clock") == "virtual":
        return "virtual time (figures in simulated seconds, read from the one clock)"
    return f"time scale {scenario.get('timeScale', 0):g}"


def _check(ok: bool | None) -> str:
    return "" if ok is None else ("ok" if ok else "MISSED")


def summary_table(result: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    s1 = result.get("scenarios", {}).get("S1")
    if s1 and "ours" in s1:
        ours, base = s1["ours"], s1.get("baseline")
        cp = ours["criticalPath"]
        add(f"S1: Linux VM, 128 + 2x256 GiB, 3 regions, VHD export; {_mode(s1)}")
        add(f"  {'':16}{'makespan (Azure)':>18}{'wall s':>9}{'x crit.path':>13}{'ARM req':>9}"
            f"{'reads':>7}{'writes':>7}{'dels':>6}{'polls':>7}{'429s':>6}{'CPU s':>8}{'history':>9}")  # fmt: skip
        add(
            f"  {'critical path':16}{_hours(cp['total_s']):>18}{_f(None if s1.get('clock') == 'virtual' else cp.get('total_wall_s'), '{:.1f}'):>9}{'1.000':>13}"
        )
        rows = [("ours", ours, ours.get("devhostCpuS"), ours["history"]["maxEventsPerExecution"])]
        warm = s1.get("oursWarm")
        if warm:
            rows.append(
                ("ours (warm host)", warm, warm.get("devhostCpuS"), warm["history"]["maxEventsPerExecution"])
            )
        if base:
            rows.append(("baseline", base, base.get("scriptCpuS"), None))
        for name, r, cpu, hist in rows:
            q = r["requests"]
            add(
                f"  {name:16}{_hours(r['makespanAzureS']):>18}{_f(r.get('runWallS', r.get('makespanWallS')), '{:.1f}'):>9}"
                f"{_f(r['ratioToCriticalPath']):>13}{q['total']:>9}{q['reads']:>7}{q['writes']:>7}"
                f"{q['deletes']:>6}{q['polls']:>7}{q['status429']:>6}{_f(cpu, '{:.2f}'):>8}{_f(hist, '{}'):>9}"
            )
        if s1.get("oursOverBaseline") is not None:
            add(f"  ours / baseline makespan: {s1['oursOverBaseline']:.3f}")
        add(
            f"  critical path bound by {cp['bound_by']}; ours stage timings (Azure s): {ours['stageTimingsAzureS']}"
        )
        add(
            f"  devhost+app CPU {_f(ours.get('devhostCpuS'), '{:.2f}')} s, of which "
            f"{_f(ours.get('devhostCpuNetS'), '{:.2f}')} s above devhost's idle rate "
            f"({_f(ours.get('devhostIdleCpuPerS'), '{:.3f}')} CPU-s/s); history = largest execution's events"
        )
        add(
            f"  targets: makespan <= {TARGETS['ratioToCriticalPath']} x crit.path "
            f"{_check(ours['ratioToCriticalPath'] <= TARGETS['ratioToCriticalPath'])}; "
            f"<= {TARGETS['requestsPerCapture']} ARM requests "
            f"{_check(ours['requests']['total'] <= TARGETS['requestsPerCapture'])}; "
            f"devhost+app CPU <= {TARGETS['cpuPerCaptureS']} s "
            f"{_check(min(r[2] for r in rows[: 2 if warm else 1]) <= TARGETS['cpuPerCaptureS'])} (best of cold/warm)"
        )
    lc = result.get("scenarios", {}).get("longcopy")
    if lc and "ours" in lc:
        o = lc["ours"]
        h = o["history"]
        add("")
        add(f"longcopy: {lc['copyHours']:g} h VHD copy of the largest disk; {_mode(lc)}")
        add(
            f"  {o['runtimeStatus']}: makespan {_hours(o['makespanAzureS'])} vs critical path "
            f"{_hours(o['criticalPath']['total_s'])} -> x{o['ratioToCriticalPath']:.3f}; "
            f"{o['requests']['total']} ARM requests; devhost CPU {o['devhostCpuS']:.2f} s; "
            f"{_f(o.get('runWallS', o.get('makespanWallS')), '{:.1f}')} s wall"
        )
        add(
            f"  history: max {h['maxEventsPerExecution']} events in one execution, "
            f"max {h['maxTotalEventsPerInstance']} over all executions of one instance "
            f"(max {h.get('maxExecutionsPerInstance')} executions); target <= {TARGETS['historyEventsLongCopy']} "
            f"{_check(h['maxEventsPerExecution'] <= TARGETS['historyEventsLongCopy'])}"
        )
    sc = result.get("scenarios", {}).get("scale")
    if sc:
        add("")
        add(
            f"scale: N concurrent S1 captures, one subscription, throttling on; time scale {sc['timeScale']:g}"
        )
        add(f"  {'N':>5}{'done':>6}{'failed':>7}{'429 %':>8}{'req/capt':>9}{'batch wall s':>13}"
            f"{'batch/single':>13}{'batch/crit':>11}{'CPU s/capt':>11}{'net':>6}{'hist max':>9}{'peak r/w per s':>16}")  # fmt: skip
        for r in sc["runs"]:
            if "error" in r and "completed" not in r:
                add(f"  {r['count']:>5}  did not finish: {r['error'][:120]}")
                continue
            add(
                f"  {r['count']:>5}{r['completed']:>6}{r['failed']:>7}{r['requests']['status429Percent']:>8.2f}"
                f"{r['requestsPerCapture']:>9.1f}{r['batchMakespanWallS']:>13.1f}{_f(r.get('batchOverSingle')):>13}"
                f"{r['batchOverCriticalPath']:>11.3f}{r['devhostCpuPerCaptureS']:>11.2f}"
                f"{_f(r.get('devhostCpuNetPerCaptureS'), '{:.2f}'):>6}"
                f"{r['history']['maxEventsPerExecution']:>9}"
                f"{r['requests'].get('peakReadsPerWallS', '-'):>10}/{r['requests'].get('peakWritesPerWallS', '-')}"
            )
    mig = result.get("scenarios", {}).get("migration")
    if mig:
        lines += migration_summary(mig)
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return path


def write_plot(result: dict[str, Any], path: Path) -> Path | None:
    """Bars: critical path / ours / baseline (Azure hours); lines: scale batch/single and 429 %."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scen = result.get("scenarios", {})
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ax = axes[0]
    labels: list[str] = []
    values: list[float] = []
    colors: list[str] = []
    for key in ("S1", "longcopy"):
        s = scen.get(key)
        if not s or "ours" not in s:
            continue
        labels += [f"{key}\ncritical path", f"{key}\nours"]
        values += [s["ours"]["criticalPath"]["total_s"] / 3600, s["ours"]["makespanAzureS"] / 3600]
        colors += ["#999999", "#1f77b4"]
        if s.get("baseline", {}).get("ok"):
            labels.append(f"{key}\nbaseline")
            values.append(s["baseline"]["makespanAzureS"] / 3600)
            colors.append("#d62728")
    if values:
        ax.bar(range(len(values)), values, color=colors)
        ax.set_xticks(range(len(values)), labels, fontsize=8)
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("makespan (simulated Azure hours)")
    ax.set_title("Makespan vs critical path")
    ax = axes[1]
    runs = [r for r in (scen.get("scale") or {}).get("runs", []) if "batchMakespanWallS" in r]
    if runs:
        ns = [r["count"] for r in runs]
        ax.plot(
            ns,
            [r.get("batchOverSingle") or float("nan") for r in runs],
            "o-",
            label="batch / single makespan",
        )
        ax.plot(ns, [r["batchOverCriticalPath"] for r in runs], "s-", label="batch / critical path")
        ax.set_xscale("log")
        ax.set_xlabel("concurrent captures")
        ax.set_ylabel("ratio")
        ax2 = ax.twinx()
        ax2.plot(ns, [r["requests"]["status429Percent"] for r in runs], "^--", color="#d62728", label="429 %")
        ax2.set_ylabel("requests throttled (%)")
        ax2.set_ylim(0, max(1.0, 1.2 * max(r["requests"]["status429Percent"] for r in runs)))
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="upper left")
    ax.set_title("Scale (throttling on)")
    fig.suptitle(
        f"capture bench {result.get('timestamp', '')} on {result.get('machine', {}).get('cpus', '?')} CPUs"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
