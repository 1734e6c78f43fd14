"""Schemathesis against devhost: generated requests to every operation of docs/openapi.json get no 5xx
and no answer outside the document (status code, content type, headers, body schema).

Bounded and deterministic: ``CASES`` per operation and generation mode, Hypothesis derandomized (the same
cases every run), no example database. Every request goes to devhost on 127.0.0.1 (a session that ignores
proxy settings), and a generated ``notify.webhookUrl`` is pointed at a local receiver before it is sent:
a capture the fuzzer starts fails at preflight in the local cloud (its VM does not exist there), and its
completion notice must not go to a host the fuzzer made up. The stack is torn down afterwards.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from azsim.testing import local_cloud
from devhost.keys import KeyStore
from devhost.testing import running_devhost
from shared.ids import capture_instance_id
from shared.openapi import DOCUMENT_PATH
from tests.api.test_openapi_document import operations
from tests.support.http import http
from tests.support.policy import FAST_POLICY, TERMINAL
from tests.support.stack import Stack, running_stack
from tests.support.webhooks import WebhookReceiver
from tests.support.worlds import REPO_ROOT, WORLD

pytestmark = pytest.mark.e2e

CASES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 25}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("openapi"), tagged_world=True) as s:
        yield s


def _confine(case: Case, receiver_url: str) -> None:
    """Point a generated webhook at the local receiver (the only change made to a generated case)."""
    notify = case.body.get("notify") if isinstance(case.body, dict) else None
    if isinstance(notify, dict) and "webhookUrl" in notify:
        notify["webhookUrl"] = receiver_url


def _fuzz(
    operation: Any, mode: GenerationMode, base_url: str, receiver_url: str, statuses: Counter[str]
) -> tuple[int, list[str]]:
    """Run ``CASES[mode]`` generated cases against ``operation``; answer (cases sent, failures), and
    count each answer's status in ``statuses`` (by operation)."""
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: the requests go to base_url only
    sent = 0
    failures: list[str] = []

    @settings(
        max_examples=CASES[mode],
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        nonlocal sent
        _confine(case, receiver_url)
        response = case.call(base_url=base_url, session=session, timeout=30)
        assert str(response.request.url).startswith(base_url + "/"), response.request.url
        sent += 1
        statuses[f"{operation.label} {response.status_code}"] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as exc:  # collected: one operation's finding must not hide another's
            failures.append(f"{operation.label} [{mode.value}]: {str(exc)[:1500]}")

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (no parameter, no body): no negative case exists
        assert mode is GenerationMode.NEGATIVE and sent == 0, operation.label
    return sent, failures


def _settle(api: Stack, timeout: float = 30.0) -> list[str]:
    """Wait for the captures the fuzzer started to end; answer the ids still active at the deadline."""
    deadline = time.monotonic() + timeout
    active: list[str] = []
    while time.monotonic() < deadline:
        active = [i["instanceId"] for i in api.instances() if i["runtimeStatus"] not in TERMINAL]
        if not active:
            return []
        time.sleep(0.5)
    return active


def test_generated_requests_get_documented_answers(api: Stack) -> None:
    code, served, _ = http("GET", api.devhost.url("/api/openapi.json"))
    assert code == 200 and served == json.loads(Path(DOCUMENT_PATH).read_text(encoding="utf-8"))
    schema = schemathesis.openapi.from_dict(served)
    base_url = api.devhost.base_url.rstrip("/")
    assert base_url.startswith("http://127.0.0.1:"), base_url
    started = time.monotonic()
    total, failures = 0, []
    statuses: Counter[str] = Counter()
    with WebhookReceiver() as receiver:
        for operation in operations(schema):
            for mode in CASES:
                sent, found = _fuzz(operation, mode, base_url, receiver.url, statuses)
                total += sent
                failures += found
        still_active = _settle(api)
    elapsed = time.monotonic() - started
    print(f"schemathesis: {total} cases in {elapsed:.1f}s, {len(failures)} failures")
    print("\n".join(f"  {key}: {n}" for key, n in sorted(statuses.items())))
    assert not failures, "\n\n".join(failures[:10])
    # Bounded per operation (the migrations and marketplace-sas routes added four): a few dozen each.
    assert 150 <= total <= 1000, total
    assert elapsed < 90, f"the bounded run took {elapsed:.0f}s"
    assert not still_active, f"captures still running after the fuzzing: {still_active}"
    assert not [line for line in api.log_errors() if "http trigger" in line and "failed" in line]


class Caller:
    """Sends chosen requests through the document's operations and checks each answer against it."""

    def __init__(self, base_url: str) -> None:
        self.schema = schemathesis.openapi.from_dict(
            json.loads(Path(DOCUMENT_PATH).read_text(encoding="utf-8"))
        )
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = False

    def __call__(self, method: str, path: str, expect: int, **case: Any) -> Any:
        operation = self.schema[path][method]
        chosen = (
            operation.Case(media_type="application/json", **case)
            if "body" in case
            else operation.Case(**case)
        )
        response = chosen.call(base_url=self.base_url, session=self.session, timeout=30)
        assert response.status_code == expect, (method, path, response.status_code, response.text[:2000])
        chosen.validate_response(response, checks=CHECKS)
        return response.json() if response.content else None


def test_every_documented_answer_conforms_when_reached(api: Stack) -> None:
    """The answers random requests seldom reach (202, both 409s, a status, both cancel outcomes, the Event
    Grid handshakes, 413), each sent on purpose and checked against the document."""
    call = Caller(api.devhost.base_url)
    first = api.request("vm-web", export=False)
    accepted = call("POST", "/api/captures", 202, body=first)
    running = call("POST", "/api/captures", 409, body=first)
    assert running["error"]["code"] == "CaptureAlreadyRunning"
    same_version = {**api.request("vm-golden", export=False), "imageDefinition": first["imageDefinition"]}
    taken = call("POST", "/api/captures", 409, body=same_version)
    assert taken["error"]["code"] == "VersionAlreadyTargeted" and taken["id"] == accepted["id"]
    call("GET", "/api/captures/{id}", 200, path_parameters={"id": accepted["id"]})
    call(
        "POST", "/api/captures/{id}/cancel", 202, path_parameters={"id": accepted["id"]}, body={"reason": "t"}
    )
    api.wait(accepted["id"])
    done = call("GET", "/api/captures/{id}", 200, path_parameters={"id": accepted["id"]})
    assert done["runtimeStatus"] in TERMINAL, done
    finished = call("POST", "/api/captures/{id}/cancel", 409, path_parameters={"id": accepted["id"]})
    assert finished["error"]["code"] == "CaptureAlreadyFinished"
    call("POST", "/api/captures", 413, body={"tags": {"x": "y" * 300_000}})
    # An id with an encoded newline is the app's JSON 404 too (devhost used to answer a plain-text one).
    assert (
        call("GET", "/api/captures/{id}", 404, path_parameters={"id": "a\nb"})["error"]["code"]
        == "CaptureNotFound"
    )

    handshake = [
        {
            "id": "v1",
            "subject": "",
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "eventTime": "2026-05-01T10:00:00Z",
            "data": {"validationCode": "512d38b6"},
            "dataVersion": "1",
        }
    ]
    path = "/api/eventgrid/deallocations"
    kind = "aeg-event-type"
    answer = call("POST", path, 200, body=handshake, headers={kind: "SubscriptionValidation"})
    assert answer == {"validationResponse": "512d38b6"}
    assert call("POST", path, 200, body=handshake, headers={kind: "SubscriptionDeletion"}) == {}
    call("OPTIONS", path, 200, headers={"WebHook-Request-Origin": "eventgrid.azure.net"})
    started = call(
        "POST", path, 200, body=[api.deallocation_event("vm-golden")], headers={kind: "Notification"}
    )
    assert started["outcomes"] == {"started": 1}, started
    golden = api.wait(capture_instance_id(api.vm_id("vm-golden")))
    assert golden["runtimeStatus"] == "Completed", golden
    call("GET", "/api/captures/{id}", 200, path_parameters={"id": golden["id"]})


def test_function_key_is_asked_for_everywhere_but_the_document(tmp_path: Path) -> None:
    """With keys required (as in Azure): 401 without a key, the key accepted as ``code`` or
    ``x-functions-key``, and the document served without one."""
    with (
        local_cloud(tmp_path / "azsim", world=WORLD) as cloud,
        running_devhost(
            REPO_ROOT, tmp_path / "devhost", env={**dict(cloud), **FAST_POLICY}, require_keys=True
        ) as dh,
    ):
        key = KeyStore.load_or_create(dh.workdir).default_function_key
        call = Caller(dh.base_url)
        path, some_id = "/api/captures/{id}", {"id": "capture-none-0"}
        assert call("GET", "/api/openapi.json", 200)["openapi"].startswith("3.1")
        assert call("GET", path, 401, path_parameters=some_id) is None
        call("GET", path, 404, path_parameters=some_id, query={"code": key})
        call("GET", path, 404, path_parameters=some_id, headers={"x-functions-key": key})
        call("POST", "/api/captures", 401, body={})
        call("POST", "/api/eventgrid/deallocations", 401, body=[])
        call(
            "OPTIONS",
            "/api/eventgrid/deallocations",
            401,
            headers={"WebHook-Request-Origin": "eventgrid.azure.net"},
        )
