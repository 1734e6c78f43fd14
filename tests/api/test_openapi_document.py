"""The OpenAPI document: current with the code, covering every HTTP route the app registers, valid 3.1."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from shared.openapi import DOCUMENT_PATH, build_document, document_text, main


@cache
def _http_triggers() -> tuple[tuple[str, frozenset[str], str], ...]:
    """(``/api/<route>``, methods, auth level) of every HTTP-triggered function of function_app.py
    (``get_functions()`` may be called once per app: hence the cache)."""
    import function_app

    found = []
    for fn in function_app.app.get_functions():
        trigger = fn.get_trigger()
        if trigger.type == "httpTrigger":
            methods = frozenset(str(getattr(m, "value", m)).lower() for m in trigger.methods)
            level = str(getattr(trigger.auth_level, "name", trigger.auth_level)).lower()
            found.append((f"/api/{trigger.route}", methods, level))
    return tuple(found)


def _http_routes() -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for path, methods, _ in _http_triggers():
        routes.setdefault(path, set()).update(methods)
    return routes


def _auth_levels() -> dict[str, str]:
    return {path: level for path, _, level in _http_triggers()}


def test_committed_document_is_current() -> None:
    assert DOCUMENT_PATH.read_text(encoding="utf-8") == document_text(), "run make openapi"
    assert main(["--check"]) == 0


def test_every_route_and_method_is_documented_and_nothing_else() -> None:
    doc = build_document()
    documented = {path: set(ops) for path, ops in doc["paths"].items()}
    assert documented == _http_routes()


def test_security_matches_each_routes_auth_level() -> None:
    doc = build_document()
    assert {"functionKeyHeader": []} in doc["security"] and {"functionKeyQuery": []} in doc["security"]
    for path, level in _auth_levels().items():
        for op in doc["paths"][path].values():
            anonymous = op.get("security") == []
            assert anonymous == (level == "anonymous"), (path, level)
            assert ("401" in op["responses"]) == (not anonymous), path


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def test_every_reference_resolves_and_the_400_shape_lists_fields() -> None:
    doc = json.loads(document_text())
    assert doc["openapi"].startswith("3.1")
    names = set(doc["components"]["schemas"])
    assert {r.rsplit("/", 1)[1] for r in _refs(doc)} <= names
    bad = doc["paths"]["/api/captures"]["post"]["responses"]["400"]["content"]["application/json"]["schema"]
    assert bad == {"$ref": "#/components/schemas/FieldErrors"}
    field_error = doc["components"]["schemas"]["FieldError"]
    assert field_error["required"] == ["field", "message"]
    request = doc["components"]["schemas"]["CaptureRequest"]
    assert request["additionalProperties"] is False and "prepare" not in request["required"]
    # prepare is required with captureMode "inPlace" only: its description says so.
    assert "inPlace" in request["properties"]["prepare"]["description"]


def operations(schema: Any) -> list[Any]:
    """Every operation of a loaded schemathesis schema (each must have loaded without an error)."""
    from schemathesis.core.result import Ok

    found = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        found.append(result.ok())
    return found


def test_document_is_valid_openapi_for_schemathesis() -> None:
    import schemathesis

    schema = schemathesis.openapi.from_dict(build_document())
    labels = sorted(operation.label for operation in operations(schema))
    assert labels == [
        "GET /api/captures",
        "GET /api/captures/{id}",
        "GET /api/migrations/{id}",
        "GET /api/openapi.json",
        "OPTIONS /api/eventgrid/deallocations",
        "POST /api/captures",
        "POST /api/captures/{id}/cancel",
        "POST /api/captures/{id}/marketplace-sas",
        "POST /api/eventgrid/deallocations",
        "POST /api/migrations",
        "POST /api/migrations/{id}/cancel",
    ]


def test_examples_are_requests_the_app_takes() -> None:
    from datetime import UTC, datetime

    from shared.api_examples import CAPTURE_EXAMPLE, DELIVERY_EXAMPLES
    from shared.events import DeallocationEvent, parse_event, validation_code
    from shared.requests import validate_request

    request, errors = validate_request(CAPTURE_EXAMPLE["value"])
    assert request is not None and errors == [], errors
    (event,) = DELIVERY_EXAMPLES["deallocation"]["value"]
    parsed = parse_event(event, datetime(2026, 5, 1, 10, 1, tzinfo=UTC))
    assert isinstance(parsed, DeallocationEvent) and parsed.vm_id.endswith("/virtualMachines/vm-web"), parsed
    assert validation_code(DELIVERY_EXAMPLES["validation"]["value"]) == "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
