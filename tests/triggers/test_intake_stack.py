"""Intake over real HTTP and a real queue (devhost + azsim + Azurite): regressions and a smaller fuzz.

The in-process fuzz (test_intake_triggers) runs thousands of cases; this one sends a few hundred through
the host's own HTTP front and queue polling, where a RecursionError or an id with '?' used to become a
500 or a retried-then-reasonless poison message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.bounded_json import MAX_BODY_BYTES, MAX_JSON_DEPTH
from shared.ids import capture_instance_id
from tests.support.http import http, wait_for
from tests.support.policy import REQUESTS_QUEUE
from tests.support.stack import Stack, running_trigger_stack
from tests.triggers.intake_bodies import deep, deep_request, mutated_requests
from tests.triggers.intake_support import VM_ID

pytestmark = pytest.mark.e2e
POISON = f"{REQUESTS_QUEUE}-poison"


@pytest.fixture(scope="module")
def istack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_trigger_stack(tmp_path_factory.mktemp("intake")) as s:
        yield s
        s.assert_no_secrets()


def post_raw(s: Stack, path: str, body: bytes) -> tuple[int, Any]:
    req = urllib.request.Request(
        s.devhost.url(path), method="POST", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw, code = resp.read(), resp.status
    except urllib.error.HTTPError as exc:
        raw, code = exc.read(), exc.code
    try:
        return code, json.loads(raw) if raw else None
    except ValueError:
        return code, raw.decode("utf-8", "replace")


def drain(s: Stack, queue: str) -> list[dict[str, Any]]:
    """Receive (and delete) every message now on ``queue``."""
    qc = s.queue(queue)
    out = []
    for m in qc.receive_messages(messages_per_page=32, visibility_timeout=60):
        s.seen.append(m.content)
        out.append(json.loads(m.content))
        qc.delete_message(m)
    return out


def drain_into(got: list[dict[str, Any]], s: Stack, queue: str, count: int) -> bool:
    """Move what is now on ``queue`` into ``got``; true once ``got`` holds ``count`` messages."""
    got.extend(drain(s, queue))
    return len(got) >= count


def test_202_and_409_carry_no_system_key_and_no_durable_url(istack: Stack) -> None:
    body = istack.queue_request("vm-409")
    code, first, headers = http("POST", istack.devhost.url("/api/captures"), body)
    assert code == 202, first
    assert set(first) == {"id", "runId", "captureStatusUri", "cancelPostUri"}
    assert headers["Location"] == first["captureStatusUri"]
    code, second, headers = http("POST", istack.devhost.url("/api/captures"), body)
    assert code == 409 and second["id"] == first["id"] and headers["Location"]
    for answer in (first, second):
        text = json.dumps(answer)
        assert "code=" not in text and "durabletask" not in text and "statusQueryGetUri" not in text
    code, status, _ = http("GET", first["captureStatusUri"])
    assert code == 200 and status["id"] == first["id"]
    istack.cancel(first["id"])


def test_deep_and_large_bodies_over_http(istack: Stack) -> None:
    cid = capture_instance_id(istack.vm_id("vm-fail"))
    for body in (deep(990), deep_request(990), deep(50_000)):
        for path in ("/api/captures", f"/api/captures/{cid}/cancel"):
            code, answer = post_raw(istack, path, body)
            assert code == 400, (path, answer)
            assert f"limit {MAX_JSON_DEPTH}" in answer["errors"][0]["message"]
    code, answer = post_raw(istack, "/api/captures", b'{"a": "' + b"x" * (MAX_BODY_BYTES + 10) + b'"}')
    assert code == 413 and str(MAX_BODY_BYTES) in answer["errors"][0]["message"]


@pytest.mark.parametrize(
    "encoded", ["%3F", "%3Fx%3D1", "%23", "%23frag", "capture-x%3Fy", "capture-x%23y", "%25"]
)
def test_encoded_query_and_fragment_ids_are_404(istack: Stack, encoded: str) -> None:
    code, answer, _ = http("GET", istack.devhost.url(f"/api/captures/{encoded}"))
    assert code == 404, answer
    code, answer = post_raw(istack, f"/api/captures/{encoded}/cancel", b"")
    assert code == 404, answer


def test_queue_limits_and_missing_capture_mode_poison_with_reasons(istack: Stack) -> None:
    drain(istack, POISON)
    no_mode = istack.queue_request("vm-fail")
    del no_mode["captureMode"]
    texts = {
        "CaptureModeRequired": json.dumps(no_mode),
        "TooDeep": deep(990).decode(),
        "InvalidRequest": json.dumps(istack.queue_request("vm-fail", version="1.0.0\n")),
    }
    for text in texts.values():
        istack.enqueue(text)
    got: list[dict[str, Any]] = []
    wait_for("3 poison messages", lambda: drain_into(got, istack, POISON, 3), timeout=60)
    by_reason = {p["reason"]: p for p in got}
    assert set(by_reason) == set(texts) and len(got) == 3  # each once: not retried by the host
    assert by_reason["CaptureModeRequired"]["errors"][0]["field"] == "captureMode"
    assert "never be started again" in by_reason["CaptureModeRequired"]["message"]
    assert f"limit {MAX_JSON_DEPTH}" in by_reason["TooDeep"]["errors"][0]["message"]
    assert [e["field"] for e in by_reason["InvalidRequest"]["errors"]] == ["version"]
    assert all(p["dequeueCount"] == 1 for p in got)
    assert not istack.capture_instances("vm-fail")


FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
stack_bodies = (
    mutated_requests().map(lambda b: ("request", b))
    | st.binary(max_size=40).map(lambda b: ("raw", b))
    | st.integers(min_value=MAX_JSON_DEPTH - 1, max_value=2000).map(lambda n: ("raw", deep(n)))
)


def test_fuzz_over_real_http_and_queue(istack: Stack) -> None:
    """A few hundred cases through the host: every VM is a fresh, non-existent one, so each capture that starts
    is known; on the queue every message is refused (bad, or its VM does not exist) and poisoned with a reason."""
    accepted: set[str] = set()
    refused: set[str] = set()
    queued: list[bytes] = []
    counter = iter(range(10**6))

    def with_fresh_vm(kind: str, value: Any) -> tuple[bytes, str | None]:
        if kind == "raw":
            return value, None
        n = next(counter)
        if value.get("sourceVmId") == VM_ID:
            value["sourceVmId"] = istack.vm_id(f"vm-fuzz-{n}")
            return json.dumps(value).encode(), capture_instance_id(value["sourceVmId"])
        return json.dumps(value).encode(), None

    @FUZZ
    @given(case=stack_bodies)
    def one(case: tuple[str, Any]) -> None:
        body, cid = with_fresh_vm(*case)
        code, answer = post_raw(istack, "/api/captures", body)
        assert code in (202, 400, 409, 413), (code, answer)
        if code == 400:
            assert answer["errors"] and all(e["field"] for e in answer["errors"])
        if cid is not None:
            (accepted if code == 202 else refused).add(cid)
        if len(queued) < 120 and len(body) < 40_000 and _is_text(body):  # non-UTF-8: covered in-process
            queued.append(body)

    drain(istack, POISON)
    one()
    fuzz_ids = {i["instanceId"] for i in istack.instances() if i["instanceId"].startswith("capture-vm-fuzz-")}
    assert fuzz_ids == accepted and not (fuzz_ids & refused)
    assert accepted and len(refused) > 50 and len(queued) > 50, (len(accepted), len(refused), len(queued))

    qc = istack.queue(REQUESTS_QUEUE)
    for body in queued:
        qc.send_message(body.decode("utf-8"))
    got: list[dict[str, Any]] = []
    wait_for(f"{len(queued)} poison messages", lambda: drain_into(got, istack, POISON, len(queued)))
    assert len(got) == len(queued)
    assert all(p["reason"] and p["message"] and p["dequeueCount"] == 1 for p in got)
    after = {i["instanceId"] for i in istack.instances() if i["instanceId"].startswith("capture-vm-fuzz-")}
    assert after == fuzz_ids  # the queue started nothing


def _is_text(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
