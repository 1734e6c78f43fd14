"""Starting a capture, shared by every trigger: one deterministic instance per VM, never two at once.

Each start is a new capture *run* with its own run id (``shared.ids.new_run_id``: the instance id plus
the UTC start time), chosen here because triggers may read the clock and orchestrators may not. The run
id travels in ``CaptureInput.run_id``; everything the run creates is named and tagged from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import azure.durable_functions as df

from orchestrators import names
from shared.contracts import CaptureInput
from shared.ids import new_run_id
from shared.instances import ACTIVE_STATES, input_run_id
from shared.requests import VERSION_AUTO, CaptureRequest
from shared.settings import get_settings
from triggers.status_reader import read_instance

# The run id in a previous instance's input (JSON text or decoded), if it has one.
previous_run_id = input_run_id


@dataclass(frozen=True)
class StartOutcome:
    instance_id: str
    started: bool
    runtime_status: str | None = None  # of the instance that was already running, when not started
    run_id: str | None = None  # of the run started (None when not started)
    # Why not started although the VM is free: another active capture targets the same explicit version.
    version_holder: str | None = None


VersionClaim = tuple[str, str, str, str, str]


def version_claim(request: dict[str, Any] | CaptureRequest) -> VersionClaim | None:
    """(subscription, group, gallery, definition, version) an explicit version request targets, or None
    for ``auto`` (concurrent ``auto`` captures are given distinct versions at publish time)."""
    req = request if isinstance(request, CaptureRequest) else None
    if req is None:
        try:
            req = CaptureRequest.from_wire(request)
        except ValueError:
            return None
    if req.version == VERSION_AUTO:
        return None
    return (
        req.gallery_subscription_id.lower(),
        req.gallery.resource_group.lower(),
        req.gallery.name.lower(),
        req.image_definition.name.lower(),
        req.version,
    )


def version_conflict_message(request: CaptureRequest, holder: str) -> str:
    return (
        f"Image version {request.version} of {request.image_definition.name} in gallery "
        f"{request.gallery.name} is already the target of capture {holder}, which is still running: "
        "nothing was started and the VM is untouched. Wait for that capture to finish, choose another "
        "version, or use 'auto' (concurrent 'auto' captures get distinct versions)."
    )


async def version_holder(
    client: df.DurableOrchestrationClient, request: CaptureRequest, own_instance: str
) -> str | None:
    """The id of another active capture that targets the same explicit image version, if any.

    Checked before anything starts, so the second of two captures into ``1.4.0`` is refused while the
    first's VM is still untouched, instead of failing with ``ImageVersionExists`` after generalize.
    """
    claim = version_claim(request)
    if claim is None:
        return None
    active = [df.OrchestrationRuntimeStatus[name] for name in sorted(ACTIVE_STATES)]
    for other in await client.get_status_by(runtime_status=active, instance_id_prefix="capture-"):
        other_id = other.instance_id or ""
        if other_id == own_instance or ":" in other_id:  # sub-orchestrations carry the parent's run id
            continue
        other_status = await read_instance(client, other_id, with_input=True)
        if other_status is not None and other_status.request and version_claim(other_status.request) == claim:
            return other_id
    return None


async def start_capture(
    client: df.DurableOrchestrationClient,
    request: CaptureRequest,
    *,
    trigger: Literal["http", "queue", "eventgrid"],
) -> StartOutcome:
    """Start ``capture_image`` for ``request`` unless a capture of the same VM is active."""
    instance_id = request.capture_id
    current = await read_instance(client, instance_id, with_input=True)
    if current is not None and current.active:
        return StartOutcome(instance_id, started=False, runtime_status=current.runtime_status)
    holder = await version_holder(client, request, instance_id)
    if holder is not None:
        return StartOutcome(instance_id, started=False, version_holder=holder)
    run_id = new_run_id(instance_id, datetime.now(UTC), current.input_run_id if current is not None else None)
    payload = CaptureInput(
        capture_id=instance_id, run_id=run_id, request=request, policy=get_settings().policy, trigger=trigger
    ).to_wire()
    try:
        await client.start_new(names.CAPTURE_IMAGE, instance_id, payload)
    except Exception:
        # Lost a race with another start of the same VM: the host refused the duplicate id.
        again = await read_instance(client, instance_id)
        if again is not None and again.active:
            return StartOutcome(instance_id, started=False, runtime_status=again.runtime_status)
        raise
    return StartOutcome(instance_id, started=True, run_id=run_id)
