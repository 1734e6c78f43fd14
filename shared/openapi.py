"""The OpenAPI 3.1 document of the HTTP API, generated from the wire models.

Request and answer bodies come from the pydantic models (``shared.requests.CaptureRequest``,
``shared.status.CaptureStatusView``, ``shared.api_bodies``) through pydantic's JSON Schema, which is the
schema dialect of OpenAPI 3.1. The document is deterministic (no host, no clock, no setting in it): the
app serves it at ``GET /api/openapi.json`` (``triggers.http_openapi``) and the repository keeps the same
text in ``docs/openapi.json``. Regenerate that file with ``make openapi`` (``python -m shared.openapi``);
``python -m shared.openapi --check`` fails when it is stale.

The schemas say what shape a field has; the rules the app checks on top (Azure's naming rules, the export
allow-list, a webhook host the app may send to) are in the field errors of a 400 answer.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from pydantic.json_schema import JsonSchemaMode, models_json_schema

from shared import api_bodies as bodies
from shared import migration_api
from shared.api_examples import CAPTURE_EXAMPLE, DELIVERY_EXAMPLES, MANAGED_IMAGE_EXAMPLE, SPECIALIZED_EXAMPLE
from shared.bounded_json import MAX_BODY_BYTES
from shared.marketplace_api import MODELS as MARKETPLACE_MODELS
from shared.marketplace_api import marketplace_sas_operation
from shared.model_base import WireModel
from shared.openapi_parts import JSON, REF, UNAUTHORIZED, Schema, header, id_parameter, json_answer, ref
from shared.requests import CaptureRequest
from shared.status import CaptureStatusView

API_VERSION = "0.1.0"  # the project's version in pyproject.toml
DOCUMENT_PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"

# (model, mode): requests are described as the app reads them, answers as it writes them.
_MODELS: tuple[tuple[type[WireModel], JsonSchemaMode], ...] = (
    (CaptureRequest, "validation"),
    (bodies.CancelRequest, "validation"),
    (bodies.EventGridEvent, "validation"),
    (bodies.CloudEvent, "validation"),
    (CaptureStatusView, "serialization"),
    (bodies.FieldErrors, "serialization"),
    (bodies.ErrorBody, "serialization"),
    (bodies.CaptureAccepted, "serialization"),
    (bodies.CaptureAlreadyRunning, "serialization"),
    (bodies.VersionAlreadyTargeted, "serialization"),
    (bodies.CancelAccepted, "serialization"),
    (bodies.CaptureAlreadyFinished, "serialization"),
    (bodies.DeliverySummary, "serialization"),
    (bodies.ValidationResponse, "serialization"),
    (bodies.CaptureList, "serialization"),
    *((m, "validation" if m.__name__.endswith("Request") else "serialization") for m in MARKETPLACE_MODELS),
    *migration_api.MODELS,
)


def _untitled(node: Any, *, top: bool = True) -> Any:
    """``node`` without pydantic's generated property titles ("Sourcevmid"); a model keeps its own title."""
    if isinstance(node, list):
        return [_untitled(v, top=False) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _untitled(v, top=False) for k, v in node.items() if not (k == "title" and not top)}
    if isinstance(out.get("description"), str):  # docstrings' reST literals, as Markdown
        out["description"] = out["description"].replace("``", "`")
    if "properties" in node:
        out["properties"] = {name: _untitled(v, top=False) for name, v in node["properties"].items()}
    return out


def component_schemas() -> dict[str, Schema]:
    """Every model's JSON Schema, by name, with references into ``#/components/schemas``."""
    _, top = models_json_schema(_MODELS, by_alias=True, ref_template=REF)
    defs: dict[str, Schema] = top.get("$defs", {})
    return {name: _untitled(defs[name]) for name in sorted(defs)}


CAPTURE_ID = id_parameter(
    "The capture id (`capture-<vm>-<hash>`, from a 202 or 409 answer). Any other id is 404."
)
NOT_FOUND = json_answer("There is no capture with that id (code CaptureNotFound).", ref("ErrorBody"))
TOO_LARGE = json_answer(f"The body is larger than {MAX_BODY_BYTES} bytes.", ref("FieldErrors"))


def _post_captures() -> Schema:
    return {
        "operationId": "startCapture",
        "summary": "Start a capture of a VM into a Compute Gallery image version",
        "description": 'With captureMode "inPlace" the VM itself is generalized: it can never start again. '
        'With "specialized" it is left as it is.',
        "requestBody": {
            "required": True,
            "content": {
                JSON: {
                    "schema": ref("CaptureRequest"),
                    "examples": {
                        "inPlace": CAPTURE_EXAMPLE,
                        "specialized": SPECIALIZED_EXAMPLE,
                        "managedImage": MANAGED_IMAGE_EXAMPLE,
                    },
                }
            },
        },
        "responses": {
            "202": json_answer(
                "The capture started.",
                ref("CaptureAccepted"),
                {
                    "Location": header("The capture's status URL (captureStatusUri)."),
                    "Retry-After": header("Seconds before polling the status.", {"type": "string"}),
                },
            ),
            "400": json_answer("The request is invalid: every invalid field and why.", ref("FieldErrors")),
            "401": UNAUTHORIZED,
            "409": json_answer(
                "Nothing started: a capture of this VM is active (CaptureAlreadyRunning), or another active "
                "capture targets the same explicit image version (VersionAlreadyTargeted).",
                {"oneOf": [ref("CaptureAlreadyRunning"), ref("VersionAlreadyTargeted")]},
                {"Location": header("The running capture's status URL (with CaptureAlreadyRunning).")},
            ),
            "413": TOO_LARGE,
            "500": json_answer(
                "An app setting is malformed (code ConfigurationError): the message names it.",
                ref("ErrorBody"),
            ),
        },
    }


def _list_captures() -> Schema:
    query = [
        {
            "name": "runtimeStatus",
            "in": "query",
            "required": False,
            "description": "Comma-separated runtime statuses to keep (Running, Completed, Failed, Canceled…).",
            "schema": {"type": "string"},
        },
        {
            "name": "top",
            "in": "query",
            "required": False,
            "description": "At most this many captures (1-500, default 50); another value means the default.",
            "schema": {"type": "string"},
        },
    ]
    return {
        "operationId": "listCaptures",
        "summary": "The captures this app knows, newest first",
        "parameters": query,
        "responses": {"200": json_answer("The captures.", ref("CaptureList")), "401": UNAUTHORIZED},
    }


def _get_capture() -> Schema:
    return {
        "operationId": "getCapture",
        "summary": "The status of a capture: stage, per-disk and per-region progress, result or error",
        "parameters": [CAPTURE_ID],
        "responses": {
            "200": json_answer("The capture's status.", ref("CaptureStatusView")),
            "401": UNAUTHORIZED,
            "404": NOT_FOUND,
        },
    }


def _cancel_capture() -> Schema:
    return {
        "operationId": "cancelCapture",
        "summary": "Cancel a running capture: it stops at its next safe point and cleans up",
        "parameters": [CAPTURE_ID],
        "requestBody": {"required": False, "content": {JSON: {"schema": ref("CancelRequest")}}},
        "responses": {
            "202": json_answer("The cancel was requested; follow captureStatusUri.", ref("CancelAccepted")),
            "400": json_answer("The body nests too deeply.", ref("FieldErrors")),
            "401": UNAUTHORIZED,
            "404": NOT_FOUND,
            "409": json_answer(
                "The capture already ended (code CaptureAlreadyFinished).", ref("CaptureAlreadyFinished")
            ),
            "413": TOO_LARGE,
        },
    }


EVENT_KIND = {
    "name": "aeg-event-type",
    "in": "header",
    "required": False,
    "description": "Set by Event Grid; absent for CloudEvents deliveries (treated as Notification).",
    "schema": {"type": "string", "enum": ["Notification", "SubscriptionValidation", "SubscriptionDeletion"]},
}


def _delivery_content() -> Schema:
    """A delivery: Event Grid schema (an array), or CloudEvents (one event or a batch array)."""
    cloud_event = ref("CloudEvent")
    either = {
        "oneOf": [{"type": "array", "items": {"anyOf": [ref("EventGridEvent"), cloud_event]}}, cloud_event]
    }
    return {
        JSON: {"schema": either, "examples": DELIVERY_EXAMPLES},
        "application/cloudevents+json": {"schema": cloud_event},
        "application/cloudevents-batch+json": {"schema": {"type": "array", "items": cloud_event}},
    }


def _eventgrid_post() -> Schema:
    handled = {
        "anyOf": [ref("DeliverySummary"), ref("ValidationResponse"), {"type": "object", "maxProperties": 0}]
    }
    refused = (
        "The delivery cannot be read (not JSON, too deep, not an array or object, too many events), the "
    )
    return {
        "operationId": "deliverDeallocations",
        "summary": "Event Grid webhook: a tagged VM that was deallocated is captured (prepare: none)",
        "description": "Each event is handled alone: one that is malformed, forged, stale, or not a VM "
        "deallocation is logged and skipped, and the delivery is still answered 200.",
        "parameters": [EVENT_KIND],
        "requestBody": {"required": True, "content": _delivery_content()},
        "responses": {
            "200": json_answer(
                "Handled: the events' outcomes; the validation handshake's answer; {} for a deletion.",
                handled,
            ),
            "400": json_answer(
                refused + "handshake holds no validation code, or aeg-event-type is unknown.",
                ref("ErrorBody"),
            ),
            "401": UNAUTHORIZED,
            "413": json_answer("The delivery is too large (code DeliveryTooLarge).", ref("ErrorBody")),
            "503": json_answer(
                "An event hit a transient failure: Event Grid redelivers the batch.",
                ref("DeliverySummary"),
                {"Retry-After": header("Seconds before a redelivery.")},
            ),
        },
    }


def _eventgrid_options() -> Schema:
    origin = {
        "name": "WebHook-Request-Origin",
        "in": "header",
        "required": True,
        "description": "The host asking to deliver (the CloudEvents webhook handshake).",
        "schema": {"type": "string"},
    }
    allowed = {
        "WebHook-Allowed-Origin": header("The origin allowed: the one asked for."),
        "WebHook-Allowed-Rate": header("Deliveries per minute allowed: *."),
    }
    return {
        "operationId": "handshakeDeallocations",
        "summary": "CloudEvents webhook validation handshake",
        "parameters": [origin],
        "responses": {
            "200": {"description": "The origin is allowed (no body).", "headers": allowed},
            "400": json_answer("WebHook-Request-Origin is missing or not a host name.", ref("ErrorBody")),
            "401": UNAUTHORIZED,
        },
    }


def _get_openapi() -> Schema:
    return {
        "operationId": "getOpenApi",
        "summary": "This document",
        "security": [],
        "responses": {"200": json_answer("The OpenAPI 3.1 document of the API.", {"type": "object"})},
    }


def _security() -> tuple[dict[str, Schema], list[dict[str, list[str]]]]:
    about = "A function key (or the host's master key) of the Function App."
    schemes = {
        "functionKeyHeader": {
            "type": "apiKey",
            "in": "header",
            "name": "x-functions-key",
            "description": about,
        },
        "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code", "description": about},
    }
    return schemes, [{"functionKeyHeader": []}, {"functionKeyQuery": []}]


def build_document() -> dict[str, Any]:
    """The whole document (the same every time: it is compared with ``docs/openapi.json``)."""
    schemes, security = _security()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "VM Image Pipeline",
            "version": API_VERSION,
            "description": "Capture an Azure VM into a replicated Compute Gallery image version, follow its "
            "progress, cancel it. Every endpoint but this document needs a function key.",
        },
        "paths": {
            "/api/captures": {"post": _post_captures(), "get": _list_captures()},
            "/api/captures/{id}": {"get": _get_capture()},
            "/api/captures/{id}/cancel": {"post": _cancel_capture()},
            "/api/captures/{id}/marketplace-sas": {
                "post": marketplace_sas_operation(CAPTURE_ID, UNAUTHORIZED, NOT_FOUND, TOO_LARGE)
            },
            "/api/eventgrid/deallocations": {"post": _eventgrid_post(), "options": _eventgrid_options()},
            "/api/openapi.json": {"get": _get_openapi()},
            **migration_api.paths(),
        },
        "components": {"schemas": component_schemas(), "securitySchemes": schemes},
        "security": security,
    }


@cache
def document_text() -> str:
    """The document as the app serves it and the repository keeps it (indented, a final newline)."""
    return json.dumps(build_document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    """Write ``docs/openapi.json``; with ``--check``, only say whether it is up to date (exit 1 if not)."""
    current = DOCUMENT_PATH.read_text(encoding="utf-8") if DOCUMENT_PATH.exists() else ""
    if "--check" in argv:
        if current != document_text():
            print(f"{DOCUMENT_PATH} is stale: run make openapi", file=sys.stderr)
            return 1
        return 0
    DOCUMENT_PATH.write_text(document_text(), encoding="utf-8")
    print(f"wrote {DOCUMENT_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
