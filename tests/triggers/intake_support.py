"""Helpers of the intake tests: a valid request, and the trigger functions called in-process.

The in-process calls run the real trigger functions (the same code the host runs) with a Durable client
that records what reaches it, so thousands of cases run in seconds; the devhost tests send a smaller
number over real HTTP and a real queue.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import azure.functions as func

import triggers.http_cancel as http_cancel
import triggers.http_captures as http_captures
import triggers.queue_captures as queue_captures
from triggers.guards import VmView

SUB = "89d0a3c1-7028-549c-b21b-dc72b5b9bb42"
VM_ID = f"/subscriptions/{SUB}/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/vm-web"
BASE = "http://127.0.0.1:7071/api/captures"


def valid_request(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sourceVmId": VM_ID,
        "gallery": {"resourceGroup": "rg-images", "name": "galContoso"},
        "imageDefinition": {"name": "web-ubuntu", "publisher": "contoso", "offer": "web", "sku": "ubuntu-22"},
        "version": "1.4.0",
        "targetRegions": [{"name": "westeurope", "replicaCount": 2}, {"name": "eastus2"}],
        "prepare": "deprovision",
        "captureMode": "inPlace",
    }
    body.update(over)
    return copy.deepcopy(body)


@dataclass
class _Status:
    runtime_status: str
    input_: Any = None
    custom_status: Any = None
    output: Any = None
    created_time: datetime | None = None
    last_updated_time: datetime | None = None
    instance_id: str | None = None


@dataclass
class RecordingClient:
    """Stands in for the Durable client: records every instance id it is asked about and every start."""

    ids: list[str] = field(default_factory=list)
    started: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    running: dict[str, _Status] = field(default_factory=dict)

    async def get_status(self, instance_id: str, show_input: bool = False, **_: Any) -> _Status | None:
        self.ids.append(instance_id)
        return self.running.get(instance_id)

    async def get_status_by(
        self, runtime_status: Any = None, instance_id_prefix: str = "", **_: Any
    ) -> list[_Status]:
        """The running instances (all of them are active in this stand-in), as the SDK's list returns."""
        return [
            _Status(s.runtime_status, instance_id=i)
            for i, s in self.running.items()
            if i.startswith(instance_id_prefix or "")
        ]

    async def start_new(self, name: str, instance_id: str, payload: Any) -> str:
        self.ids.append(instance_id)
        self.started.append((instance_id, payload))
        now = datetime.now(UTC)
        self.running[instance_id] = _Status("Running", input_=json.dumps(payload), created_time=now)
        return instance_id

    async def raise_event(self, instance_id: str, name: str, data: Any) -> None:
        self.ids.append(instance_id)


def _user_function(builder: Any) -> Any:
    """The trigger's own coroutine function, without the Durable middleware that builds the client from JSON."""
    return inspect.unwrap(builder._function.get_user_function())


def post(client: RecordingClient, body: bytes) -> func.HttpResponse:
    req = func.HttpRequest(method="POST", url=f"{BASE}?code=function-key", body=body, headers={})
    fn = _user_function(http_captures.post_capture)
    result: func.HttpResponse = asyncio.run(fn(req, client))
    return result


def get_status(client: RecordingClient, capture_id: str) -> func.HttpResponse:
    req = func.HttpRequest(
        method="GET", url=f"{BASE}/x", body=b"", headers={}, route_params={"id": capture_id}
    )
    fn = _user_function(http_captures.get_capture)
    result: func.HttpResponse = asyncio.run(fn(req, client))
    return result


def cancel(client: RecordingClient, capture_id: str, body: bytes = b"") -> func.HttpResponse:
    req = func.HttpRequest(
        method="POST", url=f"{BASE}/x/cancel", body=body, headers={}, route_params={"id": capture_id}
    )
    fn = _user_function(http_cancel.cancel_capture)
    result: func.HttpResponse = asyncio.run(fn(req, client))
    return result


def queue_message(body: bytes) -> func.QueueMessage:
    return func.QueueMessage(id="msg-1", body=body, pop_receipt="r")


@dataclass
class QueueRun:
    """Runs the queue trigger in-process: poison messages are collected instead of sent, the VM always exists."""

    client: RecordingClient = field(default_factory=RecordingClient)
    poisoned: list[dict[str, Any]] = field(default_factory=list)

    def deliver(self, body: bytes) -> None:
        fn = _user_function(queue_captures.capture_from_queue)
        asyncio.run(fn(queue_message(body), self.client))


def vm_view(vm_id: str) -> VmView:
    return VmView(
        id=vm_id,
        name=vm_id.rsplit("/", 1)[-1],
        location="westeurope",
        tags={},
        power_state="running",
        generalized=False,
    )


def body_of(resp: func.HttpResponse) -> Any:
    raw = resp.get_body()
    return json.loads(raw) if raw else None
