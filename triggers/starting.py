"""Starting a capture, shared by every trigger: one deterministic instance per VM, never two at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import azure.durable_functions as df

from orchestrators import names
from shared.contracts import CaptureInput
from shared.ids import capture_instance_id
from shared.requests import CaptureRequest
from shared.settings import get_settings

# Runtime states in which an instance still owns the VM: a new capture must not start.
ACTIVE_STATES = {"Pending", "Running", "ContinuedAsNew", "Suspended"}


@dataclass(frozen=True)
class StartOutcome:
    instance_id: str
    started: bool
    runtime_status: str | None = None  # of the instance that was already running, when not started


def runtime_status_name(status: df.DurableOrchestrationStatus | None) -> str | None:
    if not status or status.runtime_status is None:
        return None
    rs = status.runtime_status
    return str(getattr(rs, "name", rs))


async def start_capture(
    client: df.DurableOrchestrationClient,
    request: CaptureRequest,
    *,
    trigger: Literal["http", "queue", "eventgrid"],
) -> StartOutcome:
    """Start ``capture_image`` for ``request`` unless a capture of the same VM is active."""
    instance_id = capture_instance_id(request.source_vm_id)
    current = runtime_status_name(await client.get_status(instance_id))
    if current in ACTIVE_STATES:
        return StartOutcome(instance_id, started=False, runtime_status=current)
    payload = CaptureInput(
        capture_id=instance_id, request=request, policy=get_settings().policy, trigger=trigger
    ).to_wire()
    try:
        await client.start_new(names.CAPTURE_IMAGE, instance_id, payload)
    except Exception:
        # Lost a race with another start of the same VM: the host refused the duplicate id.
        again = runtime_status_name(await client.get_status(instance_id))
        if again in ACTIVE_STATES:
            return StartOutcome(instance_id, started=False, runtime_status=again)
        raise
    return StartOutcome(instance_id, started=True)
