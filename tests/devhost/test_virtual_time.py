"""Virtual time on devhost's engine: holds let an input win a race, activity sleeps pass in virtual time."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.devhost.engine_support import running_engine


def test_an_event_raised_under_a_hold_wins_the_race_against_a_two_day_timer(tmp_path: Path) -> None:
    with running_engine("race", tmp_path, virtual_clock=True) as (engine, _, _m):
        before = engine.now()
        t0 = time.monotonic()
        with engine.hold_clock():
            iid = engine.start_new("approval", None, None)
            time.sleep(0.5)  # the approver is slow in wall time: virtual time stands still meanwhile
            assert (engine.now() - before).total_seconds() == 0
            engine.raise_event(iid, "approve", '"alice"')
        rec = engine.wait_for(iid, 10)
        wall = time.monotonic() - t0
        engine.run_until_idle(5)
        # The instance finished at the moment of the event; its 2-day timer went with it.
        assert (engine.now() - before).total_seconds() == 0
    assert json.loads(rec.output or "") == {"result": "approved", "by": "alice"}
    assert wall < 5


def test_without_a_hold_the_timer_wins_at_once_and_the_clock_stands_still_otherwise(tmp_path: Path) -> None:
    with running_engine("race", tmp_path, virtual_clock=True) as (engine, _, _m):
        before = engine.now()
        time.sleep(0.2)
        assert engine.now() == before  # virtual time never moves with wall time
        iid = engine.start_new("approval", None, None)
        rec = engine.wait_for(iid, 10)
        assert (engine.now() - before).total_seconds() == 2 * 86400
    assert json.loads(rec.output or "") == {"result": "timed out"}


def test_an_activity_sleep_passes_in_virtual_time(tmp_path: Path) -> None:
    with running_engine("race", tmp_path, virtual_clock=True) as (engine, _, _m):
        iid = engine.start_new("sleepy", None, None)
        rec = engine.wait_for(iid, 10)
    out = json.loads(rec.output or "")
    assert out["virtualSeconds"] == 600  # ten 60-s sleeps, exactly, in virtual time
    assert out["slept"] < 2  # and almost no wall time


def test_explicit_advance_moves_time_even_when_work_is_runnable(tmp_path: Path) -> None:
    with running_engine("race", tmp_path, virtual_clock=True) as (engine, _, _m):
        before = engine.now()
        with engine.hold_clock():
            engine.advance_clock(90)
            assert (engine.now() - before).total_seconds() == 90


def test_a_sleep_in_a_thread_the_activity_started_passes_in_virtual_time(tmp_path: Path) -> None:
    with running_engine("race", tmp_path, virtual_clock=True) as (engine, _, _m):
        rec = engine.wait_for(engine.start_new("sleepy_thread", None, None), 15)
    assert json.loads(rec.output or "") == 300


def test_call_at_is_an_event_the_virtual_clock_skips_to(tmp_path: Path) -> None:
    import threading

    fired: list[float] = []
    done = threading.Event()
    with running_engine("race", tmp_path, virtual_clock=True) as (engine, _, _m):
        start = engine.clock.timestamp()

        def fire() -> None:
            fired.append(engine.clock.timestamp())
            done.set()

        engine.call_at(start + 3600, fire)
        assert done.wait(5)
        engine.run_until_idle(5)
    assert fired == [start + 3600]


def test_activities_queued_behind_sleeping_workers_do_not_stop_the_clock(tmp_path: Path) -> None:
    # One worker, two activities that sleep: while the first sleeps in virtual time the second waits for
    # the worker, which only a skip can free (queued work must not count as runnable then).
    with running_engine("race", tmp_path, virtual_clock=True, max_concurrent_activities=1) as (engine, _, _m):
        before = engine.now()
        ids = [engine.start_new("sleepy", None, None) for _ in range(2)]
        outs = [json.loads(engine.wait_for(i, 15).output or "") for i in ids]
        assert (engine.now() - before).total_seconds() == 1200  # one after the other on the one worker
    # Each waited its own 600 s; the second also waited for the worker, by as much of the first's nap
    # as was left when it started (the test starts them one after the other, so on a loaded machine the
    # clock may already have moved a step before the second one exists).
    first, second = sorted(o["virtualSeconds"] for o in outs)
    assert first == 600 and 600 <= second <= 1200, (first, second)
