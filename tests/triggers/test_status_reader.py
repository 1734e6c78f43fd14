"""The one reader of Durable statuses (shared.instances) and the shared HTTP answers (triggers.http_helpers)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from shared.instances import InstanceSnapshot, decoded, input_request, input_run_id, snapshot_of, status_name
from shared.status import CaptureProgress, DiskProgress
from shared.status_view import aggregate_status, capture_progress, shown_runtime_status, sub_instance_ids
from triggers.http_helpers import body_refused, capture_links, capture_url, json_response, not_found
from triggers.status_reader import is_active, read_instance

VM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"


def _progress(**over: Any) -> CaptureProgress:
    return CaptureProgress(capture_id="capture-x", source_vm_id=VM, **over)


def test_decoded_removes_up_to_two_json_text_layers_and_keeps_other_text() -> None:
    value = {"runId": "r-1", "request": {"deleteSnapshots": False}}
    assert decoded(value) == value
    assert decoded(json.dumps(value)) == value
    assert decoded(json.dumps(json.dumps(value))) == value
    assert decoded("not json") == "not json"
    assert decoded(None) is None and decoded(3) == 3


def test_status_name_reads_the_enum_and_the_string() -> None:
    assert status_name(df.OrchestrationRuntimeStatus.Running) == "Running"
    assert status_name("Completed") == "Completed"
    assert status_name(None) is None


def test_snapshot_of_decodes_every_value_once_and_makes_times_aware() -> None:
    created = datetime(2026, 5, 1, 10, 0, 0)  # naive, as some hosts give it
    status = SimpleNamespace(
        runtime_status=df.OrchestrationRuntimeStatus.Running,
        custom_status=json.dumps(_progress(run_id="capture-x-1").to_wire()),
        output=None,
        input_=json.dumps(
            json.dumps({"captureId": "capture-x", "runId": "capture-x-1", "request": {"a": 1}})
        ),
        created_time=created,
        last_updated_time=None,
        instance_id="capture-x",
    )
    snap = snapshot_of(status)
    assert snap is not None and snap.active and snap.runtime_status == "Running"
    assert snap.custom["runId"] == "capture-x-1"
    assert snap.request == {"a": 1} and snap.input_run_id == "capture-x-1"
    assert snap.created == created.replace(tzinfo=UTC) and snap.last_updated is None
    assert snap.instance_id == "capture-x"


def test_snapshot_of_a_missing_instance_is_none() -> None:
    assert snapshot_of(None) is None
    assert snapshot_of(SimpleNamespace(runtime_status=None)) is None
    # A stand-in that carries only some attributes still reads.
    snap = snapshot_of(SimpleNamespace(runtime_status="Failed"))
    assert snap is not None and not snap.active and snap.request == {}


def test_inputs_without_a_run_id_or_request_read_as_absent() -> None:
    assert input_run_id({"captureId": "c"}) == "c"  # a run started before run ids
    assert input_run_id("not json") is None and input_run_id(None) is None
    assert input_request(json.dumps({"request": "text"})) == {}
    assert input_request(["request"]) == {}


def test_capture_readings_from_a_custom_status() -> None:
    p = _progress(run_id="capture-x-2", export=True, disks=[DiskProgress(key="os", name="d")])
    assert capture_progress(json.dumps(p.to_wire())) == p
    assert capture_progress("not json") is None and capture_progress({"stage": 3}) is None
    assert sub_instance_ids("capture-x", json.dumps(json.dumps(p.to_wire()))) == [
        "capture-x-2:version",
        "capture-x-2:export:os",
    ]
    assert sub_instance_ids("capture-x", None) == ["capture-x:version"]
    canceled = _progress(state="canceled")
    assert shown_runtime_status("Completed", canceled) == "Canceled"
    assert shown_runtime_status("Failed", canceled) == "Failed"
    assert shown_runtime_status("Completed", None) == "Completed"


def test_a_hand_made_snapshot_is_decoded_like_a_read_one() -> None:
    p = _progress(state="canceled")
    view = aggregate_status("capture-x", InstanceSnapshot("Completed", custom_status=json.dumps(p.to_wire())))
    assert view.runtime_status == "Canceled"


class _Client:
    def __init__(self, statuses: dict[str, Any]) -> None:
        self.statuses = statuses
        self.asked: list[tuple[str, bool]] = []

    async def get_status(self, instance_id: str, show_input: bool = False) -> Any:
        self.asked.append((instance_id, show_input))
        return self.statuses.get(instance_id)


def test_read_instance_asks_for_the_input_only_when_wanted() -> None:
    client = _Client({"a": SimpleNamespace(runtime_status="Running", input_={"runId": "r"})})
    plain = asyncio.run(read_instance(client, "a"))
    full = asyncio.run(read_instance(client, "a", with_input=True))
    assert plain is not None and full is not None and full.input_run_id == "r"
    assert client.asked == [("a", False), ("a", True)]
    assert asyncio.run(is_active(client, "a"))
    assert not asyncio.run(is_active(client, "missing"))


def _req(url: str) -> func.HttpRequest:
    return func.HttpRequest(method="POST", url=url, body=b"", headers={})


def test_capture_urls_from_every_route_drop_the_query() -> None:
    base = "http://localhost:7071/api/captures"
    for url in (f"{base}?code=k", f"{base}/", f"{base}/capture-a?code=k", f"{base}/capture-a/cancel#x"):
        assert capture_url(_req(url), "capture-a") == f"{base}/capture-a"
    links = capture_links(_req(f"{base}?code=secret"), "capture-b")
    assert links == {"captureStatusUri": f"{base}/capture-b", "cancelPostUri": f"{base}/capture-b/cancel"}


def test_shared_answers_keep_their_bodies() -> None:
    r = not_found("x" * 150)
    body = json.loads(r.get_body())
    assert r.status_code == 404 and body["error"]["code"] == "CaptureNotFound"
    assert "x" * 100 + "…" in body["error"]["message"] and "x" * 101 not in body["error"]["message"]
    refused = body_refused("too deep", 400)
    assert json.loads(refused.get_body()) == {"errors": [{"field": "(body)", "message": "too deep"}]}
    assert json_response({"a": 1}, 200, compact=True).get_body() == b'{"a": 1}'
    assert json_response({"a": 1}, 200).get_body() == b'{\n  "a": 1\n}'
