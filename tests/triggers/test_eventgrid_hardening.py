"""Regression tests of the Event Grid webhook, in process: bad deliveries, forged times, the mode tag.

``handle_request`` runs as the function does; the ARM read and the capture start are the in-process
world of ``eventgrid_world`` (what the trigger decides is under test, not the Durable start).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

from shared.errors import CaptureError, TransientAzureError
from shared.events import MAX_DELIVERY_BYTES, MAX_EVENTS_PER_DELIVERY, parse_time
from shared.ids import capture_instance_id
from shared.vm_tags import TAG_DEALLOCATED_AT, TAG_EVENT_ID, TAG_MODE, request_from_tags
from tests.triggers.eventgrid_world import GOOD_TAGS, NOW, World, as_cloud_event, eg_event, vm_id, world
from triggers.guards import PreviousCapture, event_skip_reason

__all__ = ["world"]  # the fixture, imported for pytest


def body(events: object) -> bytes:
    return json.dumps(events).encode()


def test_malformed_event_time_in_both_schemas_is_skipped_alone(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.add_vm("vm-a", GOOD_TAGS)
    world.add_vm("vm-b", {**GOOD_TAGS, "image-pipeline:definition": "b"})
    bad_eg = {**eg_event("vm-a"), "eventTime": "2025-13-45T99:00:00Z"}
    bad_ce = {**as_cloud_event(eg_event("vm-a")), "time": {"not": "a time"}}
    no_time = {k: v for k, v in eg_event("vm-a").items() if k != "eventTime"}
    good = eg_event("vm-b")
    with caplog.at_level(logging.WARNING, logger="triggers.eventgrid_captures"):
        code, answer, _ = world.deliver(body([bad_eg, bad_ce, no_time, 7, good]))
    assert code == 200, answer
    assert answer["outcomes"] == {"refused": 4, "started": 1}
    assert [r["sourceVmId"] for r in world.started] == [vm_id("vm-b")]
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 4, skipped  # one line per bad event
    assert sum("RFC 3339" in m for m in skipped) == 3 and "not a JSON object" in skipped[3]


@pytest.mark.parametrize("data", ["a string", ["validationCode", "x"], None, 5, {"validationCode": 5}])
def test_validation_event_whose_data_is_not_an_object_is_400(world: World, data: object) -> None:
    event = {
        "id": "v1",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2026-05-01T10:00:00Z",
        "data": data,
    }
    code, answer, _ = world.deliver(body([event]), {"aeg-event-type": "SubscriptionValidation"})
    assert code == 400 and answer["error"]["code"] == "InvalidHandshake"
    good = {**event, "data": {"validationCode": "512d38b6"}}
    code, answer, _ = world.deliver(body([good]), {"aeg-event-type": "SubscriptionValidation"})
    assert code == 200 and answer == {"validationResponse": "512d38b6"}


@pytest.mark.parametrize(
    ("raw", "status", "says"),
    [
        (b"{not json", 400, "not JSON"),
        (b"\xff\xfe", 400, "UTF-8"),
        (b"42", 400, "not int"),
        (b'"a string"', 400, "not str"),
        (b"null", 400, "not NoneType"),
        (b"[" * 5000 + b"]" * 5000, 400, "deeper than"),
        (b'[{"a":' * 2000 + b"1" + b"}]" * 2000, 400, "deeper than"),
        (b" " * (MAX_DELIVERY_BYTES + 1), 413, "bytes"),
        (json.dumps([{}] * (MAX_EVENTS_PER_DELIVERY + 1)).encode(), 413, "events"),
    ],
)
def test_unreadable_deliveries_are_refused_whole(world: World, raw: bytes, status: int, says: str) -> None:
    code, answer, _ = world.deliver(raw)
    assert code == status, answer
    assert says in answer["error"]["message"]
    assert world.started == []


def test_events_that_are_not_objects_or_name_no_vm_are_skipped(world: World) -> None:
    world.add_vm("vm-a", GOOD_TAGS)
    no_vm = eg_event("vm-a")
    del no_vm["subject"]
    del no_vm["data"]["resourceUri"]
    code, answer, _ = world.deliver(body([None, "x", [1], no_vm, {**eg_event("vm-a"), "data": "nope"}]))
    assert code == 200 and answer["outcomes"] == {"refused": 5} and world.started == []
    assert world.deliver(b"[]")[0] == 200


@pytest.mark.parametrize(
    "rid",
    [
        vm_id("vm-a\nERROR forged log line"),
        vm_id("vm a"),
        vm_id("vm-a?x=1"),
        vm_id("vm-a").replace("rg-build", "rg\r\nbuild"),
        vm_id("vm-a").replace("89d0a3c1-7028-549c-b21b-dc72b5b9bb42", "not-a-guid"),
        vm_id("vm-a") + "/extensions/x",
    ],
)
def test_vm_ids_that_azure_would_not_name_are_refused(world: World, rid: str) -> None:
    world.add_vm("vm-a", GOOD_TAGS)
    event = eg_event("vm-a")
    event["subject"] = event["data"]["resourceUri"] = rid
    code, answer, _ = world.deliver(body([event]))
    assert code == 200 and answer["outcomes"] == {"refused": 1} and world.started == []


def test_future_event_time_is_refused_and_does_not_poison_a_later_genuine_event(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.add_vm("vm-a", GOOD_TAGS)
    forged = eg_event("vm-a", at=NOW.replace(year=9999, month=12, day=31))
    with caplog.at_level(logging.WARNING):
        code, answer, _ = world.deliver(body([forged]))
    assert code == 200 and answer["outcomes"] == {"refused": 1} and world.started == []
    assert "in the future" in caplog.text
    # Within the clock skew is fine: the next genuine deallocation (Event Grid's clock a little ahead).
    genuine = eg_event("vm-a", at=NOW + timedelta(minutes=2))
    code, answer, _ = world.deliver(body([genuine]))
    assert code == 200 and answer["outcomes"] == {"started": 1}
    assert world.started[0]["tags"][TAG_EVENT_ID] == genuine["id"]


def test_a_recorded_future_deallocation_does_not_make_later_events_stale() -> None:
    """A capture started (before this fix) by a forged 9999 event must not block genuine events forever."""
    created = NOW - timedelta(hours=3)
    poisoned = PreviousCapture(
        capture_instance_id(vm_id("vm-a")),
        "Completed",
        created,
        created + timedelta(hours=1),
        {"tags": {TAG_EVENT_ID: "forged", TAG_DEALLOCATED_AT: "9999-12-31T00:00:00.000000Z"}},
    )
    from shared.events import DeallocationEvent

    genuine = DeallocationEvent("e2", vm_id("vm-a"), NOW - timedelta(minutes=1), "eventgrid")
    assert event_skip_reason(poisoned, genuine) is None
    # An event older than that capture's end is still a duplicate of what it covered.
    old = DeallocationEvent("e0", vm_id("vm-a"), created + timedelta(minutes=30), "eventgrid")
    assert "ended after" in (event_skip_reason(poisoned, old) or "")


def test_replays_are_judged_against_the_last_capture_and_the_vm(world: World) -> None:
    world.add_vm("vm-a", GOOD_TAGS)
    first = eg_event("vm-a", at=NOW - timedelta(minutes=20))
    assert world.deliver(body([first]))[1]["outcomes"] == {"started": 1}
    world.finish_all(ended=NOW - timedelta(minutes=5))
    # The same event, and an older one delivered late: nothing.
    older = eg_event("vm-a", at=NOW - timedelta(minutes=40))
    assert world.deliver(body([first, older]))[1]["outcomes"] == {"duplicate": 2}
    # A "new" event for a VM the capture generalized: it cannot have been started and deallocated again.
    world.add_vm("vm-a", GOOD_TAGS, generalized=True)
    assert world.deliver(body([eg_event("vm-a")]))[1]["outcomes"] == {"duplicate": 1}
    # Older than Event Grid's longest time-to-live: a replay, refused before the VM is read.
    world.add_vm("vm-b", {**GOOD_TAGS, "image-pipeline:definition": "b"})
    assert world.deliver(body([eg_event("vm-b", at=NOW - timedelta(days=2))]))[1]["outcomes"] == {
        "refused": 1
    }
    # A VM running now: the deallocation is stale.
    world.add_vm("vm-c", {**GOOD_TAGS, "image-pipeline:definition": "c"}, power="running")
    assert world.deliver(body([eg_event("vm-c")]))[1]["outcomes"] == {"stale": 1}
    # A real new deallocation of a VM that was not generalized always starts one.
    world.add_vm("vm-a", GOOD_TAGS)
    assert world.deliver(body([eg_event("vm-a")]))[1]["outcomes"] == {"started": 1}
    assert len(world.started) == 2


def test_missing_mode_tag_captures_nothing_with_one_error_line(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    tags = {k: v for k, v in GOOD_TAGS.items() if k != TAG_MODE}
    world.add_vm("vm-a", tags)
    with caplog.at_level(logging.DEBUG, logger="triggers.eventgrid_captures"):
        code, answer, _ = world.deliver(body([eg_event("vm-a")]))
    assert code == 200 and answer["outcomes"] == {"invalid-tags": 1} and world.started == []
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert TAG_MODE in errors[0] and "inPlace" in errors[0] and "can never start again" in errors[0]
    assert "deprovisioned" in errors[0]
    # Only the capture modes are accepted, case-insensitively; another value names it.
    wrong = request_from_tags(vm_id("vm-a"), {**tags, TAG_MODE: "copy"})
    assert wrong.request is None and "'copy' is not a capture mode" in wrong.describe_errors()
    assert request_from_tags(vm_id("vm-a"), {**tags, TAG_MODE: "INPLACE"}).request is not None
    # Unknown image-pipeline:* tags are still an error.
    typo = request_from_tags(vm_id("vm-a"), {**GOOD_TAGS, "image-pipeline:mod": "inPlace"})
    assert {e.field for e in typo.errors} == {"image-pipeline:mod"}


def test_transient_read_failure_asks_for_redelivery_and_terminal_one_does_not(world: World) -> None:
    world.add_vm("vm-a", GOOD_TAGS)
    world.read_error = TransientAzureError("ARM throttled the read (429)", step="read the VM")
    code, answer, headers = world.deliver(body([eg_event("vm-a")]))
    assert code == 503 and answer["outcomes"] == {"retry": 1} and headers["Retry-After"] == "30"
    world.read_error = CaptureError("the app may not read the VM (403)", step="read the VM")
    code, answer, _ = world.deliver(body([eg_event("vm-a")]))
    assert code == 200 and answer["outcomes"] == {"failed": 1} and world.started == []


def test_handshakes_and_other_event_kinds(world: World) -> None:
    code, _, headers = world.deliver(b"", {"WebHook-Request-Origin": "eventgrid.azure.net"}, method="OPTIONS")
    assert code == 200 and headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    code, _, _ = world.deliver(b"", {"WebHook-Request-Origin": "x\r\nSet-Cookie: a=b"}, method="OPTIONS")
    assert code == 400
    assert world.deliver(b"[]", {"aeg-event-type": "SubscriptionDeletion"})[0] == 200
    assert world.deliver(b"[]", {"aeg-event-type": "Mystery"})[0] == 400
    # CloudEvents without the header (tools often omit it) is a notification.
    world.add_vm("vm-a", GOOD_TAGS)
    code, answer, _ = world.deliver(body(as_cloud_event(eg_event("vm-a"))), {"aeg-event-type": ""})
    assert code == 200 and answer["outcomes"] == {"started": 1}


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:59:59-01:00",  # past the datetime range once in UTC
        "0001-01-01T00:00:00+01:00",
        "2026-05-01",
        "2026-05-01T10:00:00",  # no offset
        "2026-05-01T10:00:00.1234567890Z",  # ten fractional digits
        "١٠٢٦-05-01T10:00:00Z",
    ],
)
def test_event_times_out_of_range_or_without_offset_are_not_times(text: str) -> None:
    assert parse_time(text) is None
    assert parse_time("2026-05-01T10:00:00.1234567Z") is not None
