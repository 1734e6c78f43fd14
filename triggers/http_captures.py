"""HTTP API of the capture: ``POST /api/captures`` starts one, ``GET /api/captures/{id}`` reports it.

Answers are JSON. A bad request gets 400 with every invalid field and why (413 for a body over
``MAX_BODY_BYTES``); a capture of a VM that is already being captured gets 409 with that capture's id
and the app's own status and cancel URLs; errors never carry a stack trace or a secret.

The 202 and 409 bodies carry only this app's URLs. The Durable check-status payload
(``statusQueryGetUri``, ``terminatePostUri``, ``purgeHistoryDeleteUri``…) carries the host's system key,
which opens every instance's input, history, terminate and purge: it is for operators, never handed
to a function-key caller.
"""

from __future__ import annotations

import logging

import azure.durable_functions as df
import azure.functions as func

from shared.ids import is_capture_id
from shared.instances import InstanceSnapshot
from shared.requests import validate_request
from shared.status import export_instance_id, version_instance_id
from shared.status_view import aggregate_status, capture_progress, run_id_of
from triggers.http_helpers import (
    capture_links,
    configuration_error,
    json_response,
    not_found,
    read_request,
)
from triggers.starting import start_capture, version_conflict_message
from triggers.status_reader import read_instance

log = logging.getLogger(__name__)
http_bp = df.Blueprint()


@http_bp.route(route="captures", methods=["POST"])
@http_bp.durable_client_input(client_name="client")
async def post_capture(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    request = read_request(req, validate_request)
    if isinstance(request, func.HttpResponse):
        return request
    try:
        outcome = await start_capture(client, request, trigger="http")
    except ValueError as exc:  # a malformed app setting (shared.settings names it)
        log.error("cannot start a capture: %s", exc)
        return configuration_error(exc)
    links = capture_links(req, outcome.instance_id)
    headers = {"Location": links["captureStatusUri"]}
    if outcome.version_holder is not None:
        return json_response(
            {
                "error": {
                    "code": "VersionAlreadyTargeted",
                    "message": version_conflict_message(request, outcome.version_holder),
                },
                "id": outcome.version_holder,
                "captureStatusUri": capture_links(req, outcome.version_holder)["captureStatusUri"],
            },
            409,
        )
    if not outcome.started:
        return json_response(
            {
                "error": {
                    "code": "CaptureAlreadyRunning",
                    "message": f"A capture of {request.source_id} is already {outcome.runtime_status}: "
                    "wait for it to finish (or cancel it) before starting another.",
                },
                "id": outcome.instance_id,
                "runtimeStatus": outcome.runtime_status,
                **links,
            },
            409,
            headers=headers,
        )
    log.info("capture %s started for %s", outcome.instance_id, request.source_id)
    return json_response(
        {"id": outcome.instance_id, "runId": outcome.run_id, **links},
        202,
        headers={**headers, "Retry-After": "10"},
    )


@http_bp.route(route="captures/{id}", methods=["GET"])
@http_bp.durable_client_input(client_name="client")
async def get_capture(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = req.route_params.get("id", "")
    if not is_capture_id(instance_id):  # checked before the id reaches the Durable client's URLs
        return not_found(instance_id)
    main = await read_instance(client, instance_id)
    if main is None:
        return not_found(instance_id)
    # The sub-orchestrations of the run this instance is on now (an earlier run's are never shown).
    run_id = run_id_of(instance_id, main.custom_status)
    version = await read_instance(client, version_instance_id(run_id))
    exports: dict[str, InstanceSnapshot] = {}
    progress = capture_progress(main.custom_status)
    if progress is not None and progress.export:
        for disk in progress.disks:
            snap = await read_instance(client, export_instance_id(run_id, disk.key))
            if snap is not None:
                exports[disk.key] = snap
    view = aggregate_status(instance_id, main, version, exports)
    return json_response(view.to_wire(), 200)
