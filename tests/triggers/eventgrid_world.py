"""An in-process world for the Event Grid webhook: VMs by id, a Durable client that remembers captures.

``handle_request`` runs unchanged; only its two outside calls are replaced: ``read_vm`` (the ARM GET)
reads ``World.vms``, and ``start_capture`` records the request and marks the VM's capture Running, so
the trigger's own duplicate checks (``previous_capture`` through ``client.get_status``) see it.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from shared.ids import capture_instance_id
from tests.support.eventgrid import DEALLOCATE, as_cloud_event
from triggers import eventgrid_captures
from triggers.guards import VmView
from triggers.starting import StartOutcome

__all__ = ["GOOD_TAGS", "NOW", "SUB", "World", "as_cloud_event", "eg_event", "vm_id", "world"]

SUB = "89d0a3c1-7028-549c-b21b-dc72b5b9bb42"
NOW = datetime(2026, 5, 1, 10, 0, 0, tzinfo=UTC)
GOOD_TAGS = {
    "image-pipeline:mode": "inPlace",
    "image-pipeline:gallery": "rg-images/galContoso",
    "image-pipeline:definition": "golden",
    "image-pipeline:identifier": "contoso/golden/ubuntu",
}


def vm_id(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/{name}"


def eg_event(vm: str, *, at: datetime | None = None, event_id: str | None = None) -> dict[str, Any]:
    """A genuine-looking deallocation event (Event Grid schema) of VM ``vm``."""
    rid = vm_id(vm)
    return {
        "id": event_id or str(uuid.uuid4()),
        "topic": f"/subscriptions/{SUB}/resourceGroups/rg-build",
        "subject": rid,
        "eventType": "Microsoft.Resources.ResourceActionSuccess",
        "eventTime": (at or NOW - timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z"),
        "dataVersion": "2",
        "metadataVersion": "1",
        "data": {
            "resourceProvider": "Microsoft.Compute",
            "resourceUri": rid,
            "operationName": DEALLOCATE,
            "status": "Succeeded",
            "subscriptionId": SUB,
            "correlationId": str(uuid.uuid4()),
        },
    }


# One event loop (and so one thread pool for asyncio.to_thread) for every delivery of a test session:
# a fresh loop per delivery would start and join threads thousands of times in the fuzz.
_LOOP = asyncio.new_event_loop()


@dataclass
class Capture:
    status: str
    created: datetime
    ended: datetime
    request: dict[str, Any]


@dataclass
class World:
    vms: dict[str, VmView] = field(default_factory=dict)
    captures: dict[str, Capture] = field(default_factory=dict)  # by instance id
    started: list[dict[str, Any]] = field(default_factory=list)  # the requests started, wire form
    read_error: Exception | None = None
    now: datetime = NOW

    def add_vm(
        self, name: str, tags: dict[str, str], power: str = "deallocated", *, generalized: bool = False
    ) -> str:
        rid = vm_id(name)
        self.vms[rid.lower()] = VmView(rid, name, "westeurope", dict(tags), power, generalized)
        return rid

    def read_vm(self, rid: str) -> VmView | None:
        if self.read_error is not None:
            raise self.read_error
        return self.vms.get(rid.lower())

    async def get_status(self, instance_id: str, show_input: bool = False) -> Any:
        c = self.captures.get(instance_id)
        if c is None:
            return None
        return SimpleNamespace(
            runtime_status=c.status,
            created_time=c.created,
            last_updated_time=c.ended,
            input_={"request": c.request},
        )

    async def start_capture(self, client: Any, request: Any, *, trigger: str) -> StartOutcome:
        iid = capture_instance_id(request.source_vm_id)
        if iid in self.captures and self.captures[iid].status == "Running":
            return StartOutcome(iid, started=False, runtime_status="Running")
        wire = request.to_wire()
        self.started.append(wire)
        self.captures[iid] = Capture("Running", self.now, self.now, wire)
        return StartOutcome(iid, started=True, run_id=f"{iid}-run")

    def finish_all(self, ended: datetime) -> None:
        for c in self.captures.values():
            c.status, c.ended = "Completed", ended

    def deliver(
        self, body: bytes, headers: dict[str, str] | None = None, method: str = "POST"
    ) -> tuple[int, Any, dict[str, str]]:
        import json

        hdrs = {"aeg-event-type": "Notification", **(headers or {})}
        call = eventgrid_captures.handle_request(self, method, hdrs, body, self.now)
        resp = _LOOP.run_until_complete(call)
        raw = resp.get_body()
        return resp.status_code, json.loads(raw) if raw else None, dict(resp.headers)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    w = World()
    monkeypatch.setattr(eventgrid_captures, "read_vm", w.read_vm)
    monkeypatch.setattr(eventgrid_captures, "start_capture", w.start_capture)
    return w
