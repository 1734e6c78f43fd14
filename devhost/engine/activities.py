"""Running one activity work item the way the worker and the extension's TaskActivityShim do.

The activity gets the action's input JSON text through its activityTrigger binding; its return
value becomes ``TaskCompleted.Result`` (``df_dumps`` JSON text). An exception becomes
``TaskFailed`` with ``Reason = "Activity function '<name>' failed: <Type>: <message>"`` and the
Python traceback as ``Details``; the SDK shows the orchestrator ``"{Reason} \\n {Details}"``.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable

from devhost.engine.history import Event, EventType, event
from devhost.engine.store import ActivityItem
from devhost.functions import AppIndex, FunctionNotFound, call_activity


def run_activity(index: AppIndex, item: ActivityItem, now: Callable[[], float]) -> tuple[Event, bool]:
    """Run the activity; return its completion event (stamped when it finished) and whether it succeeded."""
    try:
        info = index.activity(item.name)
    except FunctionNotFound as exc:
        return _failed(item, now(), str(exc), None), False
    try:
        result = call_activity(info, item.input)
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        details = "".join(traceback.format_exception(exc))
        return _failed(item, now(), f"Activity function '{item.name}' failed: {message}", details), False
    return event(EventType.TaskCompleted, now(), TaskScheduledId=item.task_id, Result=result), True


def _failed(item: ActivityItem, now: float, reason: str, details: str | None) -> Event:
    return event(EventType.TaskFailed, now, TaskScheduledId=item.task_id, Reason=reason, Details=details)
