"""HTTP API of the capture: ``POST /api/captures`` starts one, ``GET /api/captures/{id}`` reports it.

Answers are JSON. A bad request gets 400 with every invalid field and why; a capture of a VM
that is already being captured gets 409 with that capture's id and status URLs; errors never
carry a stack trace or a secret.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from shared.requests import FieldError, validate_request
from shared.status import (
    CaptureProgress,
    InstanceSnapshot,
    aggregate_status,
    export_instance_id,
    run_id_of,
    version_instance_id,
)
from triggers.starting import runtime_status_name, start_capture

log = logging.getLogger(__name__)
http_bp = df.Blueprint()


def _json(body: Any, status: int, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, indent=2), status_code=status, mimetype="application/json", headers=headers
    )


def _errors(errors: list[FieldError]) -> func.HttpResponse:
    return _json({"errors": [e.to_wire() for e in errors]}, 400)


def _capture_url(req: func.HttpRequest, instance_id: str) -> str:
    base = req.url.split("?", 1)[0].rstrip("/")
    if base.endswith("/captures"):
        return f"{base}/{instance_id}"
    return base.rsplit("/captures", 1)[0] + f"/captures/{instance_id}"


@http_bp.route(route="captures", methods=["POST"])
@http_bp.durable_client_input(client_name="client")
async def post_capture(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        body = json.loads(req.get_body() or b"")
    except ValueError as exc:
        return _errors(
            [FieldError(field="(body)", message=f"must be a JSON object; it is not valid JSON ({exc})")]
        )
    request, errors = validate_request(body)
    if request is None:
        return _errors(errors)
    try:
        outcome = await start_capture(client, request, trigger="http")
    except ValueError as exc:  # a malformed app setting (shared.settings names it)
        log.error("cannot start a capture: %s", exc)
        return _json({"error": {"code": "ConfigurationError", "message": str(exc)}}, 500)
    status_url = _capture_url(req, outcome.instance_id)
    if not outcome.started:
        payload = client.create_http_management_payload(outcome.instance_id)
        return _json(
            {
                "error": {
                    "code": "CaptureAlreadyRunning",
                    "message": f"A capture of {request.source_vm_id} is already {outcome.runtime_status}: "
                    "wait for it to finish (or cancel it) before starting another.",
                },
                "id": outcome.instance_id,
                "runtimeStatus": outcome.runtime_status,
                "captureStatusUri": status_url,
                "statusQueryGetUri": payload.get("statusQueryGetUri"),
            },
            409,
            headers={"Location": status_url},
        )
    log.info("capture %s started for %s", outcome.instance_id, request.source_vm_id)
    resp = client.create_check_status_response(req, outcome.instance_id)
    # Keep the Durable check-status payload and headers; add the readable status endpoint.
    payload = json.loads(resp.get_body())
    payload["captureStatusUri"] = status_url
    payload["runId"] = outcome.run_id
    headers = {k: v for k, v in resp.headers.items() if k.lower() != "content-length"}
    return func.HttpResponse(json.dumps(payload, indent=2), status_code=202, headers=headers)


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
    main = _snapshot(await client.get_status(instance_id))
    if main is None or not instance_id.startswith("capture-") or ":" in instance_id:
        return _json(
            {
                "error": {
                    "code": "CaptureNotFound",
                    "message": f"There is no capture with id {instance_id!r}.",
                }
            },
            404,
        )
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
