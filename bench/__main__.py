"""``python -m bench`` (``make bench``): run the scenarios, write results/<timestamp>.json + .png, print a table."""

from __future__ import annotations

import argparse
import platform
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import psutil

from bench import migration, report, scenarios
from bench.profile import load_profile_doc

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
WORKDIR = REPO / ".azsim" / "bench"  # scratch: git-ignored, removed by `make clean`
# S1, baseline and longcopy run in virtual time (one simulated clock; no time scale). Scale runs
# stay on the real clock: they play S1 in ~130 s, as N captures' CPU (about 2 s each here) must fit
# on 2 shared cores, or the batch measures the machine, not the pipeline.
SCALE_TIME_SCALE = 0.005


def _counts(text: str) -> list[int]:
    try:
        counts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,10,50,200, got {text!r}") from None
    if not counts or any(c < 1 for c in counts):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return counts


def _log(msg: str) -> None:
    print(msg, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--scenario", choices=["S1", "baseline", "longcopy", "scale", "migration", "all"], default="all",
                    help="S1 = a capture in a fresh host + one in the warm host; baseline = S1 + the sequential script")  # fmt: skip
    ap.add_argument("--scale-counts", type=_counts, default=[1, 10, 50, 200], help="default 1,10,50,200")
    ap.add_argument("--scale-time-scale", type=float, default=SCALE_TIME_SCALE,
                    help=f"time scale of the scale runs, on the real clock (default {SCALE_TIME_SCALE})")  # fmt: skip
    ap.add_argument("--migration-images", type=int, default=migration.MIGRATION_IMAGES,
                    help=f"managed images in the migration scenario (default {migration.MIGRATION_IMAGES})")  # fmt: skip
    ap.add_argument("--out", type=Path, default=RESULTS, help="results directory (default bench/results)")
    ns = ap.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every started cloud and devhost is stopped on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if ns.scale_time_scale <= 0:
        ap.error(
            f"--scale-time-scale must be a positive number of wall seconds per Azure second, got {ns.scale_time_scale}"
        )

    stamp = time.strftime("%Y%m%dT%H%M%S")
    result: dict[str, Any] = {
        "timestamp": stamp,
        "machine": {
            "cpus": psutil.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadAverageAtStart": [round(x, 2) for x in psutil.getloadavg()],
        },
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(ns).items()},
        "profileDoc": load_profile_doc(),
        "targets": report.TARGETS,
        "scenarios": {},
    }
    which = ns.scenario
    failed = False
    started = time.monotonic()
    try:
        if which in ("S1", "baseline", "all"):
            result["scenarios"]["S1"] = scenarios.run_s1(
                WORKDIR / "s1", with_baseline=which != "S1", log=_log
            )
        if which in ("longcopy", "all"):
            hours = float(load_profile_doc().get("longcopy", {}).get("copyHours", 24))
            result["scenarios"]["longcopy"] = scenarios.run_longcopy(WORKDIR / "longcopy", hours, log=_log)
        if which in ("migration", "all"):
            result["scenarios"]["migration"] = migration.run_migration(
                WORKDIR / "migration", log=_log, n=ns.migration_images
            )
        if which in ("scale", "all"):
            result["scenarios"]["scale"] = scenarios.run_scale(
                WORKDIR / "scale", ns.scale_counts, ns.scale_time_scale, log=_log
            )
    except KeyboardInterrupt:
        _log("interrupted: writing what was measured so far")
        failed = True
    except Exception:
        _log("a scenario failed:\n" + traceback.format_exc())
        result["error"] = traceback.format_exc()[-3000:]
        failed = True
    result["benchWallS"] = round(time.monotonic() - started, 1)
    json_path = report.write_json(result, ns.out / f"{stamp}.json")
    png_path = report.write_plot(result, ns.out / f"{stamp}.png")
    _log("")
    _log(report.summary_table(result))
    _log(f"\nresults: {json_path}\nplot:    {png_path}\n(bench took {result['benchWallS']:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
