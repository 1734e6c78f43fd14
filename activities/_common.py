"""What every activity shares: the typed wire wrapper, Azure error translation and safe logging.

``activity(InputModel)`` turns ``fn(inp: InputModel) -> ResultModel`` into the function the Durable
worker calls: ``fn(payload: dict) -> dict``. It is also the last line of defence for secrets: any
exception leaving an activity is a ``CaptureError`` (whose text is redacted) raised ``from None``, so
neither its message nor a chained cause can carry a SAS into durable history or logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast, overload

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from pydantic import ValidationError

from shared import telemetry
from shared.activity_types import Activity
from shared.azure_errors import code_text, translate_azure_error
from shared.errors import CaptureError
from shared.ids import ResourceId
from shared.model_base import WireModel
from shared.redaction import strip_query
from shared.trace_ids import pop_trace

log = logging.getLogger("activities")

In = TypeVar("In", bound=WireModel)
Out = TypeVar("Out", bound=WireModel)
T = TypeVar("T")

Payload = dict[str, Any]

# Fields that name the resource an activity works on, in order of preference, for the info log line.
_RESOURCE_FIELDS = ("vm_id", "snapshot_id", "version_id", "blob_url", "account_url", "source_vm_id")


def _resource_of(inp: WireModel) -> str | None:
    for name in _RESOURCE_FIELDS:
        value = getattr(inp, name, None)
        if isinstance(value, str):
            return strip_query(value)
    vm = getattr(inp, "vm", None)
    if vm is not None and isinstance(getattr(vm, "id", None), str):
        return str(vm.id)
    gallery = getattr(inp, "gallery", None)
    if gallery is not None and isinstance(getattr(gallery, "name", None), str):
        return f"gallery {gallery.resource_group}/{gallery.name}"
    disk = getattr(inp, "disk", None)
    if disk is not None and isinstance(getattr(disk, "id", None), str):
        return str(disk.id)
    return None


# The worker-facing function of every declared activity, by name (filled by ``activity(<Activity>)``).
IMPLEMENTATIONS: dict[str, Callable[[Payload], Payload]] = {}


@overload
def activity(
    declared: Activity[In, Out],
) -> Callable[[Callable[[In], Out]], Callable[[Payload], Payload]]: ...
@overload
def activity(declared: type[In]) -> Callable[[Callable[[In], Out]], Callable[[Payload], Payload]]: ...
def activity(
    declared: Activity[In, Out] | type[In],
) -> Callable[[Callable[[In], Out]], Callable[[Payload], Payload]]:
    """Wrap ``fn(inp) -> result`` as the worker-facing ``fn(payload: dict) -> dict``.

    Given an ``Activity`` declaration (``shared.activity_types``) the function takes its name and input
    type from it and is recorded in ``IMPLEMENTATIONS``; given a bare input model it keeps its own name.
    """
    stub = declared if isinstance(declared, Activity) else None
    input_model: type[WireModel] = stub.input if stub is not None else cast("type[WireModel]", declared)

    def decorate(fn: Callable[[In], Out]) -> Callable[[Payload], Payload]:
        name = stub.name if stub is not None else fn.__name__

        def call(payload: Payload, span: Any) -> Payload:
            try:
                inp = input_model.from_wire(payload)
            except ValidationError as exc:
                raise CaptureError(
                    f"activity {name} received an invalid {input_model.__name__}: "
                    + "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()),
                    step=name,
                    code="InvalidActivityInput",
                ) from None
            resource = _resource_of(inp)
            if resource is not None:
                span.set_attribute("azure.resource_id", resource)
            log.info("activity %s on %s", name, resource)
            try:
                result = fn(cast(In, inp))
            except CaptureError as exc:
                log.info("activity %s on %s failed: %s", name, resource, exc.info.message)
                raise
            except Exception as exc:
                # Anything not yet translated (a transport error, a bug) still leaves redacted.
                raise translate_azure_error(exc, step=name, resource=resource) from None
            return result.to_wire()

        def run(payload: Payload) -> Payload:
            ref = pop_trace(payload)  # the span this call's span is under (shared.trace_ids)
            with telemetry.activity_span(name, ref) as span:
                try:
                    return call(payload, span)
                except CaptureError as exc:
                    telemetry.mark_failed(span, exc.info)
                    raise

        # Not functools.wraps: the worker inspects the signature and must see ``payload``.
        run.__name__ = name
        run.__qualname__ = name
        run.__doc__ = fn.__doc__
        run.__module__ = fn.__module__
        run.impl = fn  # type: ignore[attr-defined]
        if stub is not None:
            IMPLEMENTATIONS[name] = run
        return run

    return decorate


@contextmanager
def azure_call(step: str, resource: str | None = None) -> Iterator[None]:
    """Translate any Azure failure inside the block into our error hierarchy (redacted, no chained cause)."""
    try:
        yield
    except CaptureError:
        raise
    except Exception as exc:
        raise translate_azure_error(exc, step=step, resource=resource) from None


def get_or_none(call: Callable[[], T], *, step: str, resource: str | None = None) -> T | None:
    """Run a GET; ``None`` when Azure answers 404, our error hierarchy for any other failure."""
    try:
        return call()
    except ResourceNotFoundError:
        return None
    except CaptureError:
        raise
    except Exception as exc:
        raise translate_azure_error(exc, step=step, resource=resource) from None


def azure_code(exc: HttpResponseError) -> str | None:
    """Azure's error code of a failed call (ARM ``error.code`` or storage ``x-ms-error-code``)."""
    if exc.error is not None and exc.error.code:
        return code_text(exc.error.code)
    return code_text(getattr(exc, "error_code", None))


def parse_id(value: str, *, field: str, step: str) -> ResourceId:
    try:
        return ResourceId.parse(value)
    except ValueError as exc:
        raise CaptureError(
            f"{field} {value!r} is not valid: {exc}", step=step, code="InvalidActivityInput"
        ) from None


def as_dict(model: Any) -> dict[str, Any]:
    """The REST (camelCase) JSON of an SDK model, which is what the ARM docs and azsim describe."""
    if model is None:
        return {}
    if isinstance(model, dict):
        return model
    return dict(model.as_dict())


def props(resource: dict[str, Any]) -> dict[str, Any]:
    value = resource.get("properties")
    return value if isinstance(value, dict) else {}


def norm_region(name: str) -> str:
    """``West Europe`` / ``westeurope`` → ``westeurope`` (ARM returns display names in some places)."""
    return name.replace(" ", "").lower()
