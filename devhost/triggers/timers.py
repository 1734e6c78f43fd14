"""Timer triggers: run ``timerTrigger`` functions on their NCRONTAB schedule, like the host's timer extension.

Schedules, as the host reads the binding's ``schedule``:

- NCRONTAB with six fields ``{second} {minute} {hour} {day} {month} {day-of-week}`` (five fields are read
  as ``{minute} ...`` with second 0, as NCrontab does). Each field takes ``*``, a value, a range ``a-b``,
  a step ``*/n``, ``a-b/n`` or ``a/n``, and comma lists of those; months ``Jan``-``Dec`` and days
  ``Sun``-``Sat`` by name (case-insensitive), day-of-week 0-6 with Sunday 0. Day and day-of-week must both
  match (NCrontab's rule, not Vixie cron's "either"). Times are UTC (devhost does not read
  ``WEBSITE_TIME_ZONE``).
- a TimeSpan ``[d.]hh:mm:ss``: every interval from the start (the host allows this on dedicated plans).
- ``%SETTING%`` references are resolved from app settings first.

A schedule that does not parse, or never fires, puts that function "in error" at start with an ERROR log
naming the function, the expression and what is wrong; the other functions run (as the host does).

Each invocation gets the ``TimerRequest`` the worker builds from the host's ``TimerInfo`` JSON:
``past_due`` is True when the scheduler woke up after the *next* occurrence had passed too (the process
was paused, or the virtual clock jumped); missed occurrences collapse into that one invocation.
``schedule_status`` holds ``Last``/``Next``/``LastUpdated`` when ``useMonitor`` is on (the default), kept
in memory only: devhost does not persist the monitor's state, so occurrences missed while devhost was
stopped are not made up at the next start. ``runOnStartup`` runs the function once when devhost starts.
Invocations of one function never overlap: an occurrence due while the previous one still runs is
skipped (logged), as the host's singleton lock makes it wait.

``TimerTriggers.run_now`` is what the admin endpoint (``POST /admin/functions/{name}``) calls.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.functions import meta

from devhost.functions import FunctionInfo
from devhost.settings import SettingsError, resolve_binding_value
from devhost.triggers.bindings import Invoker

log = logging.getLogger("devhost.timers")


class ScheduleError(ValueError):
    """A timer schedule that cannot be read, or that never fires."""


_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1
    )
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# name, lowest, highest, value names
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
)
_TIMESPAN = re.compile(r"^(?:(?P<d>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2})$")
_SEARCH_YEARS = 5


def _value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    key = text.lower()
    if key in names:
        return names[key]
    if not text.isdigit():
        raise ScheduleError(f"the {name} field has '{text}', which is not a number from {low} to {high}")
    value = int(text)
    if not low <= value <= high:
        raise ScheduleError(f"the {name} field has {value}, outside {low}-{high}")
    return value


def _parse_item(item: str, spec: tuple[str, int, int, dict[str, int]]) -> set[int]:
    name, low, high, names = spec
    base, _, step_text = item.partition("/")
    step = 1
    if step_text:
        if not step_text.isdigit() or int(step_text) == 0:
            raise ScheduleError(f"the {name} field has the step '/{step_text}'; a step is a number above 0")
        step = int(step_text)
    if base == "*":
        start, end = low, high
    elif "-" in base:
        a, _, b = base.partition("-")
        start, end = _value(a, name, low, high, names), _value(b, name, low, high, names)
        if start > end:
            raise ScheduleError(f"the {name} field has the range '{base}', whose start is after its end")
    else:
        start = _value(base, name, low, high, names)
        end = high if step_text else start
    return set(range(start, end + 1, step))


def _parse_field(text: str, spec: tuple[str, int, int, dict[str, int]]) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ScheduleError(f"the {spec[0]} field '{text}' has an empty list item")
        values |= _parse_item(item, spec)
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """An NCRONTAB schedule; ``next_after(t)`` is the first occurrence strictly after ``t``."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        parts = expression.split()
        if len(parts) == 5:
            parts = ["0", *parts]
        if len(parts) != 6:
            raise ScheduleError(
                f"expected 6 fields '{{second}} {{minute}} {{hour}} {{day}} {{month}} {{day-of-week}}' "
                f"(e.g. '0 */5 * * * *'), got {len(expression.split())}"
            )
        s, mi, h, d, mo, w = (_parse_field(p, spec) for p, spec in zip(parts, _FIELDS, strict=True))
        return cls(expression, s, mi, h, d, mo, w)

    def _day_ok(self, t: datetime) -> bool:
        # Python: Monday 0 .. Sunday 6; NCRONTAB: Sunday 0 .. Saturday 6
        return t.day in self.days and (t.weekday() + 1) % 7 in self.weekdays

    def next_after(self, after: datetime) -> datetime | None:
        t = after.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        limit = t + timedelta(days=366 * _SEARCH_YEARS)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0)
            elif not self._day_ok(t):
                t = (t + timedelta(days=1)).replace(hour=0, minute=0, second=0)
            elif t.hour not in self.hours:
                t = (t + timedelta(hours=1)).replace(minute=0, second=0)
            elif t.minute not in self.minutes:
                t = (t + timedelta(minutes=1)).replace(second=0)
            elif t.second not in self.seconds:
                t = t + timedelta(seconds=1)
            else:
                return t
        return None


@dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule: every ``interval`` from the start."""

    expression: str
    interval: timedelta

    def next_after(self, after: datetime) -> datetime | None:
        return after + self.interval


Schedule = CronSchedule | IntervalSchedule


def parse_schedule(expression: str) -> Schedule:
    """An NCRONTAB expression or a TimeSpan; ``ScheduleError`` says what is wrong, and when it never fires."""
    text = expression.strip()
    m = _TIMESPAN.match(text)
    schedule: Schedule
    if m:
        seconds = int(m.group("d") or 0) * 86400 + int(m.group("h")) * 3600 + int(m.group("m")) * 60
        seconds += int(m.group("s"))
        if seconds <= 0:
            raise ScheduleError("a TimeSpan schedule must be longer than 00:00:00")
        schedule = IntervalSchedule(text, timedelta(seconds=seconds))
    else:
        schedule = CronSchedule.parse(text)
        if schedule.next_after(datetime.now(UTC)) is None:
            raise ScheduleError(f"it has no occurrence in the next {_SEARCH_YEARS} years (e.g. 30 February)")
    return schedule


def timer_info_json(*, past_due: bool, last: datetime | None, nxt: datetime | None, monitor: bool) -> str:
    """The host's ``TimerInfo`` JSON, which the worker's converter turns into ``func.TimerRequest``."""
    status = None
    if monitor:
        status = {
            "Last": (last or datetime.min.replace(tzinfo=UTC)).isoformat(),
            "Next": nxt.isoformat() if nxt else None,
            "LastUpdated": (last or datetime.now(UTC)).isoformat(),
        }
    return json.dumps({"Schedule": {"AdjustForDST": True}, "ScheduleStatus": status, "IsPastDue": past_due})


def build_timer_request(info_json: str) -> Any:
    converter = meta.get_binding_registry().get("timerTrigger")
    return converter.decode(meta.Datum(info_json, "json"), trigger_metadata={})


@dataclass
class _Timer:
    info: FunctionInfo
    schedule: Schedule
    monitor: bool
    next_due: datetime
    last: datetime | None = None
    running: threading.Lock = field(default_factory=threading.Lock)


class TimerTriggers:
    """All timer functions of an app on one scheduler thread; invocations run on the host's pool."""

    def __init__(
        self,
        functions: list[FunctionInfo],
        invoker: Invoker,
        pool: ThreadPoolExecutor,
        now: Callable[[], datetime],
        *,
        after_invoke: Callable[[Any], None] | None = None,
    ) -> None:
        self.invoker = invoker
        self.pool = pool
        self.now = now
        self.after_invoke = after_invoke
        self.timers: dict[str, _Timer] = {}
        self.errors: dict[str, str] = {}  # function name -> why it is in error
        self._startup: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for info in functions:
            self._add(info)

    def _add(self, info: FunctionInfo) -> None:
        b = info.trigger_binding
        raw = str(b.get("schedule", ""))
        try:
            expression = resolve_binding_value(raw, function_name=info.name, field_name="schedule")
        except SettingsError as exc:
            self.errors[info.name] = why = str(exc)
            log.error("The '%s' function is in error: %s. It will not run.", info.name, why)
            return
        try:
            schedule = parse_schedule(expression)
        except ScheduleError as exc:
            shown = repr(expression) + (f" (from {raw})" if raw != expression else "")
            why = f"the schedule {shown} is not a valid NCRONTAB expression or TimeSpan: {exc}"
            self.errors[info.name] = why
            log.error("The '%s' function is in error: %s. It will not run.", info.name, why)
            return
        start = self.now()
        nxt = schedule.next_after(start)
        assert nxt is not None  # parse_schedule refused schedules that never fire
        self.timers[info.name] = _Timer(info, schedule, bool(b.get("useMonitor", True)), nxt)
        if b.get("runOnStartup"):
            self._startup.append(info.name)

    def start(self) -> None:
        for name, t in self.timers.items():
            log.info("timer trigger %s: schedule '%s', next %s", name, t.schedule.expression, t.next_due)
        for name in self._startup:
            self._fire(self.timers[name], past_due=False, why="runOnStartup")
        if self.timers:
            self._thread = threading.Thread(target=self._loop, name="devhost-timers", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = self.now()
            wait = 0.5
            for t in self.timers.values():
                if t.next_due <= now:
                    after = t.schedule.next_after(t.next_due)
                    past_due = after is not None and after <= now
                    t.last, t.next_due = t.next_due, t.schedule.next_after(now) or now + timedelta(days=3650)
                    self._fire(t, past_due=past_due, why="schedule")
                wait = min(wait, max(0.01, (t.next_due - now).total_seconds()))
            # Short waits: the virtual clock can jump while we sleep.
            self._stop.wait(wait)

    def run_now(self, name: str) -> bool:
        """Invoke a timer function now (admin endpoint); False when it is not a running timer function."""
        t = self.timers.get(name)
        if t is None:
            return False
        self._fire(t, past_due=False, why="admin request", overlap=True)
        return True

    def _fire(self, t: _Timer, *, past_due: bool, why: str, overlap: bool = False) -> None:
        payload = timer_info_json(past_due=past_due, last=t.last, nxt=t.next_due, monitor=t.monitor)
        if not overlap and t.running.locked():
            log.warning(
                "timer trigger %s: skipped an occurrence, the previous run is still going", t.info.name
            )
            return
        self.pool.submit(self._invoke, t, payload, why, overlap)

    def _invoke(self, t: _Timer, payload: str, why: str, overlap: bool) -> None:
        lock = threading.Lock() if overlap else t.running
        if not lock.acquire(blocking=False):
            return
        try:
            log.info("timer trigger %s: running (%s)", t.info.name, why)
            result = self.invoker.invoke(t.info, build_timer_request(payload))
            if self.after_invoke is not None:
                self.after_invoke(result)
            log.info("timer trigger %s: succeeded", t.info.name)
        except Exception as exc:
            log.error("timer trigger %s: function failed: %s: %s", t.info.name, type(exc).__name__, exc)
        finally:
            lock.release()
