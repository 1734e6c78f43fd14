"""Event Grid trigger ``capture_on_deallocation``: a tagged VM that was deallocated is captured.

Subscribe a subscription or resource-group system topic to the endpoint
``https://<app>.azurewebsites.net/runtime/webhooks/eventgrid?functionName=capture_on_deallocation``
(key ``eventgrid_extension``) with event type ``Microsoft.Resources.ResourceActionSuccess`` and an
advanced filter ``data.operationName`` = ``Microsoft.Compute/virtualMachines/deallocate/action``
(docs/queue-eventgrid-cancel-notices.md). Both the Event Grid and the CloudEvents schema work.

For each event:

1. not a successful VM deallocation (``shared.events``) → debug log, nothing;
2. one ARM read of the VM (tags + instance view; failures other than 404 raise, so Event Grid retries);
3. no ``image-pipeline:*`` tag → debug log, nothing; ``image-pipeline:enabled=false`` → info, nothing;
   invalid tags → one ERROR naming every bad tag and why, nothing;
4. the VM is no longer deallocated (started again since: the event is stale) → warning, nothing —
   capturing a running VM with ``prepare: none`` would capture a guest that was not deprovisioned;
5. duplicate / out-of-order delivery (``guards.event_skip_reason``) → info, nothing;
6. otherwise the capture starts with ``prepare: none``, trigger ``eventgrid``; the request's tags
   record ``image-pipeline:event-id`` and ``image-pipeline:deallocated-at`` (they land on the snapshots
   and the image version too, and are what step 5 compares against next time).

At most one capture per VM deallocation: the instance id is per VM, an active capture is never
restarted, and a finished one is not started again for the same or an older deallocation.
"""

from __future__ import annotations

import asyncio
import logging

import azure.durable_functions as df
import azure.functions as func

from shared.events import DeallocationEvent, IgnoredEvent, function_event_to_dict, parse_event
from shared.ids import capture_instance_id
from shared.vm_tags import TAG_DEALLOCATED_AT, TAG_EVENT_ID, request_from_tags
from triggers.guards import event_skip_reason, previous_capture, read_vm
from triggers.starting import start_capture

log = logging.getLogger(__name__)
eventgrid_bp = df.Blueprint()

FUNCTION_NAME = "capture_on_deallocation"  # the function name is the webhook's ?functionName=


async def handle_event(client: df.DurableOrchestrationClient, raw: dict[str, object]) -> str:
    """Act on one event; return what was done (``ignored`` | ``untagged`` | … | ``started``) for tests/logs."""
    parsed = parse_event(raw)
    if isinstance(parsed, IgnoredEvent):
        log.debug("event %s (%s) ignored: %s", parsed.event_id, parsed.event_type, parsed.reason)
        return "ignored"
    return await _handle_deallocation(client, parsed)


async def _handle_deallocation(client: df.DurableOrchestrationClient, event: DeallocationEvent) -> str:
    vm = await asyncio.to_thread(read_vm, event.vm_id)
    if vm is None:
        log.warning(
            "deallocation event %s: VM %s no longer exists; nothing to capture", event.event_id, event.vm_id
        )
        return "vm-gone"
    parse = request_from_tags(
        vm.id, vm.tags, extra_tags={TAG_EVENT_ID: event.event_id, TAG_DEALLOCATED_AT: event.event_time_iso}
    )
    if not parse.opted_in:
        log.debug("deallocation event %s: %s has no image-pipeline tags; ignored", event.event_id, vm.name)
        return "untagged"
    if not parse.enabled:
        log.info(
            "deallocation event %s: %s has image-pipeline:enabled=false; not captured",
            event.event_id,
            vm.name,
        )
        return "disabled"
    if parse.request is None:
        log.error(
            "deallocation event %s: %s is tagged for capture but its tags are invalid, so it was not captured. "
            "Fix these tags, then start and deallocate the VM again (or POST /api/captures): %s",
            event.event_id,
            vm.id,
            parse.describe_errors(),
        )
        return "invalid-tags"
    if vm.power_state != "deallocated":
        log.warning(
            "deallocation event %s (%s): %s is %s now, so the event is stale; not captured",
            event.event_id,
            event.event_time_iso,
            vm.name,
            vm.power_state,
        )
        return "stale"
    instance_id = capture_instance_id(vm.id)
    skip = event_skip_reason(await previous_capture(client, instance_id), event)
    if skip:
        log.info("deallocation event %s for %s: not started: %s", event.event_id, vm.name, skip)
        return "duplicate"
    outcome = await start_capture(client, parse.request, trigger="eventgrid")
    if not outcome.started:
        log.info(
            "deallocation event %s for %s: capture %s is already %s",
            event.event_id,
            vm.name,
            instance_id,
            outcome.runtime_status,
        )
        return "duplicate"
    log.info(
        "capture %s started for %s by deallocation event %s (%s)",
        instance_id,
        vm.id,
        event.event_id,
        event.event_time_iso,
    )
    return "started"


@eventgrid_bp.event_grid_trigger(arg_name="event")
@eventgrid_bp.durable_client_input(client_name="client")
async def capture_on_deallocation(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    await handle_event(client, function_event_to_dict(event))
