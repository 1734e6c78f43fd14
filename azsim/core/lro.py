"""ARM long-running operations: the operation store and the headers/bodies ARMPolling expects.

Rules (docs/azure-facts.md#what-the-pinned-sdk-accepts, and the Compute specs' declared headers): the
initial 200/201/202 carries ``Azure-AsyncOperation`` and ``Location`` (``monitor=true``). The status
URL answers ``{"status": "InProgress"|"Succeeded"|"Failed"|"Canceled"}``; the Location URL answers 202 while
running and, when done, 200 with the result (POST) or the resource (PUT/PATCH: final-state-via
location), or an empty 200 (DELETE and POSTs without a result).
Both always carry a ``Retry-After`` ≥ 1 plus ``x-ms-retry-after-ms`` (scaled), which azure-core
reads first, so tests with a small time scale poll fast without the 30 s default.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from azsim.core.clock import utc_iso

# Which RP family the operation belongs to decides the URL segment, as in Azure.
OP_FAMILIES = ("operations", "DiskOperations", "capsOperations")


@dataclass
class Operation:
    id: str
    subscription: str
    location: str
    family: str
    api_version: str
    resource_id: str
    principal: str
    start_time: str = field(default_factory=utc_iso)
    status: str = "InProgress"
    end_time: str | None = None
    error: dict[str, Any] | None = None
    # Body returned by the Location (monitor) URL when done and, as ``properties.output``, by the
    # status URL (Run Command, beginGetAccess); None = empty 200.
    result: Any = None
    # For a PUT/PATCH: the resource as GET shows it, which the Location URL answers once the operation
    # has succeeded (the specs' final-state-via location); not part of the status body.
    resource_view: Callable[[], Any] | None = None

    @property
    def done(self) -> bool:
        return self.status != "InProgress"

    def status_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.id, "startTime": self.start_time, "status": self.status}
        if self.end_time:
            body["endTime"] = self.end_time
        if self.error:
            body["error"] = self.error
        if self.status == "Succeeded" and self.result is not None:
            body["properties"] = {"output": self.result}
        return body

    def finish(self, status: str, *, result: Any = None, error: dict[str, Any] | None = None) -> None:
        if self.done:
            return
        self.status = status
        self.end_time = utc_iso()
        if result is not None:
            self.result = result
        self.error = error

    def succeed(self, result: Any = None) -> None:
        self.finish("Succeeded", result=result)

    def fail(self, code: str, message: str) -> None:
        self.finish("Failed", error={"code": code, "message": message})


class OperationStore:
    def __init__(self) -> None:
        self._ops: dict[str, Operation] = {}
        self._lock = threading.Lock()

    def create(
        self,
        *,
        subscription: str,
        location: str,
        family: str,
        api_version: str,
        resource_id: str,
        principal: str,
    ) -> Operation:
        if family not in OP_FAMILIES:
            raise ValueError(family)
        op = Operation(
            id=str(uuid.uuid4()),
            subscription=subscription,
            location=location.lower().replace(" ", ""),
            family=family,
            api_version=api_version,
            resource_id=resource_id,
            principal=principal,
        )
        with self._lock:
            self._ops[op.id] = op
        return op

    def get(self, op_id: str) -> Operation | None:
        with self._lock:
            return self._ops.get(op_id)

    def all(self) -> list[Operation]:
        with self._lock:
            return list(self._ops.values())

    def clear(self) -> None:
        with self._lock:
            self._ops.clear()


def operation_url(base_url: str, op: Operation, *, monitor: bool) -> str:
    url = (
        f"{base_url}/subscriptions/{op.subscription}/providers/Microsoft.Compute/locations/{op.location}/"
        f"{op.family}/{op.id}?p={quote(op.resource_id.rsplit('/', 1)[-1])}"
    )
    if monitor:
        url += "&monitor=true"
    return url + f"&api-version={quote(op.api_version)}"


def retry_headers(real_seconds: float, *, require_retry_after: bool = False) -> dict[str, str]:
    """Delay headers the SDK honours.

    azure-core reads ``Retry-After`` before ``x-ms-retry-after-ms``, so a delay under a second (a
    compressed time scale) is sent only as ``x-ms-retry-after-ms``; ARM's integer ``Retry-After``
    (never 0, which would make clients fall back to a 30 s default) is used from one second up.
    A 429 must carry ``Retry-After`` for azure-core to retry a POST, so there a sub-second delay is
    sent as a fractional ``Retry-After`` (azure-core parses it as a float).
    """
    ms = max(10, int(real_seconds * 1000))
    if real_seconds >= 1:
        return {"Retry-After": str(math.ceil(real_seconds))}
    if require_retry_after:
        return {"Retry-After": f"{ms / 1000:.3f}", "x-ms-retry-after-ms": str(ms)}
    return {"x-ms-retry-after-ms": str(ms)}


def lro_headers(base_url: str, op: Operation, *, location: bool, poll_real_s: float) -> dict[str, str]:
    headers = {"Azure-AsyncOperation": operation_url(base_url, op, monitor=False)}
    if location:
        headers["Location"] = operation_url(base_url, op, monitor=True)
    headers.update(retry_headers(poll_real_s))
    return headers
