"""What the queue and Event Grid triggers check before starting a capture: the VM, and the previous capture.

Both triggers see at-least-once deliveries (a queue message comes back after a host crash; Event
Grid redelivers and reorders). The deterministic instance id (one per VM) already stops a second
capture while one runs; these guards also stop one *after* the previous capture ended, when the
message or event is older than that capture:

- queue: skip when the VM's last capture was created at or after the message was enqueued (it has
  served this message, or a newer one), or when it ran the very same request and was created less
  than ``CLOCK_SKEW_SECONDS`` before the message (storage and host clocks differ a little);
- Event Grid (for a VM that is deallocated now): skip when the event is the one that started the last
  capture (same event id), or the deallocation is not newer than the deallocation recorded on the last
  capture or than that capture's end (a duplicate, an out-of-order older event, or the deallocation the
  capture itself performed while it ran). A recorded deallocation later than the capture's creation is
  not believed, so a forged far-future time cannot make later genuine events look old.

``read_vm`` is the one ARM read the triggers make (a GET with the instance view: tags, power state).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df
from azure.core.exceptions import ResourceNotFoundError

from shared import clients
from shared.azure_errors import translate_azure_error
from shared.events import DeallocationEvent, parse_time
from shared.ids import ResourceId
from shared.instances import ACTIVE_STATES, aware
from shared.vm_tags import TAG_DEALLOCATED_AT, TAG_EVENT_ID
from triggers.status_reader import read_instance

log = logging.getLogger(__name__)
CLOCK_SKEW_SECONDS = 60.0


@dataclass(frozen=True)
class VmView:
    id: str
    name: str
    location: str
    tags: dict[str, str]
    power_state: str  # running | deallocated | stopped | … | unknown
    generalized: bool


def read_vm(vm_id: str) -> VmView | None:
    """The VM's tags and power state (``None`` if it does not exist). Other failures raise ``CaptureError``."""
    rid = ResourceId.parse(vm_id)
    try:
        vm = clients.compute(rid.subscription_id).virtual_machines.get(
            rid.resource_group, rid.name, expand="instanceView"
        )
    except ResourceNotFoundError:
        return None
    except Exception as exc:
        raise translate_azure_error(exc, step="read the VM", resource=vm_id) from None
    power, generalized = "unknown", False
    view = vm.instance_view
    for status in (view.statuses if view is not None else None) or []:
        code = status.code or ""
        if code.startswith("PowerState/"):
            power = code.split("/", 1)[1].lower()
        elif code.lower() == "osstate/generalized":
            generalized = True
    return VmView(
        id=str(rid),
        name=rid.name,
        location=(vm.location or "").replace(" ", "").lower(),
        tags=dict(vm.tags or {}),
        power_state=power,
        generalized=generalized,
    )


@dataclass(frozen=True)
class PreviousCapture:
    """The last capture instance of a VM, as far as the triggers need it."""

    instance_id: str
    runtime_status: str
    created: datetime | None
    last_updated: datetime | None
    request: dict[str, Any] = field(default_factory=dict)  # the CaptureInput's request (wire form)

    @property
    def active(self) -> bool:
        return self.runtime_status in ACTIVE_STATES

    @property
    def request_tags(self) -> dict[str, str]:
        tags = self.request.get("tags")
        return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {}


async def previous_capture(client: df.DurableOrchestrationClient, instance_id: str) -> PreviousCapture | None:
    snap = await read_instance(client, instance_id, with_input=True)
    if snap is None:
        return None
    return PreviousCapture(
        instance_id=instance_id,
        runtime_status=snap.runtime_status,
        created=snap.created,
        last_updated=snap.last_updated,
        request=snap.request,
    )


def _same_request(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def queue_skip_reason(
    prev: PreviousCapture | None, inserted: datetime | None, request_wire: dict[str, Any]
) -> str | None:
    """Why a (valid) queue message must not start a capture, or ``None`` to start it."""
    if prev is None:
        return None
    if prev.active:
        return f"capture {prev.instance_id} of this VM is already {prev.runtime_status}"
    inserted = aware(inserted)
    if inserted is None or prev.created is None:
        return None
    if prev.created >= inserted:
        return (
            f"capture {prev.instance_id} ({prev.runtime_status}) was started after this message was "
            "enqueued: the message is a redelivery or a duplicate"
        )
    if _same_request(prev.request, request_wire) and prev.created >= inserted - timedelta(
        seconds=CLOCK_SKEW_SECONDS
    ):
        return (
            f"capture {prev.instance_id} ({prev.runtime_status}) ran this same request moments before the "
            "message was enqueued: treated as a duplicate"
        )
    return None


def recorded_deallocation(prev: PreviousCapture) -> datetime | None:
    """The deallocation time that started ``prev`` (its ``image-pipeline:deallocated-at``), if believable.

    A capture cannot have been started by a deallocation later than its own creation: a later recorded
    time (a forged far-future event accepted before such events were refused, or a clock far off) is
    ignored, so it cannot make every later genuine deallocation look old.
    """
    started_by = parse_time(prev.request_tags.get(TAG_DEALLOCATED_AT))
    if started_by is None or prev.created is None:
        return started_by
    return started_by if started_by <= prev.created + timedelta(seconds=CLOCK_SKEW_SECONDS) else None


def event_skip_reason(
    prev: PreviousCapture | None, event: DeallocationEvent, *, vm_generalized: bool = False
) -> str | None:
    """Why a deallocation event of a VM that is deallocated now must not start a capture, or ``None``.

    The event must be newer than everything the VM's last capture covered: not the event that started
    it, not older than the deallocation recorded on it, and not older than its end (a capture deallocates
    the VM itself while it runs). A generalized VM cannot start, so it cannot have been deallocated again
    after a capture of it: any such event is a replay.
    """
    if prev is None:
        return None
    if prev.active:
        return f"capture {prev.instance_id} of this VM is already {prev.runtime_status}"
    if prev.request_tags.get(TAG_EVENT_ID) == event.event_id:
        return f"this event already started capture {prev.instance_id} ({prev.runtime_status})"
    started_by = recorded_deallocation(prev)
    if started_by is not None and started_by >= event.event_time:
        return (
            f"capture {prev.instance_id} ({prev.runtime_status}) was started by a deallocation at "
            f"{prev.request_tags.get(TAG_DEALLOCATED_AT)}, not older than this one"
        )
    ended = prev.last_updated or prev.created
    if ended is not None and ended >= event.event_time:
        return (
            f"capture {prev.instance_id} ({prev.runtime_status}) ended after this deallocation: it already "
            "covered it (a duplicate, an out-of-order event, or the capture's own deallocation)"
        )
    if vm_generalized:
        return (
            f"the VM is generalized and was captured by {prev.instance_id} ({prev.runtime_status}); a "
            "generalized VM cannot start, so it cannot have been deallocated since: the event is a replay"
        )
    return None
