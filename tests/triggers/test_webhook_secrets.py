"""No webhook secret in Durable history: URLs with a query string are refused, keys go in an app setting.

The request (HTTP body, queue message, VM tags) is the orchestration input, stored in plain text in the
task hub. ``notify.webhookUrl`` / ``image-pipeline:webhook`` with a query string (Logic Apps' ``sig=``,
Functions' ``code=``), a fragment or credentials are refused at intake; ``notify.webhookSetting`` /
``image-pipeline:webhook-setting`` name an app setting ``NOTICE_WEBHOOK_*`` whose value is the URL, read
only by ``publish_notice`` when it delivers.

Units first; then a stack (local cloud + devhost) whose devhost has such a setting, pointing at a local
webhook receiver: a capture notifies through it, and the key never reaches the store, logs or results.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from activities.notices import webhook_from_setting
from shared.contracts import CaptureInput
from shared.requests import validate_request
from shared.vm_tags import TAG_WEBHOOK, TAG_WEBHOOK_SETTING, request_from_tags
from tests.support.http import http, wait_for
from tests.support.policy import RESULTS_QUEUE
from tests.support.stack import Stack, running_trigger_stack
from tests.support.webhooks import WebhookReceiver

VM_ID = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/vm-x"
BASE = {
    "sourceVmId": VM_ID,
    "captureMode": "inPlace",
    "gallery": {"resourceGroup": "rg-images", "name": "galContoso"},
    "imageDefinition": {"name": "d", "createIfMissing": False},
    "prepare": "none",
}
# Assembled at run time, so nothing committed looks like a signature.
KEY = "k3y" + uuid.uuid4().hex
SIG = "sig=" + "Zm9v" + uuid.uuid4().hex
TAGS = {
    "image-pipeline:mode": "inPlace",
    "image-pipeline:gallery": "rg-images/galContoso",
    "image-pipeline:definition": "d",
}


def _errors(notify: dict[str, Any]) -> dict[str, str]:
    request, errors = validate_request({**BASE, "notify": notify})
    assert (request is None) == bool(errors)
    return {e.field: e.message for e in errors}


@pytest.mark.parametrize(
    "url",
    [
        f"https://prod-1.westeurope.logic.azure.com/workflows/1/triggers/manual/paths/invoke?api-version=2016-10-01&{SIG}",
        f"https://fn.azurewebsites.net/api/hook?code={KEY}",
        f"https://hook.example/x#{KEY}",
        f"https://user:{KEY}@hook.example/x",
    ],
    ids=["logic-app-sig", "functions-code", "fragment", "credentials"],  # stable: the key is random
)
def test_a_webhook_url_that_can_carry_a_key_is_refused_with_the_alternative(url: str) -> None:
    errors = _errors({"webhookUrl": url})
    assert list(errors) == ["notify.webhookUrl"]
    message = errors["notify.webhookUrl"]
    assert "query string" in message and "notify.webhookSetting" in message and "NOTICE_WEBHOOK_" in message
    assert KEY not in message and SIG not in message  # the error never repeats the secret


def test_a_plain_url_or_a_setting_name_is_accepted() -> None:
    assert _errors({"webhookUrl": "https://hook.example/capture"}) == {}
    assert _errors({"webhookSetting": "NOTICE_WEBHOOK_TEAMS"}) == {}
    request, _ = validate_request({**BASE, "notify": {"webhookSetting": "NOTICE_WEBHOOK_TEAMS"}})
    assert request is not None and request.to_wire()["notify"] == {"webhookSetting": "NOTICE_WEBHOOK_TEAMS"}


def test_the_setting_must_be_a_webhook_setting_and_not_both_targets() -> None:
    for name in ("AzureWebJobsStorage", "AZURE_CLIENT_SECRET", "NOTICE_WEBHOOK_", "NOTICE_WEBHOOK_A-B"):
        assert "NOTICE_WEBHOOK_" in _errors({"webhookSetting": name})["notify.webhookSetting"], name
    both = _errors({"webhookUrl": "https://h/x", "webhookSetting": "NOTICE_WEBHOOK_A"})
    assert "not both" in both["notify"]


def test_a_capture_started_before_the_check_still_replays() -> None:
    # Its input already holds such a URL; refusing it on replay would break the running capture.
    old = {"captureId": "capture-x", "request": {**BASE, "notify": {"webhookUrl": f"https://h/x?code={KEY}"}}}
    assert CaptureInput.from_wire(old).request.notify is not None


def test_vm_tags_refuse_a_keyed_webhook_and_take_a_setting() -> None:
    bad = request_from_tags(VM_ID, {**TAGS, TAG_WEBHOOK: f"https://fn.example/api/hook?code={KEY}"})
    assert bad.request is None
    (error,) = [e for e in bad.errors if e.field == TAG_WEBHOOK]
    assert TAG_WEBHOOK_SETTING in error.message and "NOTICE_WEBHOOK_" in error.message
    assert KEY not in bad.describe_errors()  # what the trigger logs

    good = request_from_tags(VM_ID, {**TAGS, TAG_WEBHOOK_SETTING: "NOTICE_WEBHOOK_GOLDEN"})
    assert good.request is not None and good.request.notify is not None
    assert good.request.notify.webhook_setting == "NOTICE_WEBHOOK_GOLDEN"
    plain = request_from_tags(VM_ID, {**TAGS, TAG_WEBHOOK: "https://hook.example/golden"})
    assert plain.request is not None and plain.request.notify is not None
    assert plain.request.notify.webhook_url == "https://hook.example/golden"

    wrong = request_from_tags(VM_ID, {**TAGS, TAG_WEBHOOK_SETTING: "AzureWebJobsStorage"})
    assert wrong.request is None and [e.field for e in wrong.errors] == [TAG_WEBHOOK_SETTING]


def test_the_setting_is_read_at_delivery_and_shown_without_its_path_or_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NOTICE_WEBHOOK_UNIT", raising=False)
    url, shown, problem = webhook_from_setting("NOTICE_WEBHOOK_UNIT")
    assert url is None and problem is not None and "NOTICE_WEBHOOK_UNIT is not set" in problem

    monkeypatch.setenv("NOTICE_WEBHOOK_UNIT", f"not a url {KEY}")
    url, shown, problem = webhook_from_setting("NOTICE_WEBHOOK_UNIT")
    assert url is None and problem is not None and KEY not in problem + shown

    secret_url = f"https://hooks.example:8443/services/T0/{KEY}?{SIG}"
    monkeypatch.setenv("NOTICE_WEBHOOK_UNIT", secret_url)
    url, shown, problem = webhook_from_setting("NOTICE_WEBHOOK_UNIT")
    assert (url, problem) == (secret_url, None)
    assert shown == "https://hooks.example:8443/… (app setting NOTICE_WEBHOOK_UNIT)"


def _decoded(value: Any) -> Any:
    for _ in range(2):  # activity results are JSON text in the history (sometimes JSON text of JSON text)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return value
    return value


# --- through devhost -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, WebhookReceiver]]:
    """A stack whose devhost has NOTICE_WEBHOOK_E2E = a local receiver's URL with a key in its query."""
    with WebhookReceiver() as hook:
        env = {"NOTICE_WEBHOOK_E2E": f"{hook.url}?{SIG}"}
        with running_trigger_stack(tmp_path_factory.mktemp("webhook-setting"), env=env) as s:
            yield s, hook
            s.assert_no_secrets()
            # The key itself (not only what looks like a signature) is nowhere in the store or logs.
            for path in s.devhost.workdir.rglob("*"):
                if path.is_file() and path.name != "keys.json":
                    assert SIG not in path.read_bytes().decode("latin-1"), path


@pytest.mark.e2e
def test_keyed_webhook_urls_are_refused_at_every_intake(hooked: tuple[Stack, WebhookReceiver]) -> None:
    s, _hook = hooked
    body = s.queue_request("vm-409", notify={"webhookUrl": f"https://fn.example/api/hook?code={KEY}"})
    code, answer, _ = http("POST", s.devhost.url("/api/captures"), body)
    assert code == 400 and [e["field"] for e in answer["errors"]] == ["notify.webhookUrl"], answer
    assert KEY not in json.dumps(answer)

    s.enqueue(json.dumps(body))
    poisoned = wait_for(
        "the poison message",
        lambda: [m for m in s.read_queue("capture-requests-poison") if KEY in m.get("originalBody", "")],
        timeout=60,
    )
    assert poisoned[0]["reason"] == "InvalidRequest"
    assert [e["field"] for e in poisoned[0]["errors"]] == ["notify.webhookUrl"]
    assert KEY not in s.devhost.log_text()  # the rejection is logged without the URL


@pytest.mark.e2e
def test_a_capture_notifies_through_the_setting_without_storing_the_key(
    hooked: tuple[Stack, WebhookReceiver],
) -> None:
    s, hook = hooked
    body = s.queue_request("vm-notice", notify={"webhookSetting": "NOTICE_WEBHOOK_E2E"})
    code, answer, _ = http("POST", s.devhost.url("/api/captures"), body)
    assert code == 202, answer
    status = s.wait(answer["id"], timeout=150)
    assert status["runtimeStatus"] == "Completed", status.get("error")

    wait_for("the webhook notice", lambda: hook.bodies)
    assert hook.bodies[0]["captureId"] == answer["id"] and hook.bodies[0]["runId"] == status["runId"]
    assert hook.paths[0] == f"/hooks/capture?{SIG}"  # delivered to the setting's full URL, key included
    queued = [m for m in s.read_queue(RESULTS_QUEUE) if m.get("runId") == status["runId"]]
    assert len(queued) == 1 and SIG not in json.dumps(queued)

    # In the history: the setting's name went in, the delivery report came out; neither path nor key.
    code, inst, _ = http(
        "GET",
        s.devhost.url(
            f"/runtime/webhooks/durabletask/instances/{answer['id']}?showHistory=true&showHistoryOutput=true"
        ),
    )
    assert code == 200, inst
    text = json.dumps(inst)
    assert "NOTICE_WEBHOOK_E2E" in text and SIG not in text and "/hooks/capture" not in text
    reports = [
        _decoded(e.get("Result")) for e in inst["historyEvents"] if e.get("EventType") == "TaskCompleted"
    ]
    (delivery,) = [r["webhook"] for r in reports if isinstance(r, dict) and "webhook" in r]
    port = hook.url.split("/")[2]
    assert delivery == {
        "url": f"http://{port}/… (app setting NOTICE_WEBHOOK_E2E)",
        "setting": "NOTICE_WEBHOOK_E2E",
        "delivered": True,
        "attempts": 1,
        "statusCode": 204,
    }
    assert SIG not in s.devhost.log_text()
