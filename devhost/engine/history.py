"""Durable Task history events as the extension serializes them for the SDK.

PascalCase keys, integer ``EventType``, the four mandatory keys on every event, ISO-8601 UTC
timestamps with a ``Z``. Payloads (``Input``, ``Result``) are JSON text held in strings.
The event shapes and their protocol are described in docs/devhost-engine.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

Event = dict[str, Any]


class EventType(IntEnum):
    ExecutionStarted = 0
    ExecutionCompleted = 1
    ExecutionFailed = 2
    ExecutionTerminated = 3
    TaskScheduled = 4
    TaskCompleted = 5
    TaskFailed = 6
    SubOrchestrationInstanceCreated = 7
    SubOrchestrationInstanceCompleted = 8
    SubOrchestrationInstanceFailed = 9
    TimerCreated = 10
    TimerFired = 11
    OrchestratorStarted = 12
    OrchestratorCompleted = 13
    EventSent = 14
    EventRaised = 15
    ContinueAsNew = 16
    GenericEvent = 17
    HistoryState = 18
    ExecutionSuspended = 19
    ExecutionResumed = 20


class ActionType(IntEnum):
    CallActivity = 0
    CallActivityWithRetry = 1
    CallSubOrchestrator = 2
    CallSubOrchestratorWithRetry = 3
    ContinueAsNew = 4
    CreateTimer = 5
    WaitForExternalEvent = 6
    CallEntity = 7
    CallHttp = 8
    SignalEntity = 9
    ScheduledSignalEntity = 10
    WhenAny = 11
    WhenAll = 12


TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def fmt_time(ts: float | datetime) -> str:
    """UTC timestamp as the SDK's test builder and the extension write it (6-digit fraction, Z)."""
    dt = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    return dt.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def fmt_status_time(ts: float) -> str:
    """Status-API time: ``yyyy-MM-ddTHH:mm:ssZ``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float:
    """Parse an ISO time (``fireAt``, query bounds); a naive time is taken as UTC (the SDK appends Z blindly)."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def event(event_type: EventType, ts: float, event_id: int = -1, **fields: Any) -> Event:
    ev: Event = {
        "EventType": int(event_type),
        "EventId": event_id,
        "IsPlayed": False,
        "Timestamp": fmt_time(ts),
    }
    ev.update(fields)
    return ev


def event_name(ev: Event) -> str:
    try:
        return EventType(ev["EventType"]).name
    except ValueError:
        return f"EventType{ev['EventType']}"
