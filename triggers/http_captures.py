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

import json
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from shared.bounded_json import decode_json
from shared.ids import is_capture_id
from shared.requests import FieldError, validate_request
from shared.status import (
    CaptureProgress,
    InstanceSnapshot,
    aggregate_status,
    export_instance_id,
    run_id_of,
    version_instance_id,
)
from triggers.starting import runtime_status_name, start_capture, version_conflict_message

log = logging.getLogger(__name__)
http_bp = df.Blueprint()


def _json(body: Any, status: int, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, indent=2), status_code=status, mimetype="application/json", headers=headers
    )


def _errors(errors: list[FieldError]) -> func.HttpResponse:
    return _json({"errors": [e.to_wire() for e in errors]}, 400)


def _capture_url(req: func.HttpRequest, instance_id: str) -> str:
    base = req.url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    if base.endswith("/captures"):
        return f"{base}/{instance_id}"
    return base.rsplit("/captures", 1)[0] + f"/captures/{instance_id}"


def capture_links(req: func.HttpRequest, instance_id: str) -> dict[str, str]:
    """The app's own URLs of a capture: its status and its cancel endpoint (never a key in them)."""
    status_url = _capture_url(req, instance_id)
    return {"captureStatusUri": status_url, "cancelPostUri": f"{status_url}/cancel"}


def _not_found(instance_id: str) -> func.HttpResponse:
    shown = instance_id if len(instance_id) <= 100 else instance_id[:100] + "…"
    return _json(
        {"error": {"code": "CaptureNotFound", "message": f"There is no capture with id {shown!r}."}},
        404,
    )


@http_bp.route(route="captures", methods=["POST"])
@http_bp.durable_client_input(client_name="client")
async def post_capture(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body, problem = decode_json(req.get_body() or b"")
    if problem is not None:
        return _json(
            {"errors": [FieldError(field="(body)", message=problem.message).to_wire()]}, problem.status
        )
    request, errors = validate_request(body)
    if request is None:
        return _errors(errors)
    try:
        outcome = await start_capture(client, request, trigger="http")
    except ValueError as exc:  # a malformed app setting (shared.settings names it)
        log.error("cannot start a capture: %s", exc)
        return _json({"error": {"code": "ConfigurationError", "message": str(exc)}}, 500)
    links = capture_links(req, outcome.instance_id)
    headers = {"Location": links["captureStatusUri"]}
    if outcome.version_holder is not None:
        return _json(
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
        return _json(
            {
                "error": {
                    "code": "CaptureAlreadyRunning",
                    "message": f"A capture of {request.source_vm_id} is already {outcome.runtime_status}: "
                    "wait for it to finish (or cancel it) before starting another.",
                },
                "id": outcome.instance_id,
                "runtimeStatus": outcome.runtime_status,
                **links,
            },
            409,
            headers=headers,
        )
    log.info("capture %s started for %s", outcome.instance_id, request.source_vm_id)
    return _json(
        {"id": outcome.instance_id, "runId": outcome.run_id, **links},
        202,
        headers={**headers, "Retry-After": "10"},
    )


def _snapshot(status: df.DurableOrchestrationStatus | None) -> InstanceSnapshot | None:
    name = runtime_status_name(status)
    if status is None or name is None:
        return None
    return InstanceSnapshot(
        runtime_status=name,
        custom_status=status.custom_status,
        output=status.output,
        created_time=status.created_time.isoformat() if status.created_time else None,
        last_updated_time=status.last_updated_time.isoformat() if status.last_updated_time else None,
    )


@http_bp.route(route="captures/{id}", methods=["GET"])
@http_bp.durable_client_input(client_name="client")
async def get_capture(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = req.route_params.get("id", "")
    if not is_capture_id(instance_id):  # checked before the id reaches the Durable client's URLs
        return _not_found(instance_id)
    main = _snapshot(await client.get_status(instance_id))
    if main is None:
        return _not_found(instance_id)
    # The sub-orchestrations of the run this instance is on now (an earlier run's are never shown).
    run_id = run_id_of(instance_id, main.custom_status)
    version = _snapshot(await client.get_status(version_instance_id(run_id)))
    exports: dict[str, InstanceSnapshot] = {}
    cs = main.custom_status
    progress = None
    try:
        progress = CaptureProgress.from_wire(json.loads(cs) if isinstance(cs, str) else cs) if cs else None
    except ValueError:
        progress = None
    if progress is not None and progress.export:
        for disk in progress.disks:
            snap = _snapshot(await client.get_status(export_instance_id(run_id, disk.key)))
            if snap is not None:
                exports[disk.key] = snap
    view = aggregate_status(instance_id, main, version, exports)
    return _json(view.to_wire(), 200)
