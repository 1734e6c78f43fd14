"""Event Grid deliveries of VM deallocations: parse both schemas, keep only what starts a capture.

A subscription or resource-group system topic emits ``Microsoft.Resources.ResourceActionSuccess``
for every successful POST action on a resource; the one we want has
``data.operationName == "Microsoft.Compute/virtualMachines/deallocate/action"`` and is raised when the
deallocation *completed* (reference: azure-behaviours-verified.md §Q5). Everything else (other event
types, other operations, failed or canceled actions, events without a VM id) is ignored with a reason.

Both schemas carry the same ``data``:

- Event Grid schema: ``{"id", "topic", "subject", "eventType", "eventTime", "data", "dataVersion", …}``,
  delivered as a JSON array;
- CloudEvents 1.0: ``{"specversion", "id", "source", "subject", "type", "time", "data"}``, one object or a
  batch array.

The VM's id is ``data.resourceUri`` (falling back to ``subject``); ids are compared case-insensitively
(the casing of ``resourceGroups`` varies between samples) and normalised by ``ResourceId``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from shared.ids import ResourceId

RESOURCE_ACTION_SUCCESS = "Microsoft.Resources.ResourceActionSuccess"
DEALLOCATE_OPERATION = "Microsoft.Compute/virtualMachines/deallocate/action"
VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"

Schema = Literal["eventgrid", "cloudevents"]


@dataclass(frozen=True)
class DeallocationEvent:
    """A VM deallocation that may start a capture."""

    event_id: str
    vm_id: str  # normalised ARM id of the VM
    event_time: datetime  # UTC, aware
    schema: Schema
    correlation_id: str | None = None
    topic: str | None = None

    @property
    def event_time_iso(self) -> str:
        return self.event_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class IgnoredEvent:
    """An event this app does not act on, and why (logged at debug level)."""

    event_id: str | None
    event_type: str | None
    reason: str


def parse_time(value: Any) -> datetime | None:
    """An event time (ISO-8601 text, up to 7 fractional digits, or a datetime) as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def schema_of(event: dict[str, Any]) -> Schema:
    return "cloudevents" if "specversion" in event else "eventgrid"


def parse_event(event: Any) -> DeallocationEvent | IgnoredEvent:
    """Classify one event object (either schema)."""
    if not isinstance(event, dict):
        return IgnoredEvent(None, None, "not a JSON object")
    schema = schema_of(event)
    event_id = event.get("id")
    event_type = event.get("type") if schema == "cloudevents" else event.get("eventType")
    eid = str(event_id) if event_id is not None else None
    etype = str(event_type) if event_type is not None else None
    if etype != RESOURCE_ACTION_SUCCESS:
        return IgnoredEvent(eid, etype, f"event type {etype!r} is not {RESOURCE_ACTION_SUCCESS}")
    data = event.get("data")
    if not isinstance(data, dict):
        return IgnoredEvent(eid, etype, "the event has no data object")
    operation = str(data.get("operationName") or "")
    if operation.lower() != DEALLOCATE_OPERATION.lower():
        return IgnoredEvent(eid, etype, f"operation {operation!r} is not {DEALLOCATE_OPERATION}")
    status = data.get("status")
    if status is not None and str(status).lower() != "succeeded":
        return IgnoredEvent(eid, etype, f"the deallocation's status is {status!r}, not Succeeded")
    if not eid:
        return IgnoredEvent(eid, etype, "the event has no id")
    candidate = data.get("resourceUri") or event.get("subject") or ""
    try:
        rid = ResourceId.parse(str(candidate))
    except ValueError:
        return IgnoredEvent(eid, etype, f"{candidate!r} is not a VM resource id")
    if rid.namespace.lower() != "microsoft.compute" or rid.type.lower() != "virtualmachines":
        return IgnoredEvent(eid, etype, f"{candidate!r} is not a Microsoft.Compute/virtualMachines id")
    when = parse_time(event.get("time") if schema == "cloudevents" else event.get("eventTime"))
    if when is None:
        return IgnoredEvent(eid, etype, "the event has no valid time")
    correlation = data.get("correlationId")
    topic = event.get("source") if schema == "cloudevents" else event.get("topic")
    return DeallocationEvent(
        event_id=eid,
        vm_id=str(rid),
        event_time=when,
        schema=schema,
        correlation_id=str(correlation) if correlation else None,
        topic=str(topic) if topic else None,
    )


def parse_delivery(body: Any) -> list[DeallocationEvent | IgnoredEvent]:
    """Classify every event of one delivery: an Event Grid array, a CloudEvents object, or a CloudEvents batch."""
    events = body if isinstance(body, list) else [body]
    return [parse_event(e) for e in events]


def function_event_to_dict(event: Any) -> dict[str, Any]:
    """The JSON of the ``func.EventGridEvent`` / ``func.CloudEvent`` the Functions worker hands a trigger."""
    if hasattr(event, "specversion"):
        out: dict[str, Any] = {
            "specversion": event.specversion,
            "id": event.id,
            "source": event.source,
            "type": event.type,
            "subject": event.subject,
            "time": event.time.isoformat() if isinstance(event.time, datetime) else event.time,
            "data": event.get_json(),
        }
        out.update(getattr(event, "extension_attrs", {}) or {})
        return out
    return {
        "id": event.id,
        "topic": event.topic,
        "subject": event.subject,
        "eventType": event.event_type,
        "eventTime": event.event_time.isoformat()
        if isinstance(event.event_time, datetime)
        else event.event_time,
        "dataVersion": event.data_version,
        "data": event.get_json(),
    }
