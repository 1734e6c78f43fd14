"""Field errors: what a refused request is told, one entry per problem with the JSON path of the field.

The list is bounded (count and length), because a hostile body could otherwise make the refusal itself
large; the entries past the bound are counted in a last entry.
"""

from __future__ import annotations

from pydantic import ValidationError

from shared.model_base import WireModel

MAX_FIELD_ERRORS = 50
MAX_ERROR_TEXT = 1000


class FieldError(WireModel):
    field: str
    message: str


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + part
    return path or "(body)"


_MORE = "… ("


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded_errors(errors: list[FieldError], limit: int = MAX_FIELD_ERRORS) -> list[FieldError]:
    """At most ``limit`` errors, each with a bounded path and message; the rest counted in a last entry.
    Idempotent: a list bounded already (its count entry last) is returned as is."""
    if len(errors) == limit + 1 and errors[-1].message.startswith(_MORE):
        return list(errors)
    out = [
        FieldError(field=_clip(e.field, 300), message=_clip(e.message, MAX_ERROR_TEXT))
        for e in errors[:limit]
    ]
    if len(errors) > limit:
        out.append(FieldError(field="(body)", message=f"{_MORE}{len(errors) - limit} more errors not shown)"))
    return out


def pydantic_errors(exc: ValidationError) -> list[FieldError]:
    """Pydantic's errors as field errors: the JSON path of each, and its reason without pydantic's prefix."""
    errors = []
    for e in exc.errors(include_url=False, include_input=False):
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        errors.append(FieldError(field=_loc_to_path(loc), message=msg))
    return errors
