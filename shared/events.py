"""Event Grid deliveries of VM deallocations: bound and parse the body, keep only what may start a capture.

A subscription or resource-group system topic emits ``Microsoft.Resources.ResourceActionSuccess``
for every successful POST action on a resource; the one we want has
``data.operationName == "Microsoft.Compute/virtualMachines/deallocate/action"`` and is raised when the
deallocation *completed* (docs/azure-facts.md#event-grid-deallocation-events). Everything else (other
event types, other operations, failed or canceled actions, events without a VM id) is ignored with a
reason.

Both schemas carry the same ``data``:

- Event Grid schema: ``{"id", "topic", "subject", "eventType", "eventTime", "data", "dataVersion", …}``,
  delivered as a JSON array;
- CloudEvents 1.0: ``{"specversion", "id", "source", "subject", "type", "time", "data"}``, one object or a
  batch array.

The VM's id is ``data.resourceUri`` (falling back to ``subject``); ids are compared case-insensitively
(the casing of ``resourceGroups`` varies between samples) and normalised by ``ResourceId``.

Whole deliveries are refused (the webhook answers 400 or 413, which Event Grid does not retry) only
when no event in them can be read: the body is larger than ``MAX_DELIVERY_BYTES``, not JSON, nested
deeper than ``MAX_JSON_DEPTH``, not an object or an array, or holds more than ``MAX_EVENTS_PER_DELIVERY``
events. Inside a readable delivery each bad event is classified (``IgnoredEvent``) and skipped alone,
so one forged or broken event neither blocks nor replays its neighbours.

An event time must be RFC 3339 with an offset (as Event Grid and CloudEvents write it), not later than
``MAX_CLOCK_SKEW`` after now (a forged far-future time must not make every later genuine deallocation
look old), and not older than ``MAX_EVENT_AGE`` (Event Grid drops an event after its time-to-live, at
most one day, so an older one is a replay).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from shared.ids import ResourceId

RESOURCE_ACTION_SUCCESS = "Microsoft.Resources.ResourceActionSuccess"
DEALLOCATE_OPERATION = "Microsoft.Compute/virtualMachines/deallocate/action"
VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"

# Event Grid delivers at most 1 MB per event and per batch (preferredBatchSizeInKilobytes ≤ 1024) and at
# most 5,000 events per batch (maxEventsPerBatch); twice the size leaves room for any framing.
MAX_DELIVERY_BYTES = 2 * 1024 * 1024
MAX_EVENTS_PER_DELIVERY = 5000
MAX_JSON_DEPTH = 64  # resource events nest about 5 levels; json's own recursion limit is near 1,000
MAX_ID_CHARS = 256
MAX_CLOCK_SKEW = timedelta(minutes=5)
MAX_EVENT_AGE = timedelta(days=1, minutes=5)

Schema = Literal["eventgrid", "cloudevents"]

_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$", re.ASCII
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
# What Azure allows in the parts of a VM id (a GUID subscription; group names of word characters,
# hyphens, periods and parentheses; VM names of word characters, hyphens and periods): anything else
# (spaces, control characters, "?" or "#") is refused before it reaches ARM or a log line.
_SUBSCRIPTION = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_GROUP = re.compile(r"[\w\-.()]{1,90}")
_VM_NAME = re.compile(r"[\w\-.]{1,64}")


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
        return format_time(self.event_time)


@dataclass(frozen=True)
class IgnoredEvent:
    """An event this app does not act on, and why.

    ``refused`` marks events that claim to be a VM deallocation but are malformed, forged or replayed
    (logged as a warning); the others are simply not ours (logged at debug level).
    """

    event_id: str | None
    event_type: str | None
    reason: str
    refused: bool = False


@dataclass(frozen=True)
class DeliveryRefused:
    """A delivery none of whose events can be read: the webhook answers ``status`` with ``message``."""

    status: int  # 400 or 413
    message: str


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time with an offset (up to 9 fractional digits) as an aware UTC datetime, else ``None``."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or len(value) > 40:
        return None
    m = _RFC3339.match(value.strip())
    if not m:
        return None
    date, clock, fraction, offset = m.groups()
    text = f"{date}T{clock}" + (f".{fraction[:6]}" if fraction else "")
    text += "+00:00" if offset in ("Z", "z") else offset
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):  # 2025-13-45, or year 9999 pushed past the range by its offset
        return None


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """True if the JSON text nests arrays/objects deeper than ``limit`` (checked before ``json.loads``)."""
    depth = 0
    for m in _BRACKET.finditer(_STRING.sub("", text)):
        if m.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def load_delivery(raw: bytes) -> list[Any] | DeliveryRefused:
    """The events of one delivery body (an array, or one CloudEvents object), or why it is refused whole."""
    if len(raw) > MAX_DELIVERY_BYTES:
        return DeliveryRefused(
            413, f"the delivery is {len(raw)} bytes; at most {MAX_DELIVERY_BYTES} are accepted"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return DeliveryRefused(400, "the delivery is not UTF-8 text")
    if json_too_deep(text):
        return DeliveryRefused(400, f"the delivery's JSON nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return DeliveryRefused(400, f"the delivery is not JSON ({type(exc).__name__})")
    if isinstance(body, dict):
        return [body]
    if not isinstance(body, list):
        return DeliveryRefused(
            400, f"a delivery must be a JSON array of events or one event object, not {type(body).__name__}"
        )
    if len(body) > MAX_EVENTS_PER_DELIVERY:
        return DeliveryRefused(
            413, f"the delivery has {len(body)} events; at most {MAX_EVENTS_PER_DELIVERY} are accepted"
        )
    return body


def validation_code(events: list[Any]) -> str | None:
    """The ``validationCode`` of a subscription-validation delivery (Event Grid schema), if it has one."""
    first = events[0] if events else None
    if not isinstance(first, dict) or first.get("eventType") != VALIDATION_EVENT:
        return None
    data = first.get("data")
    code = data.get("validationCode") if isinstance(data, dict) else None
    return code if isinstance(code, str) and code and len(code) <= MAX_ID_CHARS else None


def schema_of(event: dict[str, Any]) -> Schema:
    return "cloudevents" if "specversion" in event else "eventgrid"


def _text(value: Any) -> str | None:
    """A short string field as given, or ``None`` for anything else (numbers, objects, huge strings)."""
    return value if isinstance(value, str) and len(value) <= 2048 else None


def _short(value: Any) -> str | None:
    text = _text(value)
    return text[:MAX_ID_CHARS] if text is not None else None


def _vm_id(data: dict[str, Any], event: dict[str, Any]) -> str | None:
    candidate = _text(data.get("resourceUri")) or _text(event.get("subject"))
    if not candidate or candidate != candidate.strip():  # Event Grid sends ids without padding
        return None
    try:
        rid = ResourceId.parse(candidate)
    except ValueError:
        return None
    if rid.namespace.lower() != "microsoft.compute" or rid.type.lower() != "virtualmachines":
        return None
    if not (
        _SUBSCRIPTION.fullmatch(rid.subscription_id)
        and _GROUP.fullmatch(rid.resource_group)
        and _VM_NAME.fullmatch(rid.name)
    ):
        return None
    return str(rid)


def _time_problem(when: datetime | None, now: datetime) -> str | None:
    if when is None:
        return "its time is missing or not an RFC 3339 time with an offset (e.g. 2025-05-01T10:00:00Z)"
    if when > now + MAX_CLOCK_SKEW:
        return (
            f"its time {format_time(when)} is more than {MAX_CLOCK_SKEW} in the future "
            f"(now {format_time(now)}): forged or from a clock far off"
        )
    if when < now - MAX_EVENT_AGE:
        return f"its time {format_time(when)} is older than Event Grid's longest time-to-live (one day): a replay"
    return None


def parse_event(event: Any, now: datetime | None = None) -> DeallocationEvent | IgnoredEvent:
    """Classify one event object (either schema). Never raises, whatever JSON value it is given."""
    if not isinstance(event, dict):
        return IgnoredEvent(None, None, f"the event is not a JSON object but {type(event).__name__}", True)
    schema = schema_of(event)
    eid = _short(event.get("id"))
    etype = _short(event.get("type") if schema == "cloudevents" else event.get("eventType"))
    if etype != RESOURCE_ACTION_SUCCESS:
        return IgnoredEvent(eid, etype, f"event type {etype!r} is not {RESOURCE_ACTION_SUCCESS}")
    data = event.get("data")
    if not isinstance(data, dict):
        return IgnoredEvent(eid, etype, "the event has no data object", True)
    operation = _text(data.get("operationName")) or ""
    if operation.lower() != DEALLOCATE_OPERATION.lower():
        return IgnoredEvent(eid, etype, f"operation {operation[:200]!r} is not {DEALLOCATE_OPERATION}")
    status = data.get("status")
    if status is not None and (_text(status) or "").lower() != "succeeded":
        return IgnoredEvent(eid, etype, f"the deallocation's status is {str(status)[:100]!r}, not Succeeded")
    if not eid or len(event.get("id") or "") > MAX_ID_CHARS:
        return IgnoredEvent(eid, etype, f"the event has no id (a string of 1-{MAX_ID_CHARS} chars)", True)
    vm_id = _vm_id(data, event)
    if vm_id is None:
        return IgnoredEvent(
            eid,
            etype,
            "data.resourceUri (or subject) is not a VM id: "
            "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<name>",
            True,
        )
    when = parse_time(event.get("time") if schema == "cloudevents" else event.get("eventTime"))
    problem = _time_problem(when, now or datetime.now(UTC))
    if problem or when is None:
        return IgnoredEvent(eid, etype, f"refused: {problem}", True)
    topic = event.get("source") if schema == "cloudevents" else event.get("topic")
    return DeallocationEvent(
        event_id=eid,
        vm_id=vm_id,
        event_time=when,
        schema=schema,
        correlation_id=_short(data.get("correlationId")),
        topic=_short(topic),
    )


def parse_delivery(body: Any, now: datetime | None = None) -> list[DeallocationEvent | IgnoredEvent]:
    """Classify every event of one decoded delivery: an Event Grid array, a CloudEvents object or batch."""
    events = body if isinstance(body, list) else [body]
    return [parse_event(e, now) for e in events]
