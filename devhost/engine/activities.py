"""Running one activity work item the way the worker and the extension's TaskActivityShim do.

The activity gets the action's input JSON text through its activityTrigger binding; its return
value becomes ``TaskCompleted.Result`` (``df_dumps`` JSON text). An exception becomes ``TaskFailed``
with the reason and details the extension writes (``devhost.worker_rules.activity_failure``); the SDK
shows the orchestrator ``"{Reason} \\n {Details}"``. A disabled activity does not run: its task fails.
"""

from __future__ import annotations

from collections.abc import Callable

from devhost.engine.history import Event, EventType, event
from devhost.engine.store import ActivityItem
from devhost.functions import AppIndex, FunctionNotFound, call_activity
from devhost.worker_rules import activity_failure, disabled_setting


def run_activity(index: AppIndex, item: ActivityItem, now: Callable[[], float]) -> tuple[Event, bool]:
    """Run the activity; return its completion event (stamped when it finished) and whether it succeeded."""
    try:
        info = index.activity(item.name)
    except FunctionNotFound as exc:
        return _failed(item, now(), str(exc), None), False
    if info.disabled:
        # The extension knows a disabled activity (it is indexed) but has no listener to run it; since
        # extension PR #3472 the task fails instead of being retried forever. Reason text: ours.
        reason = (
            f"Activity function '{item.name}' failed: The function '{item.name}' is disabled "
            f"(app setting {disabled_setting(item.name)})."
        )
        return _failed(item, now(), reason, None), False
    try:
        result = call_activity(info, item.input)
    except Exception as exc:
        reason, details = activity_failure(item.name, exc)
        return _failed(item, now(), reason, details), False
    return event(EventType.TaskCompleted, now(), TaskScheduledId=item.task_id, Result=result), True


def _failed(item: ActivityItem, now: float, reason: str, details: str | None) -> Event:
    return event(EventType.TaskFailed, now, TaskScheduledId=item.task_id, Reason=reason, Details=details)
