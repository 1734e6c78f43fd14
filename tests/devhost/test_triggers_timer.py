"""Timer triggers: NCRONTAB parsing (unit), and a devhost subprocess running the timer sample app.

The sample app appends one JSON line per run to ``TICKS_FILE``; a 1-second schedule fires within a short
deadline, ``runOnStartup`` runs once at start, the admin endpoint runs a timer function on demand (master
key only under ``--require-keys``), and a bad schedule puts its function in error with a clear message.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from devhost.testing import running_devhost
from devhost.triggers.timers import (
    CronSchedule,
    IntervalSchedule,
    ScheduleError,
    build_timer_request,
    parse_schedule,
    timer_info_json,
)

APP = Path(__file__).parent / "apps" / "timer_trigger"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 17 * * * *", "2026-12-01T10:26:48", "2026-12-01T11:17:00"),
        ("0 17 * * * *", "2026-12-01T10:16:59", "2026-12-01T10:17:00"),
        ("*/15 * * * * *", "2026-12-01T10:00:14", "2026-12-01T10:00:15"),
        ("0 */5 * * * *", "2026-12-01T10:04:00", "2026-12-01T10:05:00"),
        ("0 30 9 * * Mon-Fri", "2026-12-05T10:00:00", "2026-12-07T09:30:00"),  # Sat -> Mon
        ("0 0 0 1 Jan *", "2026-06-01T00:00:00", "2027-01-01T00:00:00"),
        ("0 0 12 29 2 *", "2026-03-01T00:00:00", "2028-02-29T12:00:00"),
        ("5/20 * * * * *", "2026-12-01T10:00:06", "2026-12-01T10:00:25"),
        ("0,30 0 10-11 * * *", "2026-12-01T10:00:31", "2026-12-01T11:00:00"),
        ("30 9 * * *", "2026-12-01T09:29:00", "2026-12-01T09:30:00"),  # five fields: no seconds
        ("0 0 0 13 * 5", "2026-12-01T00:00:00", "2027-08-13T00:00:00"),  # Friday the 13th: day AND weekday
    ],
)
def test_cron_next_occurrence(expression: str, after: str, expected: str) -> None:
    schedule = parse_schedule(expression)
    assert isinstance(schedule, CronSchedule)
    assert schedule.next_after(_at(after)) == _at(expected)


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("0 61 * * * *", "minute field has 61, outside 0-59"),
        ("* * * *", "expected 6 fields"),
        ("0 0 0 30 Feb *", "no occurrence"),
        ("0 0 0 * Foo *", "month field has 'Foo'"),
        ("*/0 * * * * *", "step"),
        ("0 0 5-3 * * *", "start is after its end"),
        ("0 0 0 * * 7", "day-of-week field has 7"),
        ("00:00:00", "longer than 00:00:00"),
        ("", "expected 6 fields"),
    ],
)
def test_bad_schedules_are_refused(expression: str, says: str) -> None:
    with pytest.raises(ScheduleError, match=says):
        parse_schedule(expression)


def test_timespan_schedule_and_timer_request() -> None:
    schedule = parse_schedule("00:05:00")
    assert isinstance(schedule, IntervalSchedule)
    assert schedule.next_after(_at("2026-12-01T10:00:00")) == _at("2026-12-01T10:05:00")
    last, nxt = _at("2026-12-01T10:00:00"), _at("2026-12-01T10:05:00")
    req = build_timer_request(timer_info_json(past_due=True, last=last, nxt=nxt, monitor=True))
    assert req.past_due is True
    assert req.schedule_status["Next"] == nxt.isoformat() and req.schedule_status["Last"] == last.isoformat()
    plain = build_timer_request(timer_info_json(past_due=False, last=None, nxt=nxt, monitor=False))
    assert plain.past_due is False and plain.schedule_status == {}


def _ticks(path: Path, function: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [t for t in lines if t["function"] == function]


def _wait_ticks(path: Path, function: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _ticks(path, function)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(
        f"{function} ran {len(_ticks(path, function))} times, expected {count} in {timeout}s"
    )


def test_timer_app_on_devhost(tmp_path: Path) -> None:
    ticks = tmp_path / "ticks.jsonl"
    env = {"TICKS_FILE": str(ticks), "TICK_SCHEDULE": "* * * * * *", "BROKEN_SCHEDULE": "0 61 * * * *"}
    with running_devhost(APP, tmp_path / "dh", env=env, require_keys=True) as dh:
        # the 1-second schedule fires on its own, with the monitor's status
        runs = _wait_ticks(ticks, "every_second", 2)
        assert runs[0]["pastDue"] is False
        assert set(runs[0]["scheduleStatus"]) == {"Last", "Next", "LastUpdated"}
        assert datetime.fromisoformat(runs[1]["scheduleStatus"]["Next"]) > datetime.fromisoformat(
            runs[0]["scheduleStatus"]["Next"]
        )
        # runOnStartup: the yearly function ran once at start, without the monitor's status
        yearly = _wait_ticks(ticks, "yearly", 1)
        assert len(yearly) == 1 and yearly[0]["scheduleStatus"] == {}

        # the admin endpoint: master key only
        url = dh.url("/admin/functions/yearly")
        assert requests.post(url, json={"input": ""}, timeout=10).status_code == 401
        fkey = {"x-functions-key": dh.function_key}
        assert requests.post(url, json={"input": ""}, headers=fkey, timeout=10).status_code == 401
        master = {"x-functions-key": dh.master_key}
        answer = requests.post(url, json={"input": ""}, headers=master, timeout=10)
        assert answer.status_code == 202, answer.text
        assert len(_wait_ticks(ticks, "yearly", 2)) == 2

        # refusals with what to do instead
        r = requests.post(dh.url("/admin/functions/hello"), json={"input": ""}, headers=master, timeout=10)
        assert r.status_code == 400 and "HTTP function" in r.json()["error"]
        r = requests.post(dh.url("/admin/functions/nope"), json={"input": ""}, headers=master, timeout=10)
        assert r.status_code == 404
        r = requests.post(url, data="{", headers=master, timeout=10)
        assert r.status_code == 400

        # the bad schedule: refused at start with the function, the expression and the reason
        r = requests.post(dh.url("/admin/functions/broken"), json={"input": ""}, headers=master, timeout=10)
        assert r.status_code == 404 and "in error" in r.json()["error"]
        log = dh.log_text()
        assert (
            "The 'broken' function is in error: the schedule '0 61 * * * *' (from %BROKEN_SCHEDULE%)" in log
        )
        assert "minute field has 61, outside 0-59" in log
        assert _ticks(ticks, "broken") == []
        # the other functions kept running
        assert requests.get(dh.url("/api/hello"), timeout=10).text == "hello"


def test_unresolved_schedule_setting_is_named(tmp_path: Path) -> None:
    env = {
        "TICKS_FILE": str(tmp_path / "t.jsonl"),
        "TICK_SCHEDULE": "0 0 0 1 Jan *",
        "AzureWebJobs.yearly.Disabled": "true",
    }
    with running_devhost(APP, tmp_path / "dh", env=env) as dh:
        log = dh.log_text()
        assert "The 'broken' function is in error" in log
        assert "refers to app setting 'BROKEN_SCHEDULE', which is not set" in log
        # without --require-keys the admin endpoint is open, as in Core Tools
        r = requests.post(dh.url("/admin/functions/every_second"), json={"input": ""}, timeout=10)
        assert r.status_code == 202
        assert len(_wait_ticks(tmp_path / "t.jsonl", "every_second", 1)) == 1
        # disabled: no runOnStartup, but the admin endpoint still runs it
        assert _ticks(tmp_path / "t.jsonl", "yearly") == []
        r = requests.post(dh.url("/admin/functions/yearly"), json={"input": ""}, timeout=10)
        assert r.status_code == 202
        assert len(_wait_ticks(tmp_path / "t.jsonl", "yearly", 1)) == 1


class _Recorder:
    """Stands in for devhost's Invoker: records the TimerRequest each run gets."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def invoke(self, info: Any, trigger: Any) -> Any:
        self.requests.append(trigger)
        return None


def test_a_clock_jump_fires_once_past_due() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from devhost.functions import FunctionInfo
    from devhost.triggers.timers import TimerTriggers

    clock = [_at("2026-12-01T10:00:00.500")]
    info = FunctionInfo(
        name="tick",
        trigger_type="timerTrigger",
        trigger_binding={
            "type": "timerTrigger",
            "direction": "in",
            "name": "timer",
            "schedule": "*/10 * * * * *",
        },
        bindings=[],
        func=lambda timer: None,
        is_async=False,
    )
    recorder = _Recorder()
    with ThreadPoolExecutor(2) as pool:
        timers = TimerTriggers([info], recorder, pool, lambda: clock[0])  # type: ignore[arg-type]
        assert timers.timers["tick"].next_due == _at("2026-12-01T10:00:10")
        timers.start()
        try:
            clock[0] = _at("2026-12-01T10:00:10.2")  # on time
            deadline = time.monotonic() + 5
            while len(recorder.requests) < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            clock[0] = _at("2026-12-01T10:01:05")  # a jump over five occurrences
            while len(recorder.requests) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.6)  # the scheduler must not make up the missed ones
        finally:
            timers.stop()
    assert [r.past_due for r in recorder.requests] == [False, True]
    assert recorder.requests[1].schedule_status["Next"] == _at("2026-12-01T10:01:10").isoformat()
