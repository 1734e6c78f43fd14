"""The pieces of the OpenAPI document every part of it builds from (``shared.openapi``, ``shared.migration_api``).

References into ``#/components/schemas``, JSON answers with their headers, the 401 the Functions host
gives, and an ``{id}`` path parameter.
"""

from __future__ import annotations

from typing import Any

JSON = "application/json"
REF = "#/components/schemas/{model}"
Schema = dict[str, Any]

UNAUTHORIZED = {"description": "No valid function key: the Functions host answers, with no body."}


def ref(name: str) -> Schema:
    return {"$ref": REF.format(model=name)}


def json_answer(description: str, schema: Schema, headers: dict[str, Any] | None = None) -> Schema:
    answer: Schema = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


def header(description: str, schema: Schema | None = None) -> Schema:
    return {"description": description, "schema": schema or {"type": "string"}}


def id_parameter(description: str) -> Schema:
    """The ``{id}`` path parameter of a route, described as ``description``."""
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }
