"""The Event Grid webhook's findings end to end: devhost runs the app, azsim + Azurite are the cloud.

A forged far-future event, a malformed time in both schemas, a validation event whose data is not an
object, JSON nested too deeply and an oversized body: none answers 5xx, none starts a capture, and a
genuine deallocation after them is still captured.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.events import MAX_DELIVERY_BYTES
from shared.ids import capture_instance_id
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


def test_forged_and_malformed_events_do_not_block_a_genuine_one(tstack: Stack) -> None:
    forged = tstack.deallocation_event("vm-golden", at=datetime(9999, 12, 31, tzinfo=UTC))
    bad_eg = {**tstack.deallocation_event("vm-golden"), "eventTime": "2026-02-30T25:61:00Z"}
    bad_ce = {**tstack.as_cloud_event(tstack.deallocation_event("vm-golden")), "time": 1700000000}
    code, answer = tstack.deliver([forged, bad_eg, bad_ce])
    assert code == 200 and answer["outcomes"] == {"refused": 3}, answer
    assert not tstack.capture_instances("vm-golden")

    genuine = tstack.deallocation_event("vm-golden")
    code, answer = tstack.deliver([genuine])
    assert code == 200 and answer["outcomes"] == {"started": 1}, answer
    status = tstack.wait(capture_instance_id(tstack.vm_id("vm-golden")))
    assert status["runtimeStatus"] == "Completed", status
    log = tstack.devhost.log_text()
    assert "is more than 0:05:00 in the future" in log and "not an RFC 3339 time" in log


def test_unreadable_deliveries_and_bad_handshakes_are_4xx(tstack: Stack) -> None:
    validation = [
        {
            "id": "v1",
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "eventTime": "2026-05-01T10:00:00Z",
            "data": "512d38b6",
        }
    ]
    code, answer = tstack.deliver(validation, kind="SubscriptionValidation")
    assert code == 400 and answer["error"]["code"] == "InvalidHandshake"
    code, answer = tstack.deliver_raw(b"[" * 100_000 + b"]" * 100_000)
    assert code == 400 and "deeper than" in answer["error"]["message"]
    code, answer = tstack.deliver_raw(json.dumps({"data": "x" * MAX_DELIVERY_BYTES}).encode())
    assert code == 413 and answer["error"]["code"] == "DeliveryTooLarge"
    code, answer = tstack.deliver_raw(b'"just a string"')
    assert code == 400 and "JSON array of events" in answer["error"]["message"]


def test_vm_without_mode_tag_is_not_captured(tstack: Stack) -> None:
    code, answer = tstack.deliver([tstack.deallocation_event("vm-nomode")])
    assert code == 200 and answer["outcomes"] == {"invalid-tags": 1}, answer
    assert not tstack.capture_instances("vm-nomode")
    lines = [
        line for line in tstack.devhost.log_text().splitlines() if "vm-nomode is tagged for capture" in line
    ]
    assert len(lines) == 1 and "image-pipeline:mode" in lines[0] and "can never start again" in lines[0]
