"""Durability: SIGKILL the engine's process mid-run, restart it on the same work dir, and check that
every instance finishes with exactly the expected activity executions (at-least-once visible).

The engine runs in a subprocess (tests/devhost/engine_runner.py) on the sample app apps/durable:
- ``blocking_flow``'s first activity blocks on a release file, so the kill lands between the
  activity's start and its completion; after the restart it runs again (2 executions).
- ``timer_flow`` has a 1-hour timer pending at the kill (virtual clock: time cannot jump while
  the blocked activity runs); after the restart the timer fires and the flow completes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.devhost.engine_support import APPS, wait_until

RUNNER = Path(__file__).resolve().parent / "engine_runner.py"
SPEC = {
    "blocked-1": ["blocking_flow", "k1"],
    "timed-1": ["timer_flow", "t1"],
    "blocked-2": ["blocking_flow", "k2"],
}


def _start(workdir: Path, signals: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "DEVHOST_TEST_DIR": str(signals)}
    return subprocess.Popen(
        [
            sys.executable,
            str(RUNNER),
            str(APPS / "durable"),
            str(workdir),
            json.dumps(SPEC),
            "--virtual-clock",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def _timer_pending(db: Path) -> bool:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT COUNT(*) FROM messages WHERE instance_id='timed-1' AND kind='11'"
        ).fetchone()
    return bool(rows[0])


def _executions(signals: Path, key: str) -> int:
    path = signals / f"executions-{key}.log"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_sigkill_mid_activity_and_mid_timer_then_restart(tmp_path: Path) -> None:
    workdir, signals = tmp_path / "work", tmp_path / "signals"
    signals.mkdir()
    first = _start(workdir, signals)
    try:
        wait_until(lambda: (signals / "started-k1-a").exists(), 20, "blocking activity k1-a to start")
        wait_until(lambda: (signals / "started-k2-a").exists(), 20, "blocking activity k2-a to start")
        wait_until(lambda: _timer_pending(workdir / "durable.sqlite3"), 20, "timer_flow's timer")
        assert _executions(signals, "t1-after") == 0
    finally:
        _kill(first)
    assert first.returncode == -signal.SIGKILL

    (signals / "release").touch()
    second = _start(workdir, signals)
    try:
        out, err = second.communicate(timeout=60)
    finally:
        _kill(second)
    assert second.returncode == 0, err
    results = {
        r["id"]: r for r in map(json.loads, [line for line in out.splitlines() if line.startswith("{")])
    }
    assert {k: v["status"] for k, v in results.items()} == {k: "Completed" for k in SPEC}
    assert json.loads(results["blocked-1"]["output"]) == ["done k1-a", "done k1-b"]
    assert json.loads(results["timed-1"]["output"]) == ["done t1-before", "done t1-after"]

    # At-least-once: the activities killed mid-run ran again; nothing else ran twice.
    assert _executions(signals, "k1-a") == 2
    assert _executions(signals, "k2-a") == 2
    assert _executions(signals, "k1-b") == 1
    assert _executions(signals, "k2-b") == 1
    assert _executions(signals, "t1-before") == 1
    assert _executions(signals, "t1-after") == 1


def test_restart_after_clean_finish_runs_nothing_again(tmp_path: Path) -> None:
    workdir, signals = tmp_path / "work", tmp_path / "signals"
    signals.mkdir()
    (signals / "release").touch()
    for _ in range(2):
        proc = _start(workdir, signals)
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            _kill(proc)
        assert proc.returncode == 0, err
        assert out.count('"status": "Completed"') == len(SPEC)
    for key in ("k1-a", "k1-b", "k2-a", "k2-b", "t1-before", "t1-after"):
        assert _executions(signals, key) == 1, key
