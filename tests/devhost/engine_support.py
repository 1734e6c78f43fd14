"""Helpers shared by the engine tests: run an Engine on a sample app, summarize histories."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devhost.engine import Engine  # noqa: E402
from devhost.engine.history import EventType  # noqa: E402
from devhost.functions import AppIndex, load_app  # noqa: E402

APPS = Path(__file__).resolve().parent / "apps"


@contextmanager
def running_engine(app: str, workdir: Path, **kwargs: Any) -> Iterator[tuple[Engine, AppIndex, ModuleType]]:
    """Load tests/devhost/apps/<app>, start an Engine on it in ``workdir``, stop it afterwards."""
    index = load_app(APPS / app)
    module = sys.modules["function_app"]
    engine = Engine(index, workdir, **kwargs)
    engine.start()
    try:
        yield engine, index, module
    finally:
        engine.stop()


def summary(history: list[dict[str, Any]]) -> list[str]:
    """Compact, exact description of a history: event type plus the ids and names that matter."""
    out = []
    for ev in history:
        t = EventType(ev["EventType"])
        s = t.name
        if ev["EventId"] != -1:
            s += f"#{ev['EventId']}"
        if t in (EventType.TaskScheduled, EventType.SubOrchestrationInstanceCreated):
            s += f":{ev['Name']}"
        if "TaskScheduledId" in ev:
            s += f"->{ev['TaskScheduledId']}"
        if "TimerId" in ev:
            s += f"->{ev['TimerId']}"
        if t == EventType.EventRaised:
            s += f":{ev['Name']}"
        if t == EventType.ExecutionCompleted:
            s += f":{ev['OrchestrationStatus']}"
        out.append(s)
    return out


def wait_until(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``cond`` with a deadline (never a fixed sleep); return its first truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


def capture_contexts(index: AppIndex, orchestrator: str) -> list[str]:
    """Wrap an orchestrator's handle so every context JSON devhost sends is recorded."""
    info = index.functions[orchestrator]
    original = info.func
    seen: list[str] = []

    def wrapper(**kwargs: Any) -> Any:
        seen.append(kwargs[info.trigger_arg].body)
        return original(**kwargs)

    info.func = wrapper
    return seen
