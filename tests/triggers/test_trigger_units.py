"""Unit tests of issue 5's pure parts: VM tags → request, Event Grid parsing, notices, dedupe rules, webhook retries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from activities.notices import WEBHOOK_ATTEMPTS, deliver_webhook
from shared.events import (
    DEALLOCATE_OPERATION,
    DeallocationEvent,
    IgnoredEvent,
    parse_delivery,
    parse_event,
)
from shared.notices import CaptureNotice, notice_from_progress, notice_from_result
from shared.status import CaptureProgress, CaptureResult, DiskProgress, ErrorView, RegionProgress
from shared.vm_tags import TAG_DEALLOCATED_AT, TAG_EVENT_ID, opted_in, request_from_tags
from triggers.guards import PreviousCapture, event_skip_reason, queue_skip_reason
from triggers.http_cancel import sub_instances

SUB = "89d0a3c1-7028-549c-b21b-dc72b5b9bb42"
VM = f"/subscriptions/{SUB}/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/vm-web"

# --- VM tags -------------------------------------------------------------------------------------

GOOD_TAGS = {
    "app": "web",
    "image-pipeline:mode": "inPlace",
    "image-pipeline:gallery": "rg-images/galContoso",
    "image-pipeline:definition": "web-ubuntu",
    "image-pipeline:identifier": "contoso/web/ubuntu-22",
    "image-pipeline:regions": "westeurope:2:Standard_ZRS, eastus2",
    "image-pipeline:version": "auto",
    "image-pipeline:export": "https://stexports.blob.core.windows.net/vhds",
    "image-pipeline:delete-snapshots": "false",
}


def test_untagged_vm_is_not_opted_in() -> None:
    assert not opted_in({"app": "web"})
    assert not opted_in(None)
    # Tags the pipeline writes itself never opt a VM in.
    assert not opted_in({"image-pipeline:capture-id": "x", "Image-Pipeline:Source-VM": "y"})
    parse = request_from_tags(VM, {"app": "web"})
    assert not parse.opted_in and parse.request is None and parse.errors == []


def test_full_tag_set_becomes_a_capture_request() -> None:
    parse = request_from_tags(VM, GOOD_TAGS, extra_tags={TAG_EVENT_ID: "e1"})
    assert parse.errors == [] and parse.request is not None
    wire = parse.request.to_wire()
    assert wire["prepare"] == "none"
    assert wire["sourceVmId"] == VM
    assert wire["gallery"] == {"resourceGroup": "rg-images", "name": "galContoso", "createIfMissing": True}
    assert wire["imageDefinition"] == {
        "name": "web-ubuntu",
        "publisher": "contoso",
        "offer": "web",
        "sku": "ubuntu-22",
        "createIfMissing": True,
    }
    assert wire["targetRegions"] == [
        {"name": "westeurope", "replicaCount": 2, "storageAccountType": "Standard_ZRS"},
        {"name": "eastus2", "replicaCount": 1},
    ]
    assert wire["version"] == "auto"
    assert wire["vhdExport"] == {"accountUrl": "https://stexports.blob.core.windows.net", "container": "vhds"}
    assert wire["deleteSnapshots"] is False
    assert wire["tags"] == {TAG_EVENT_ID: "e1"}


def test_minimal_tags_and_other_gallery_forms() -> None:
    for value, expected in [
        (
            f"{SUB}/rg-images/galContoso",
            {"subscriptionId": SUB, "resourceGroup": "rg-images", "name": "galContoso"},
        ),
        (
            f"/subscriptions/{SUB}/resourceGroups/rg-images/providers/Microsoft.Compute/galleries/galContoso",
            {"subscriptionId": SUB, "resourceGroup": "rg-images", "name": "galContoso"},
        ),
    ]:
        # Tag names are case-insensitive, as in Azure.
        parse = request_from_tags(
            VM,
            {
                "Image-Pipeline:Mode": "inplace",
                "Image-Pipeline:Gallery": value,
                "IMAGE-PIPELINE:DEFINITION": "web-ubuntu",
            },
        )
        assert parse.request is not None, parse.errors
        wire = parse.request.to_wire()
        assert {k: wire["gallery"][k] for k in expected} == expected
        # Without an identifier the definition must already exist.
        assert wire["imageDefinition"] == {"name": "web-ubuntu", "createIfMissing": False}
        assert wire["version"] == "auto" and wire["targetRegions"] == [] and wire["deleteSnapshots"] is True


def test_invalid_tags_name_each_tag_and_why() -> None:
    tags = {
        "image-pipeline:gallery": "galContoso",
        "image-pipeline:identifier": "contoso/web",
        "image-pipeline:regions": "westeurope:two, eastus2",
        "image-pipeline:version": "1.4",
        "image-pipeline:export": "http://stexports.blob.core.windows.net/vhds",
        "image-pipeline:delete-snapshots": "maybe",
        "image-pipeline:region": "westeurope",
    }
    parse = request_from_tags(VM, tags)
    assert parse.opted_in and parse.request is None
    by_tag = {e.field: e.message for e in parse.errors}
    assert set(by_tag) == {
        "image-pipeline:mode",
        "image-pipeline:gallery",
        "image-pipeline:definition",
        "image-pipeline:identifier",
        "image-pipeline:regions",
        "image-pipeline:version",
        "image-pipeline:export",
        "image-pipeline:delete-snapshots",
        "image-pipeline:region",
    }, by_tag
    assert "<resourceGroup>/<gallery>" in by_tag["image-pipeline:gallery"]
    assert "required" in by_tag["image-pipeline:definition"]
    assert "<publisher>/<offer>/<sku>" in by_tag["image-pipeline:identifier"]
    assert "replica count 'two'" in by_tag["image-pipeline:regions"]
    assert "Major.Minor.Patch" in by_tag["image-pipeline:version"]
    assert "https" in by_tag["image-pipeline:export"]
    assert "true or false" in by_tag["image-pipeline:delete-snapshots"]
    assert "unknown tag" in by_tag["image-pipeline:region"]
    assert "image-pipeline:regions" in parse.describe_errors()


def test_model_rules_apply_to_tags_with_tag_names() -> None:
    tags = {
        "image-pipeline:mode": "inPlace",
        "image-pipeline:gallery": "rg-images/gal-with-dash",
        "image-pipeline:definition": "web",
        "image-pipeline:regions": "westeurope, westeurope",
        "image-pipeline:end-of-life": "next year",
        "image-pipeline:webhook": "ftp://example.com/hook",
    }
    by_tag = {e.field: e.message for e in request_from_tags(VM, tags).errors}
    assert set(by_tag) == {
        "image-pipeline:gallery",
        "image-pipeline:regions",
        "image-pipeline:end-of-life",
        "image-pipeline:webhook",
    }, by_tag
    assert "listed twice" in by_tag["image-pipeline:regions"]


def test_enabled_false_pauses() -> None:
    parse = request_from_tags(VM, {**GOOD_TAGS, "image-pipeline:enabled": "false"})
    assert parse.opted_in and not parse.enabled and parse.request is not None


# --- Event Grid events ---------------------------------------------------------------------------

NOW = datetime(2025, 5, 1, 10, 5, 0, tzinfo=UTC)  # the events below happened minutes before


def eg_event(operation: str = DEALLOCATE_OPERATION, **over: Any) -> dict[str, Any]:
    data = {
        "correlationId": "c0ffee00-0000-0000-0000-000000000001",
        "resourceProvider": "Microsoft.Compute",
        "resourceUri": VM.replace("resourceGroups", "resourcegroups"),
        "operationName": operation,
        "status": "Succeeded",
        "subscriptionId": SUB,
    }
    event = {
        "id": "6f1a0000-0000-0000-0000-000000000001",
        "topic": f"/subscriptions/{SUB}/resourceGroups/rg-build",
        "subject": VM,
        "eventType": "Microsoft.Resources.ResourceActionSuccess",
        "eventTime": "2025-05-01T10:00:00.1234567Z",
        "dataVersion": "2",
        "metadataVersion": "1",
        "data": data,
    }
    event.update(over)
    return event


def cloud_event(**over: Any) -> dict[str, Any]:
    eg = eg_event()
    event = {
        "specversion": "1.0",
        "id": eg["id"],
        "source": eg["topic"],
        "subject": eg["subject"],
        "type": eg["eventType"],
        "time": "2025-05-01T10:00:00.123Z",
        "data": eg["data"],
    }
    event.update(over)
    return event


def test_event_grid_schema_deallocation() -> None:
    parsed = parse_event(eg_event(), NOW)
    assert isinstance(parsed, DeallocationEvent)
    assert parsed.vm_id == VM  # "resourcegroups" as sent, normalised to the usual casing
    assert parsed.schema == "eventgrid"
    assert parsed.event_time == datetime(2025, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert parsed.correlation_id == "c0ffee00-0000-0000-0000-000000000001"
    assert parsed.event_time_iso == "2025-05-01T10:00:00.123456Z"


def test_cloudevents_schema_single_and_batch() -> None:
    parsed = parse_event(cloud_event(), NOW)
    assert isinstance(parsed, DeallocationEvent) and parsed.schema == "cloudevents"
    assert parsed.event_time == datetime(2025, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)
    batch = parse_delivery(
        [cloud_event(id="a"), cloud_event(id="b", type="Microsoft.Resources.ResourceWriteSuccess")], NOW
    )
    assert isinstance(batch[0], DeallocationEvent) and batch[0].event_id == "a"
    assert isinstance(batch[1], IgnoredEvent) and "ResourceWriteSuccess" in batch[1].reason
    assert len(parse_delivery(cloud_event(), NOW)) == 1


def test_subject_is_the_fallback_for_the_vm_id() -> None:
    event = eg_event()
    del event["data"]["resourceUri"]
    parsed = parse_event(event, NOW)
    assert isinstance(parsed, DeallocationEvent) and parsed.vm_id == VM


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (eg_event(eventType="Microsoft.Resources.ResourceActionFailure"), "ResourceActionFailure"),
        (eg_event(operation="Microsoft.Compute/virtualMachines/powerOff/action"), "powerOff"),
        (eg_event(operation="Microsoft.Compute/virtualMachines/generalize/action"), "generalize"),
        (
            eg_event(
                eventType="Microsoft.EventGrid.SubscriptionValidationEvent", data={"validationCode": "x"}
            ),
            "Validation",
        ),
        (
            eg_event(
                subject="/subscriptions/s/resourceGroups/rg", data={"operationName": DEALLOCATE_OPERATION}
            ),
            "not a VM",
        ),
        (
            eg_event(
                data={
                    "operationName": DEALLOCATE_OPERATION,
                    "resourceUri": VM.replace("virtualMachines/vm-web", "disks/d1"),
                }
            ),
            "virtualMachines",
        ),
        (eg_event(eventTime="yesterday"), "time"),
        ("not an object", "JSON object"),
    ],
)
def test_other_events_are_ignored_with_a_reason(event: Any, why: str) -> None:
    parsed = parse_event(event, NOW)
    assert isinstance(parsed, IgnoredEvent)
    assert why.lower() in parsed.reason.lower()


# --- dedupe rules --------------------------------------------------------------------------------

T0 = datetime(2025, 5, 1, 10, 0, 0, tzinfo=UTC)


def prev(status: str, created: datetime, ended: datetime, **tags: str) -> PreviousCapture:
    return PreviousCapture(
        "capture-vm-web-x", status, created, ended, {"tags": dict(tags), "prepare": "none"}
    )


def dealloc(event_id: str, at: datetime) -> DeallocationEvent:
    return DeallocationEvent(event_id=event_id, vm_id=VM, event_time=at, schema="eventgrid")


def test_event_rules() -> None:
    ev = dealloc("e1", T0)
    assert event_skip_reason(None, ev) is None
    assert "already Running" in (event_skip_reason(prev("Running", T0, T0), ev) or "")
    # Same event again after the capture ended.
    done = prev("Completed", T0 + timedelta(seconds=5), T0 + timedelta(hours=1), **{TAG_EVENT_ID: "e1"})
    assert "already started" in (event_skip_reason(done, ev) or "")
    # An older deallocation delivered late.
    newer = prev("Failed", T0, T0 + timedelta(minutes=1), **{TAG_DEALLOCATED_AT: "2025-05-01T10:00:00Z"})
    assert event_skip_reason(newer, dealloc("e0", T0 - timedelta(hours=2))) is not None
    # The capture's own deallocation (between its start and its end), from an HTTP-started capture.
    http_run = prev("Completed", T0, T0 + timedelta(hours=1))
    assert "ended after" in (event_skip_reason(http_run, dealloc("e2", T0 + timedelta(minutes=3))) or "")
    # A new deallocation after the last capture ended starts a new one.
    assert event_skip_reason(http_run, dealloc("e3", T0 + timedelta(hours=2))) is None


def test_queue_rules() -> None:
    req = {"sourceVmId": VM, "prepare": "none"}
    assert queue_skip_reason(None, T0, req) is None
    running = PreviousCapture("c", "Pending", T0, T0, req)
    assert "already Pending" in (queue_skip_reason(running, T0, req) or "")
    done = PreviousCapture("c", "Completed", T0 + timedelta(seconds=2), T0 + timedelta(hours=1), req)
    assert "redelivery" in (queue_skip_reason(done, T0, req) or "")  # enqueued before the capture started
    later = T0 + timedelta(hours=2)
    assert queue_skip_reason(done, later, req) is None  # a new request after the capture ended
    # Same request enqueued a moment after the capture started (clock skew): a duplicate; another request is not.
    skew = T0 + timedelta(seconds=20)
    assert queue_skip_reason(done, skew, req) is not None
    assert queue_skip_reason(done, skew, {**req, "version": "2.0.0"}) is None


# --- notices -------------------------------------------------------------------------------------


def test_notice_from_result_and_progress_carry_no_sas() -> None:
    result = CaptureResult(
        capture_id="capture-vm-web-x",
        source_vm_id=VM,
        image_version_id="/v/1.0.0",
        image_version="1.0.0",
        regions=[RegionProgress(region="westeurope", state="Completed", progress=100)],
        exported_blobs=["https://acct/vhds/capture-vm-web-x/os.vhd?sv=1&sig=abcdefghijklmnop"],
        timings={"preflight": 1.5},
    )
    n = notice_from_result(
        result, trigger="queue", started="2025-05-01T10:00:00Z", ended=None, generalized=True
    )
    wire = n.to_wire()
    assert wire["outcome"] == "completed" and wire["trigger"] == "queue" and "error" not in wire
    assert wire["noticeId"] == "capture-vm-web-x@2025-05-01T10:00:00Z"
    assert wire["exportedBlobs"] == ["https://acct/vhds/capture-vm-web-x/os.vhd"]
    assert wire["type"] == "ImagePipeline.CaptureFinished" and wire["schemaVersion"] == "1"
    assert CaptureNotice.from_wire(json.loads(json.dumps(wire))) == n

    progress = CaptureProgress(capture_id="capture-vm-web-x", source_vm_id=VM, generalized=True)
    progress.disks = [
        DiskProgress(key="os", name="os", blob_url="https://acct/vhds/a.vhd", copy_state="success"),
        DiskProgress(key="lun0", name="d", blob_url="https://acct/vhds/b.vhd", copy_state="aborted"),
    ]
    progress.error = ErrorView(
        step="export", code="Canceled", message="see https://x/y?sig=secretsecretsecret1"
    )
    n2 = notice_from_progress(
        progress,
        outcome="canceled",
        trigger="http",
        started=None,
        ended=None,
        cleaned=["copy of lun0 aborted"],
    ).to_wire()
    assert n2["outcome"] == "canceled" and n2["generalized"] is True
    assert n2["exportedBlobs"] == ["https://acct/vhds/a.vhd"]  # only finished copies
    assert "secretsecret" not in json.dumps(n2) and n2["cleaned"] == ["copy of lun0 aborted"]
    assert "imageVersionId" not in n2 and n2["regions"] == []


# --- webhook retries -----------------------------------------------------------------------------


def test_webhook_retries_with_backoff_then_delivers() -> None:
    answers = [(503, None), (429, "3"), (200, None)]
    waits: list[float] = []
    calls: list[str] = []

    def post(url: str, body: bytes, nid: str) -> tuple[int, str | None]:
        calls.append(url)
        return answers.pop(0)

    d = deliver_webhook("https://hook.example/x?code=secret", b"{}", "n1", post=post, wait=waits.append)
    assert d.delivered and d.attempts == 3 and d.status_code == 200
    assert waits == [1.0, 3.0]  # doubling from 1 s, Retry-After honoured
    assert d.url == "https://hook.example/x"  # the query (may carry a key) is never reported


def test_webhook_gives_up_without_raising() -> None:
    waits: list[float] = []

    def refused(url: str, body: bytes, nid: str) -> tuple[int, str | None]:
        raise ConnectionRefusedError("connection refused")

    d = deliver_webhook("http://127.0.0.1:9/hook", b"{}", "n1", post=refused, wait=waits.append)
    assert not d.delivered and d.attempts == WEBHOOK_ATTEMPTS and "refused" in (d.error or "")
    assert len(waits) == WEBHOOK_ATTEMPTS - 1 and waits == sorted(waits)

    d = deliver_webhook("https://h/x", b"{}", "n1", post=lambda *a: (404, None), wait=waits.append)
    assert not d.delivered and d.attempts == 1 and d.status_code == 404  # a 4xx is not retried


def test_cancel_reaches_sub_orchestrations() -> None:
    progress = CaptureProgress(capture_id="capture-x", source_vm_id=VM, export=True)
    progress.disks = [DiskProgress(key="os", name="os"), DiskProgress(key="lun0", name="d")]
    assert sub_instances("capture-x", json.dumps(progress.to_wire())) == [
        "capture-x:version",
        "capture-x:export:os",
        "capture-x:export:lun0",
    ]
    assert sub_instances("capture-x", None) == ["capture-x:version"]


def test_a_canceled_capture_reads_canceled() -> None:
    from shared.instances import InstanceSnapshot
    from shared.status_view import aggregate_status

    progress = CaptureProgress(
        capture_id="capture-x",
        source_vm_id=VM,
        state="canceled",
        cancel_requested=True,
        cleaned=["snapshot deleted"],
    )
    main = InstanceSnapshot(
        runtime_status="Completed", custom_status=progress.to_wire(), output={"outcome": "canceled"}
    )
    view = aggregate_status("capture-x", main)
    assert view.runtime_status == "Canceled" and view.result is None
    assert view.cancel_requested and view.cleaned == ["snapshot deleted"]
    # A completed capture still reads Completed.
    done = InstanceSnapshot(
        runtime_status="Completed", custom_status={**progress.to_wire(), "state": "succeeded"}
    )
    assert aggregate_status("capture-x", done).runtime_status == "Completed"
