"""The HTTP, cancel, status and queue triggers at intake, called in-process: regressions and a property fuzz.

Each case runs the real trigger function with a recording Durable client (intake_support), so a few thousand
cases take seconds. The fuzz is derandomized (the same cases on every run) and asserts: no 5xx, nothing
started from invalid input, every 400 names a field, every refused queue message is poisoned with a reason,
and only capture ids ever reach the Durable client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import triggers.queue_captures as queue_captures
from shared.bounded_json import MAX_BODY_BYTES, MAX_JSON_DEPTH
from shared.ids import capture_instance_id, is_capture_id
from shared.requests import validate_request
from tests.triggers.intake_bodies import deep, deep_request, json_values, mutated_requests
from tests.triggers.intake_support import (
    VM_ID,
    QueueRun,
    RecordingClient,
    body_of,
    cancel,
    get_status,
    post,
    valid_request,
    vm_view,
)


def fuzz(examples: int) -> settings:
    """Reproducible (derandomized: the same cases on every run, no example database) and bounded."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


DURABLE_FIELDS = {"statusQueryGetUri", "sendEventPostUri", "terminatePostUri", "purgeHistoryDeleteUri"}


@pytest.fixture
def queue_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[QueueRun]:
    run = QueueRun()
    monkeypatch.setattr(queue_captures, "_send_poison", lambda payload, queue: run.poisoned.append(payload))
    monkeypatch.setattr(queue_captures, "read_vm", vm_view)
    yield run


# --- regressions ---------------------------------------------------------------------------------


def test_202_carries_only_the_apps_own_urls() -> None:
    client = RecordingClient()
    resp = post(client, json.dumps(valid_request()).encode())
    assert resp.status_code == 202
    body = body_of(resp)
    cid = capture_instance_id(VM_ID)
    assert set(body) == {"id", "runId", "captureStatusUri", "cancelPostUri"}
    assert body["id"] == cid and body["runId"].startswith(cid + "-")
    assert body["captureStatusUri"] == f"http://127.0.0.1:7071/api/captures/{cid}"
    assert body["cancelPostUri"] == f"http://127.0.0.1:7071/api/captures/{cid}/cancel"
    assert resp.headers["Location"] == body["captureStatusUri"]
    text = resp.get_body().decode()
    assert "code=" not in text and "durabletask" not in text and not DURABLE_FIELDS & set(body)
    assert [i for i, _ in client.started] == [cid]
    assert client.started[0][1]["request"]["captureMode"] == "inPlace"  # recorded in the orchestration input

    again = post(client, json.dumps(valid_request()).encode())
    assert again.status_code == 409
    body = body_of(again)
    assert body["error"]["code"] == "CaptureAlreadyRunning" and body["id"] == cid
    assert body["cancelPostUri"].endswith(f"/captures/{cid}/cancel") and again.headers["Location"]
    text = again.get_body().decode()
    assert "code=" not in text and "durabletask" not in text and not DURABLE_FIELDS & set(body)
    assert len(client.started) == 1


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 990, 100_000])
def test_deep_json_on_post_and_cancel_is_a_400_naming_the_limit(levels: int) -> None:
    client = RecordingClient()
    for body in (deep(levels), deep_request(levels)):
        resp = post(client, body)
        assert resp.status_code == 400, resp.get_body()[:300]
        assert f"limit {MAX_JSON_DEPTH}" in body_of(resp)["errors"][0]["message"]
    cid = capture_instance_id(VM_ID)
    resp = cancel(client, cid, deep(levels))
    assert resp.status_code == 400 and f"limit {MAX_JSON_DEPTH}" in body_of(resp)["errors"][0]["message"]
    assert client.started == [] and client.ids == []


def test_a_body_over_the_limit_is_a_413_naming_it() -> None:
    client = RecordingClient()
    resp = post(client, json.dumps(valid_request(tags={"a": "x" * MAX_BODY_BYTES})).encode())
    assert resp.status_code == 413 and str(MAX_BODY_BYTES) in body_of(resp)["errors"][0]["message"]
    resp = cancel(client, capture_instance_id(VM_ID), b'{"reason": "' + b"x" * MAX_BODY_BYTES + b'"}')
    assert resp.status_code == 413
    assert client.started == [] and client.ids == []


@pytest.mark.parametrize("capture_id", ["?x", "#x", "?", "capture-vm?x=1", "capture-vm#f", "a/b", "x" * 5000])
def test_ids_outside_the_capture_id_alphabet_are_404_before_the_durable_client(capture_id: str) -> None:
    client = RecordingClient()
    for resp in (get_status(client, capture_id), cancel(client, capture_id)):
        assert resp.status_code == 404
        assert body_of(resp)["error"]["code"] == "CaptureNotFound"
        assert len(resp.get_body()) < 1000
    assert client.ids == []


def test_5000_regions_is_one_bounded_400() -> None:
    client = RecordingClient()
    regions = [{"name": f"region{i}"} for i in range(5000)]
    resp = post(client, json.dumps(valid_request(targetRegions=regions)).encode())
    assert resp.status_code == 400 and len(resp.get_body()) < 2000
    assert [e["field"] for e in body_of(resp)["errors"]] == ["targetRegions"]


def test_queue_message_without_capture_mode_is_poisoned_with_the_reason(queue_run: QueueRun) -> None:
    body = valid_request()
    del body["captureMode"]
    queue_run.deliver(json.dumps(body).encode())
    assert queue_run.client.started == []
    [poison] = queue_run.poisoned
    assert poison["reason"] == "CaptureModeRequired"
    assert [e["field"] for e in poison["errors"]] == ["captureMode"]
    assert "captureMode" in poison["message"] and "never be started again" in poison["message"]
    assert 'prepare: "deprovision"' in poison["message"]

    queue_run.deliver(json.dumps(valid_request()).encode())  # with it, the capture starts
    assert [i for i, _ in queue_run.client.started] == [capture_instance_id(VM_ID)]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (deep(990), "TooDeep"),
        (deep_request(5000), "TooDeep"),
        (b"x" * (MAX_BODY_BYTES + 1), "TooLarge"),
        (b"\xff\xfe\x00", "NotText"),
        (b"{not json", "NotJson"),
    ],
)
def test_queue_limits_poison_with_a_reason_and_the_message_fits(
    queue_run: QueueRun, body: bytes, reason: str
) -> None:
    queue_run.deliver(body)
    [poison] = queue_run.poisoned
    assert poison["reason"] == reason and poison["errors"][0]["field"] == "(body)"
    assert len(json.dumps(poison)) <= queue_captures.POISON_MAX_BYTES
    assert queue_run.client.started == []
    if len(body) > queue_captures.POISON_MAX_BYTES:
        assert poison["originalBodyTruncated"] is True and poison["originalBodyBytes"] == len(body)


def test_many_errors_still_fit_one_poison_message(queue_run: QueueRun) -> None:
    body = valid_request(**{f"k{i}" * 50: "v" * 200 for i in range(300)})
    queue_run.deliver(json.dumps(body).encode())
    [poison] = queue_run.poisoned
    assert poison["reason"] == "InvalidRequest" and len(json.dumps(poison)) <= queue_captures.POISON_MAX_BYTES
    assert poison["errors"][-1]["message"].startswith("… (")


# --- property-based fuzz ------------------------------------------------------------------------

raw_bodies = (
    mutated_requests().map(lambda b: json.dumps(b).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=64)
    | st.integers(min_value=MAX_JSON_DEPTH - 2, max_value=3000).map(deep)
    | st.integers(min_value=MAX_JSON_DEPTH - 2, max_value=3000).map(deep_request)
)


def check_http_answer(
    client: RecordingClient, body: bytes, code: int, answer: Any, started_before: int
) -> None:
    assert code in (202, 400, 409, 413), (code, answer)
    if code == 400:
        assert answer["errors"] and all(isinstance(e["field"], str) and e["field"] for e in answer["errors"])
    if code in (202, 409):
        text = json.dumps(answer)
        assert "code=" not in text and "durabletask" not in text
    if code != 202:
        assert len(client.started) == started_before, "an orchestration started from a refused request"
    else:
        assert len(client.started) == started_before + 1
        request, errors = validate_request(json.loads(body))
        assert request is not None and errors == []
    assert all(is_capture_id(i) for i in client.ids)


@fuzz(1200)
@given(body=mutated_requests())
def test_fuzz_validate_request_never_raises_and_names_fields(body: dict[str, Any]) -> None:
    request, errors = validate_request(body, require_capture_mode=True)
    assert (request is None) == bool(errors)
    assert all(e.field and e.message and len(e.message) <= 1000 for e in errors)
    if request is not None:  # what is accepted replays, and is accepted again as it was stored
        wire = request.to_wire()
        assert validate_request(wire, require_capture_mode=True)[0] == request


@fuzz(1000)
@given(body=raw_bodies)
def test_fuzz_http_post(body: bytes) -> None:
    client = RecordingClient()
    resp = post(client, body)
    event(f"HTTP {resp.status_code}")
    check_http_answer(client, body, resp.status_code, body_of(resp), 0)


@fuzz(300)
@given(
    capture_id=st.text(max_size=40) | st.from_regex(r"capture-[a-z0-9-]{1,20}", fullmatch=True),
    body=raw_bodies,
)
def test_fuzz_status_and_cancel_ids(capture_id: str, body: bytes) -> None:
    client = RecordingClient()
    for resp in (get_status(client, capture_id), cancel(client, capture_id, body)):
        assert resp.status_code in (202, 400, 404, 409, 413), resp.get_body()[:300]
    assert all(is_capture_id(i) for i in client.ids)


@fuzz(700)
@given(body=raw_bodies)
def test_fuzz_queue_messages(body: bytes) -> None:
    with pytest.MonkeyPatch.context() as mp:
        run = QueueRun()
        mp.setattr(queue_captures, "_send_poison", lambda payload, queue: run.poisoned.append(payload))
        mp.setattr(queue_captures, "read_vm", vm_view)
        run.deliver(body)  # never raises: a bad message must not be retried and poisoned without a reason
    event("started" if run.client.started else f"poisoned {run.poisoned[0]['reason']}")
    assert len(run.client.started) + len(run.poisoned) == 1
    for poison in run.poisoned:
        assert poison["reason"] and poison["message"]
        assert len(json.dumps(poison)) <= queue_captures.POISON_MAX_BYTES
    if run.client.started:
        data = json.loads(body)
        assert data.get("captureMode") == "inPlace" and validate_request(data)[0] is not None
    assert all(is_capture_id(i) for i in run.client.ids)
