"""Queue, Event Grid and cancel triggers end to end: devhost runs the app, azsim + Azurite are the cloud.

One stack per module; each test uses its own VMs (tests/support/worlds.py), so tests do not interfere.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest

from shared.ids import capture_instance_id
from tests.support.eventgrid import EVENTGRID_ROUTE
from tests.support.http import http, wait_for
from tests.support.policy import REQUESTS_QUEUE, RESULTS_QUEUE
from tests.support.stack import Stack
from tests.support.webhooks import WebhookReceiver

pytestmark = pytest.mark.e2e
POISON = f"{REQUESTS_QUEUE}-poison"


def test_queue_message_starts_one_capture_that_completes(tstack: Stack) -> None:
    body = json.dumps(tstack.queue_request("vm-queue"))
    for _ in range(3):  # a message duplicated by the sender: still one capture
        tstack.enqueue(body)
    cid = capture_instance_id(tstack.vm_id("vm-queue"))
    wait_for("the capture instance", lambda: tstack.capture_instances("vm-queue"))
    status = tstack.wait(cid)
    assert status["runtimeStatus"] == "Completed", status
    assert status["result"]["imageVersion"] == "1.0.0"
    created = tstack.capture_instances("vm-queue")[0]["createdTime"]
    wait_for("all three messages handled", lambda: tstack.devhost.log_text().count(cid) >= 3)
    assert tstack.devhost.log_text().count("not started") >= 2
    # The same request enqueued again moments after the capture (a sender's retry) does not start it again.
    tstack.enqueue(body)
    wait_for("the queue drained", lambda: not tstack.queue(REQUESTS_QUEUE).peek_messages(max_messages=1))
    wait_for(
        "the duplicate logged", lambda: "ran this same request moments before" in tstack.devhost.log_text()
    )
    again = tstack.capture_instances("vm-queue")
    assert len(again) == 1 and again[0]["createdTime"] == created and again[0]["runtimeStatus"] == "Completed"
    versions = list(
        tstack.compute().gallery_image_versions.list_by_gallery_image(
            "rg-images", "galContoso", "vm-queue-def"
        )
    )
    assert [v.name for v in versions] == ["1.0.0"]


def test_invalid_messages_go_to_the_poison_queue_with_reasons(tstack: Stack) -> None:
    not_json = "{this is not json"
    schema_bad = json.dumps(
        {
            "sourceVmId": tstack.vm_id("vm-queue-dup"),
            "gallery": {"resourceGroup": "rg-images", "name": "bad name!"},
            "imageDefinition": {"name": "d", "createIfMissing": False},
            "targetRegions": [{"name": "westeurope"}, {"name": "westeurope"}],
            "prepare": "sometimes",
        }
    )
    unknown_vm = json.dumps(tstack.queue_request("vm-does-not-exist"))
    for text in (not_json, schema_bad, unknown_vm):
        tstack.enqueue(text)
    poisoned = wait_for(
        "3 poison messages", lambda: (lambda m: m if len(m) >= 3 else None)(tstack.read_queue(POISON))
    )
    by_body = {p["originalBody"]: p for p in poisoned}
    assert set(by_body) == {not_json, schema_bad, unknown_vm}

    p = by_body[not_json]
    assert p["reason"] == "NotJson" and p["errors"][0]["field"] == "(body)" and p["queue"] == REQUESTS_QUEUE
    p = by_body[schema_bad]
    assert p["reason"] == "InvalidRequest"
    fields = {e["field"] for e in p["errors"]}
    assert {"gallery.name", "targetRegions", "prepare"} <= fields, p["errors"]
    p = by_body[unknown_vm]
    assert p["reason"] == "VmNotFound" and "vm-does-not-exist" in p["errors"][0]["message"]
    assert all(p["messageId"] and p["insertionTime"] for p in poisoned)

    # Nothing started, and the host did not retry them (each handled once, no second poison copy).
    assert not tstack.capture_instances("vm-queue-dup") and not tstack.capture_instances("vm-does-not-exist")
    wait_for("the queue drained", lambda: not tstack.queue(REQUESTS_QUEUE).peek_messages(max_messages=1))
    assert len(tstack.read_queue(POISON)) == 3
    assert "moved to capture-requests-poison" in tstack.devhost.log_text()


def test_same_deallocation_event_three_times_starts_one_capture(tstack: Stack) -> None:
    event = tstack.deallocation_event("vm-golden")
    for _ in range(3):
        code, answer = tstack.deliver([event])
        assert code == 200, answer
    cid = capture_instance_id(tstack.vm_id("vm-golden"))
    assert len(tstack.capture_instances("vm-golden")) == 1
    status = tstack.wait(cid)
    assert status["runtimeStatus"] == "Completed", status
    stages = {s["name"]: s["state"] for s in status["stages"]}
    assert stages["prepare"] == "skipped"  # prepare: none on this path
    created = tstack.capture_instances("vm-golden")[0]["createdTime"]

    # Delivered again after the capture ended (Event Grid retries even after a 2xx): still one capture.
    code, _ = tstack.deliver([event])
    assert code == 200
    inst = tstack.capture_instances("vm-golden")
    assert len(inst) == 1 and inst[0]["createdTime"] == created
    assert "this event already started capture" in tstack.devhost.log_text()
    versions = list(
        tstack.compute().gallery_image_versions.list_by_gallery_image("rg-images", "galContoso", "golden-def")
    )
    assert len(versions) == 1
    assert versions[0].tags["image-pipeline:event-id"] == event["id"]
    assert versions[0].tags["image-pipeline:capture-id"] == cid


def test_cloudevents_batch_untagged_invalid_stale_and_other_events(tstack: Stack) -> None:
    golden = tstack.as_cloud_event(tstack.deallocation_event("vm-golden-ce"))
    write = {**golden, "id": str(uuid.uuid4()), "type": "Microsoft.Resources.ResourceWriteSuccess"}
    power_off = tstack.as_cloud_event(tstack.deallocation_event("vm-plain"))
    power_off["data"] = {
        **power_off["data"],
        "operationName": "Microsoft.Compute/virtualMachines/powerOff/action",
    }
    untagged = tstack.as_cloud_event(tstack.deallocation_event("vm-plain"))
    bad_tags = tstack.as_cloud_event(tstack.deallocation_event("vm-badtags"))
    stale = tstack.as_cloud_event(tstack.deallocation_event("vm-golden-up"))  # tagged, but running again
    code, answer = tstack.deliver([write, power_off, untagged, bad_tags, stale, golden], cloud=True)
    assert code == 200, answer

    for vm in ("vm-plain", "vm-badtags", "vm-golden-up"):
        assert not tstack.capture_instances(vm), vm
    log = tstack.devhost.log_text()
    assert "vm-badtags is tagged for capture but its tags are invalid" in log
    assert "image-pipeline:gallery" in log and "image-pipeline:regions" in log
    assert "vm-golden-up is running now, so the event is stale" in log
    status = tstack.wait(capture_instance_id(tstack.vm_id("vm-golden-ce")))
    assert status["runtimeStatus"] == "Completed", status


def test_event_grid_handshakes(tstack: Stack) -> None:
    validation = [
        {
            "id": str(uuid.uuid4()),
            "topic": f"/subscriptions/{tstack.cloud.subscription_id}",
            "subject": "",
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "eventTime": "2025-05-01T10:00:00Z",
            "metadataVersion": "1",
            "dataVersion": "1",
            "data": {
                "validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
                "validationUrl": "https://x/validate",
            },
        }
    ]
    code, answer = tstack.deliver(validation, kind="SubscriptionValidation")
    assert code == 200 and answer == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    import urllib.request

    req = urllib.request.Request(
        tstack.devhost.url(EVENTGRID_ROUTE),
        method="OPTIONS",
        headers={"WebHook-Request-Origin": "eventgrid.azure.net"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200 and resp.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"


def test_cancel_answers_404_and_409(tstack: Stack) -> None:
    code, body = tstack.cancel("capture-nope-0000000000")
    assert code == 404 and body["error"]["code"] == "CaptureNotFound"
    code, body = tstack.cancel("not-a-capture")
    assert code == 404
    # A capture that ends at once (its definition does not exist and may not be created): then 409.
    body = tstack.queue_request("vm-409", imageDefinition={"name": "no-such-def", "createIfMissing": False})
    code, answer, _ = http("POST", tstack.devhost.url("/api/captures"), body)
    assert code == 202, answer
    done = answer["id"]
    assert tstack.wait(done)["runtimeStatus"] == "Failed"
    code, body = tstack.cancel(done)
    assert (
        code == 409
        and body["error"]["code"] == "CaptureAlreadyFinished"
        and body["runtimeStatus"] == "Failed"
    )
    assert "nothing to cancel" in body["error"]["message"]


def test_publish_notice_reaches_the_results_queue_and_the_webhook(tstack: Stack) -> None:
    """The activity with the real queue SDK on Azurite and a real local webhook that fails once first."""
    from activities.notices import publish
    from shared import queues
    from shared.notices import CaptureNotice, NoticeInput

    assert "AzureWebJobsStorage" in os.environ  # the cloud's env is applied to this process
    queues.reset()
    notice = CaptureNotice(
        notice_id=f"capture-test@{uuid.uuid4()}",
        capture_id="capture-test",
        source_vm_id=tstack.vm_id("vm-web"),
        outcome="failed",
        exported_blobs=["https://acct.example/vhds/a.vhd?sv=2024&sig=" + "abcdefghijklm" + "nopqrstuvwxyz"],
    )
    with WebhookReceiver(fail_first=1) as hook:
        result = publish(NoticeInput(notice=notice, webhook_url=hook.url + "?code=k"))
        assert result.queued and result.queue == RESULTS_QUEUE, result
        assert result.webhook is not None and result.webhook.delivered and result.webhook.attempts == 2
        assert result.webhook.url == hook.url
        assert hook.bodies[0]["noticeId"] == notice.notice_id
        assert hook.headers[0]["X-Image-Pipeline-Notice-Id"] == notice.notice_id
    on_queue = [m for m in tstack.read_queue(RESULTS_QUEUE) if m.get("noticeId") == notice.notice_id]
    assert len(on_queue) == 1
    assert on_queue[0]["outcome"] == "failed" and on_queue[0]["exportedBlobs"] == [
        "https://acct.example/vhds/a.vhd"
    ]

    # A webhook that is down does not raise and does not stop the queue message.
    with WebhookReceiver(fail_first=100) as down:
        result = publish(NoticeInput(notice=notice, webhook_url=down.url))
    assert result.queued and result.webhook is not None and not result.webhook.delivered
    assert result.webhook.status_code == 503 and down.requests == result.webhook.attempts
