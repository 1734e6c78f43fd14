"""The HTTP answers every trigger shares: JSON bodies, the app's own capture URLs, 400 and 404 bodies.

The capture URLs are this app's routes (``/api/captures/{id}`` and its ``/cancel``), derived from the
request's own URL, so they never carry a key.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import azure.functions as func

from shared.bounded_json import decode_json
from shared.field_errors import FieldError

T = TypeVar("T")

SHOWN_ID_CHARS = 100  # an id echoed in an answer is cut here (an id that is not a capture id can be long)


def json_response(
    body: Any, status: int, headers: dict[str, str] | None = None, *, compact: bool = False
) -> func.HttpResponse:
    """A JSON answer (indented for people reading the API by hand; ``compact`` for machine callers)."""
    text = json.dumps(body) if compact else json.dumps(body, indent=2)
    return func.HttpResponse(text, status_code=status, mimetype="application/json", headers=headers)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def field_errors(errors: list[FieldError], status: int = 400) -> func.HttpResponse:
    """The answer to a refused request: every invalid field and why (400; 413 for a body too large)."""
    return json_response({"errors": [e.to_wire() for e in errors]}, status)


def body_refused(message: str, status: int) -> func.HttpResponse:
    """A body that could not be read at all (too large, too deep, not JSON…): one ``(body)`` error."""
    return field_errors([FieldError(field="(body)", message=message)], status)


def read_request(
    req: func.HttpRequest, validate: Callable[[Any], tuple[T | None, list[FieldError]]]
) -> T | func.HttpResponse:
    """The request ``validate`` made of the JSON body, or the answer refusing it (413/400 ``body_refused``
    for a body that cannot be read, 400 ``field_errors`` for invalid fields)."""
    body, problem = decode_json(req.get_body() or b"")
    if problem is not None:
        return body_refused(problem.message, problem.status)
    request, errors = validate(body)
    return field_errors(errors) if request is None else request


def configuration_error(exc: ValueError) -> func.HttpResponse:
    """The 500 answer to a malformed app setting (``shared.settings`` names it in ``exc``)."""
    return json_response(error_body("ConfigurationError", str(exc)), 500)


def not_found(instance_id: str) -> func.HttpResponse:
    shown = instance_id if len(instance_id) <= SHOWN_ID_CHARS else instance_id[:SHOWN_ID_CHARS] + "…"
    return json_response(error_body("CaptureNotFound", f"There is no capture with id {shown!r}."), 404)


def capture_url(req: func.HttpRequest, instance_id: str) -> str:
    """The status URL of a capture, from any request under ``…/captures`` (its query and fragment dropped)."""
    base = req.url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    if base.endswith("/captures"):
        return f"{base}/{instance_id}"
    return base.rsplit("/captures", 1)[0] + f"/captures/{instance_id}"


def capture_links(req: func.HttpRequest, instance_id: str) -> dict[str, str]:
    """The app's own URLs of a capture: its status and its cancel endpoint (never a key in them)."""
    status_url = capture_url(req, instance_id)
    return {"captureStatusUri": status_url, "cancelPostUri": f"{status_url}/cancel"}
