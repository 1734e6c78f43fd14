"""Starting a capture, shared by every trigger: one deterministic instance per VM, never two at once.

Each start is a new capture *run* with its own run id (``shared.ids.new_run_id``: the instance id plus
the UTC start time), chosen here because triggers may read the clock and orchestrators may not. The run
id travels in ``CaptureInput.run_id``; everything the run creates is named and tagged from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import azure.durable_functions as df

from orchestrators import names
from shared.contracts import CaptureInput
from shared.ids import capture_instance_id, new_run_id
from shared.requests import CaptureRequest
from shared.settings import get_settings

# Runtime states in which an instance still owns the VM: a new capture must not start.
ACTIVE_STATES = {"Pending", "Running", "ContinuedAsNew", "Suspended"}


@dataclass(frozen=True)
class StartOutcome:
    instance_id: str
    started: bool
    runtime_status: str | None = None  # of the instance that was already running, when not started
    run_id: str | None = None  # of the run started (None when not started)


def previous_run_id(raw_input: Any) -> str | None:
    """The run id in a previous instance's input (JSON text or decoded), if it has one."""
    value = raw_input
    for _ in range(2):  # the input may arrive as JSON text, even JSON text of JSON text
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return None
    if isinstance(value, dict):
        run = value.get("runId") or value.get("captureId")
        return str(run) if run else None
    return None


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
    status = await client.get_status(instance_id, show_input=True)
    current = runtime_status_name(status)
    if current in ACTIVE_STATES:
        return StartOutcome(instance_id, started=False, runtime_status=current)
    run_id = new_run_id(
        instance_id, datetime.now(UTC), previous_run_id(status.input_ if status is not None else None)
    )
    payload = CaptureInput(
        capture_id=instance_id, run_id=run_id, request=request, policy=get_settings().policy, trigger=trigger
    ).to_wire()
    try:
        await client.start_new(names.CAPTURE_IMAGE, instance_id, payload)
    except Exception:
        # Lost a race with another start of the same VM: the host refused the duplicate id.
        again = runtime_status_name(await client.get_status(instance_id))
        if again in ACTIVE_STATES:
            return StartOutcome(instance_id, started=False, runtime_status=again)
        raise
    return StartOutcome(instance_id, started=True, run_id=run_id)
