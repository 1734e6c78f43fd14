"""The one reader of Durable instance statuses: what the status API answers, as a typed snapshot.

The Durable client hands back values in more than one shape, depending on the host (the Functions
extension, devhost) and on how the value was stored:

- ``custom_status``, ``input`` and ``output`` arrive as decoded JSON or as JSON text, and an input may
  even be JSON text of JSON text (the orchestration was started with a string payload);
- ``runtime_status`` is an ``OrchestrationRuntimeStatus`` member or its name as a string;
- the created and last-updated times are ``datetime`` values, naive or aware.

``snapshot_of`` turns any of those into one ``InstanceSnapshot`` with the values decoded once, so the
triggers, the janitor and the status view never decode them again. Pure: no Durable or Functions import
(it reads the status object's attributes), so it is unit-tested without a host.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Runtime states in which an instance still owns the VM (or its run's resources): nothing new may start.
ACTIVE_STATES = frozenset({"Pending", "Running", "ContinuedAsNew", "Suspended"})

_JSON_LAYERS = 2  # JSON text, or JSON text of JSON text


def decoded(value: Any) -> Any:
    """A Durable status value with its JSON-text layers removed; text that is not JSON stays text."""
    for _ in range(_JSON_LAYERS):
        if not isinstance(value, str):
            break
        try:
            value = json.loads(value)
        except ValueError:
            break
    return value


def status_name(runtime_status: Any) -> str | None:
    """The runtime status as its name (``Running``…), from the SDK's enum member or a string."""
    if runtime_status is None:
        return None
    return str(getattr(runtime_status, "name", runtime_status))


def aware(value: datetime | None) -> datetime | None:
    """``value`` with a timezone (UTC when it has none)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _parsed_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return aware(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


@dataclass(frozen=True)
class InstanceSnapshot:
    """What the Durable status API says about one instance, with every value JSON-decoded."""

    runtime_status: str
    custom_status: Any = None
    output: Any = None
    created_time: str | None = None
    last_updated_time: str | None = None
    input: Any = None  # only when the status was read with its input
    instance_id: str = ""

    def __post_init__(self) -> None:
        # Snapshots built by hand (tests, callers with raw values) are decoded the same way as read ones.
        for name in ("custom_status", "output", "input"):
            object.__setattr__(self, name, decoded(getattr(self, name)))

    @property
    def active(self) -> bool:
        return self.runtime_status in ACTIVE_STATES

    @property
    def created(self) -> datetime | None:
        """The creation time, timezone-aware (UTC when the host gave a naive time)."""
        return _parsed_time(self.created_time)

    @property
    def last_updated(self) -> datetime | None:
        return _parsed_time(self.last_updated_time)

    @property
    def custom(self) -> dict[str, Any]:
        """The custom status when it is a JSON object (else empty)."""
        return self.custom_status if isinstance(self.custom_status, dict) else {}

    @property
    def request(self) -> dict[str, Any]:
        """The capture request (wire form) in the instance's input, or empty when there is none."""
        return input_request(self.input)

    @property
    def input_run_id(self) -> str | None:
        """The run id the instance's input names (the capture id for runs started before run ids)."""
        return input_run_id(self.input)


def input_request(raw_input: Any) -> dict[str, Any]:
    """The capture request (wire form) in a capture instance's input (JSON text or decoded), or empty."""
    value = decoded(raw_input)
    request = value.get("request") if isinstance(value, dict) else None
    return dict(request) if isinstance(request, dict) else {}


def input_run_id(raw_input: Any) -> str | None:
    """The run id in a capture instance's input (JSON text or decoded), if it has one."""
    value = decoded(raw_input)
    run = value.get("runId") or value.get("captureId") if isinstance(value, dict) else None
    return str(run) if run else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def snapshot_of(status: Any) -> InstanceSnapshot | None:
    """The snapshot of a ``DurableOrchestrationStatus`` (``None``: no such instance, or no runtime status).

    Attributes a status object lacks read as absent (stand-ins of the client may carry only some).
    """
    name = status_name(getattr(status, "runtime_status", None)) if status else None
    if name is None:
        return None
    return InstanceSnapshot(
        runtime_status=name,
        custom_status=getattr(status, "custom_status", None),
        output=getattr(status, "output", None),
        created_time=_iso(getattr(status, "created_time", None)),
        last_updated_time=_iso(getattr(status, "last_updated_time", None)),
        input=getattr(status, "input_", None),
        instance_id=str(getattr(status, "instance_id", None) or ""),
    )
