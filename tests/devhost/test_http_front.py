"""devhost's HTTP surface end to end: a real ``python -m devhost start`` subprocess, real HTTP requests.

Covers HTTP trigger routing, the durable client binding (the SDK's DurableOrchestrationClient calling back
into devhost) and the public Durable management webhooks, with the status codes of the real extension.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from devhost.testing import DevhostProcess, running_devhost

APP = Path(__file__).parent / "apps_front" / "web_app"


@pytest.fixture(scope="module")
def dh(tmp_path_factory: pytest.TempPathFactory):
    with running_devhost(APP, tmp_path_factory.mktemp("web") / ".devhost") as proc:
        yield proc


def poll_status(url: str, timeout: float = 20.0) -> requests.Response:
    """GET a statusQueryGetUri until it stops answering 202."""
    deadline = time.monotonic() + timeout
    while True:
        r = requests.get(url, timeout=10)
        if r.status_code != 202 or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


def start(
    dh: DevhostProcess, name: str, instance_id: str | None = None, body: Any = None
) -> requests.Response:
    path = f"api/start/{name}" + (f"/{instance_id}" if instance_id else "")
    return requests.post(dh.url(path), json=body, timeout=30)


def wait_runtime_status(dh: DevhostProcess, instance_id: str, wanted: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = requests.get(dh.url(f"runtime/webhooks/durabletask/instances/{instance_id}"), timeout=10)
        if r.status_code in (200, 202) and r.json()["runtimeStatus"] == wanted:
            return r.json()
        assert time.monotonic() < deadline, f"{instance_id} did not reach {wanted}: {r.status_code} {r.text}"
        time.sleep(0.05)


# -- HTTP triggers -------------------------------------------------------------------------------


def test_route_params_query_headers_and_body(dh: DevhostProcess) -> None:
    r = requests.post(
        dh.url("api/items/42/red?x=1&y=two"), json={"k": [1, 2]}, headers={"x-test": "yes"}, timeout=10
    )
    assert r.status_code == 200
    got = r.json()
    assert got["method"] == "POST"
    assert got["route"] == {"id": "42", "tag": "red"}
    assert got["params"] == {"x": "1", "y": "two"}
    assert got["header"] == "yes"
    assert got["body"] == {"k": [1, 2]}
    assert got["url"].startswith(dh.base_url + "/api/items/42/red")


def test_optional_param_constraint_and_literal_precedence(dh: DevhostProcess) -> None:
    r = requests.get(dh.url("api/items/7"), timeout=10)
    assert r.status_code == 200 and r.json()["route"] == {"id": "7"}
    # {id:int} refuses a non-integer segment
    assert requests.get(dh.url("api/items/abc"), timeout=10).status_code == 404
    # the literal route beats the parameterized one
    r = requests.get(dh.url("api/items/special"), timeout=10)
    assert r.status_code == 200 and r.text == "literal wins"


def test_methods_default_route_context_and_errors(dh: DevhostProcess) -> None:
    assert requests.delete(dh.url("api/items/1"), timeout=10).status_code == 404  # method not allowed there
    r = requests.get(dh.url("api/hello/World"), timeout=10)
    assert r.status_code == 200 and r.text == "Hello World"
    assert r.headers["Content-Type"].startswith("text/plain")
    # no route given: the function name is the route; `context` is supplied like the worker does
    r = requests.get(dh.url("api/default_route"), timeout=10)
    assert r.json() == {"function": "default_route", "invocation": True}
    assert requests.get(dh.url("api/boom"), timeout=10).status_code == 500
    assert requests.get(dh.url("api/nothing-here"), timeout=10).status_code == 404
    assert requests.get(dh.url("nope"), timeout=10).status_code == 404


def test_keys_not_required_by_default(dh: DevhostProcess) -> None:
    assert requests.get(dh.url("api/items/1"), timeout=10).status_code == 200  # authLevel function
    assert requests.get(dh.url("api/secure/thing"), timeout=10).status_code == 200  # authLevel admin


# -- durable client binding ----------------------------------------------------------------------


def test_start_check_status_response_and_completed_status(dh: DevhostProcess) -> None:
    r = start(dh, "greet", "greet-1", {"name": "Tokyo"})
    assert r.status_code == 202
    payload = r.json()
    assert payload["id"] == "greet-1"
    assert r.headers["Location"] == payload["statusQueryGetUri"]
    assert r.headers["Retry-After"] == "10"
    assert payload["statusQueryGetUri"].startswith(
        dh.base_url + "/runtime/webhooks/durabletask/instances/greet-1?"
    )
    assert "taskHub=FrontTests" in payload["statusQueryGetUri"]
    assert set(payload) >= {"sendEventPostUri", "terminatePostUri", "purgeHistoryDeleteUri", "restartPostUri"}

    done = poll_status(payload["statusQueryGetUri"])
    assert done.status_code == 200
    status = done.json()
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == ["Hello Tokyo", "Hello again"]
    assert status["customStatus"] == {"stage": "greeting"}
    assert status["name"] == "greet" and status["instanceId"] == "greet-1"
    assert (
        status["input"] == '{"name": "Tokyo"}'
    )  # Python-started: the input's JSON text, as the extension shows
    assert "historyEvents" not in status  # not emitted unless showHistory=true (EmitDefaultValue = false)
    assert status["createdTime"].endswith("Z") and len(status["createdTime"]) == 20


def test_get_status_with_history_through_the_client(dh: DevhostProcess) -> None:
    start(dh, "greet", "greet-hist", {"name": "Oslo"})
    wait_runtime_status(dh, "greet-hist", "Completed")
    r = requests.get(dh.url("api/status/greet-hist"), timeout=10)
    got = r.json()
    assert got["status"] == "Completed"
    assert got["output"] == ["Hello Oslo", "Hello again"]
    assert got["history_types"][0] == "ExecutionStarted"
    assert got["history_types"][-1] == "ExecutionCompleted"
    completed = [h for h in got["history"] if h["EventType"] == "TaskCompleted"]
    assert [h["FunctionName"] for h in completed] == ["say_hello", "say_hello"]
    assert [h["Result"] for h in completed] == ["Hello Oslo", "Hello again"]  # showHistoryOutput
    # unknown instance: the client gets a falsy status from the 404
    assert requests.get(dh.url("api/status/does-not-exist"), timeout=10).status_code == 404


def test_public_status_codes_and_history_flags(dh: DevhostProcess) -> None:
    base = dh.url("runtime/webhooks/durabletask/instances")
    assert requests.get(f"{base}/unknown-id", timeout=10).status_code == 404
    start(dh, "approval", "pending-1")
    r = requests.get(f"{base}/pending-1", timeout=10)
    assert r.status_code == 202  # Running/Pending
    assert r.headers["Retry-After"] == "5" and "Location" in r.headers
    r = requests.get(f"{base}/pending-1?showHistory=true&showInput=false", timeout=10)
    body = r.json()
    assert body["input"] is None
    assert body["historyEvents"][0]["EventType"] == "ExecutionStarted"
    requests.post(f"{base}/pending-1/terminate?reason=cleanup", timeout=10)


def test_active_id_conflict_and_unknown_orchestrator(dh: DevhostProcess) -> None:
    assert start(dh, "approval", "dup-1").status_code == 202
    # the public webhook answers 409 for an id that is still active
    r = requests.post(dh.url("runtime/webhooks/durabletask/orchestrators/approval/dup-1"), timeout=10)
    assert r.status_code == 409
    assert "dup-1" in r.json()["ExceptionMessage"]
    # through the client the SDK raises, and the app answers 409 itself
    r = start(dh, "approval", "dup-1")
    assert r.status_code == 409 and "dup-1" in r.json()["error"]
    # unknown orchestrator: 400 with ExceptionMessage, surfaced by the SDK as the exception text
    r = start(dh, "no_such_orchestrator")
    assert "doesn't exist" in r.json()["error"]
    requests.post(dh.url("api/terminate/dup-1"), timeout=10)


def test_raise_event(dh: DevhostProcess) -> None:
    start(dh, "approval", "appr-1")
    r = requests.post(dh.url("api/raise/appr-1/approve"), json={"ok": True}, timeout=10)
    assert r.status_code == 202, r.text
    status = wait_runtime_status(dh, "appr-1", "Completed")
    # the Python client double-encodes event data, so it arrives as JSON text (azure-functions-durable-python#295)
    assert status["output"] == {"approved": '{"ok": true}'}
    # finished instance: 410 → the SDK raises "gone"; unknown: 404
    r = requests.post(dh.url("api/raise/appr-1/approve"), json=1, timeout=10)
    assert r.status_code == 400 and "gone" in r.json()["error"]
    r = requests.post(dh.url("api/raise/nobody/approve"), json=1, timeout=10)
    assert "No instance" in r.json()["error"]


def test_raise_event_through_send_event_post_uri(dh: DevhostProcess) -> None:
    payload = start(dh, "approval", "appr-2").json()
    url = payload["sendEventPostUri"].replace("{eventName}", "approve")
    assert requests.post(url, data="x", headers={"Content-Type": "text/plain"}, timeout=10).status_code == 400
    assert requests.post(url, json={"by": "curl"}, timeout=10).status_code == 202
    assert wait_runtime_status(dh, "appr-2", "Completed")["output"] == {"approved": {"by": "curl"}}


def test_terminate(dh: DevhostProcess) -> None:
    start(dh, "forever", "term-1")
    r = requests.post(dh.url("api/terminate/term-1"), timeout=10)
    assert r.status_code == 202
    status = wait_runtime_status(dh, "term-1", "Terminated")
    assert status["output"] == "stopped by test"
    r = poll_status(dh.url("runtime/webhooks/durabletask/instances/term-1"))
    assert r.status_code == 200
    # terminating again: 410, which the SDK accepts silently
    assert (
        requests.post(
            dh.url("runtime/webhooks/durabletask/instances/term-1/terminate"), timeout=10
        ).status_code
        == 410
    )
    assert requests.post(dh.url("api/terminate/term-1"), timeout=10).status_code == 202
    assert requests.post(dh.url("api/terminate/never-was"), timeout=10).status_code == 404


def test_purge_and_listing(dh: DevhostProcess) -> None:
    start(dh, "greet", "purge-1", {"name": "P"})
    wait_runtime_status(dh, "purge-1", "Completed")
    listed = requests.get(dh.url("api/list"), timeout=10).json()
    assert "purge-1" in listed["all"] and "purge-1" in listed["completed"]
    # a running instance cannot be purged
    start(dh, "approval", "purge-running")
    r = requests.delete(dh.url("runtime/webhooks/durabletask/instances/purge-running"), timeout=10)
    assert r.status_code == 412
    assert requests.delete(dh.url("api/purge/purge-1"), timeout=10).json() == {"deleted": 1}
    assert (
        requests.get(dh.url("runtime/webhooks/durabletask/instances/purge-1"), timeout=10).status_code == 404
    )
    assert requests.delete(dh.url("api/purge/purge-1"), timeout=10).json() == {"deleted": 0}
    requests.post(dh.url("api/terminate/purge-running"), timeout=10)


def test_restart_post_uri(dh: DevhostProcess) -> None:
    payload = start(dh, "greet", "restart-1", {"name": "R"}).json()
    wait_runtime_status(dh, "restart-1", "Completed")
    r = requests.post(payload["restartPostUri"], timeout=10)
    assert r.status_code == 202
    new_id = r.json()
    assert new_id != "restart-1"
    assert wait_runtime_status(dh, new_id, "Completed")["output"] == ["Hello R", "Hello again"]
    # restarting in place with the same id once it finished
    r = requests.post(payload["restartPostUri"].replace("?", "?restartWithNewInstanceId=false&"), timeout=10)
    assert r.status_code == 202 and r.json() == "restart-1"
    assert (
        requests.post(dh.url("runtime/webhooks/durabletask/instances/nope/restart"), timeout=10).status_code
        == 404
    )


def test_purge_by_filters(dh: DevhostProcess) -> None:
    base = dh.url("runtime/webhooks/durabletask/instances")
    assert requests.delete(base, timeout=10).status_code == 400  # createdTimeFrom is required
    start(dh, "greet", "pby-1", {"name": "x"})
    wait_runtime_status(dh, "pby-1", "Completed")
    # the client's DATETIME_STRING_FORMAT; only finished instances with a matching status go
    since = "2000-01-01T00:00:00.000000Z"
    r = requests.delete(f"{base}?createdTimeFrom={since}&runtimeStatus=Failed", timeout=10)
    assert r.status_code in (200, 404)
    assert requests.get(f"{base}/pby-1", timeout=10).status_code == 200
    r = requests.delete(f"{base}?createdTimeFrom={since}&runtimeStatus=Completed", timeout=10)
    assert r.status_code == 200 and r.json()["instancesDeleted"] >= 1
    assert requests.get(f"{base}/pby-1", timeout=10).status_code == 404
    r = requests.delete(f"{base}?createdTimeFrom={since}&runtimeStatus=Completed", timeout=10)
    assert r.status_code == 404  # nothing left to delete, as the real host answers


def test_many_concurrent_client_functions_do_not_deadlock(dh: DevhostProcess) -> None:
    """More concurrent client-function invocations than invocation threads, all calling back into devhost."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=80) as pool:
        codes = list(pool.map(lambda i: start(dh, "approval", f"burst-{i}").status_code, range(80)))
    assert codes == [202] * 80
    listed = requests.get(
        dh.url("runtime/webhooks/durabletask/instances?instanceIdPrefix=burst-"), timeout=30
    ).json()
    assert len(listed) == 80
    for i in range(80):
        requests.post(dh.url(f"runtime/webhooks/durabletask/instances/burst-{i}/terminate"), timeout=10)


def test_wait_for_completion_or_check_status(dh: DevhostProcess) -> None:
    r = requests.post(dh.url("api/wait/greet"), json={"name": "Wait"}, timeout=30)
    assert r.status_code == 200
    assert r.json() == ["Hello Wait", "Hello again"]


def test_management_payload_urls(dh: DevhostProcess) -> None:
    urls = requests.get(dh.url("api/management/abc"), timeout=10).json()
    assert urls["id"] == "abc"
    assert (
        urls["statusQueryGetUri"]
        == f"{dh.base_url}/runtime/webhooks/durabletask/instances/abc?taskHub=FrontTests&connection=Storage"
    )
    assert urls["terminatePostUri"].startswith(
        f"{dh.base_url}/runtime/webhooks/durabletask/instances/abc/terminate?reason={{text}}"
    )


# -- Event Grid ----------------------------------------------------------------------------------

EG = "runtime/webhooks/eventgrid?functionName=on_event"


def eg_event(event_id: str, subject: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "topic": "/subscriptions/s/resourceGroups/rg",
        "subject": subject,
        "eventType": "Microsoft.Resources.ResourceActionSuccess",
        "eventTime": "2025-05-01T10:00:00.123Z",
        "dataVersion": "2",
        "metadataVersion": "1",
        "data": {
            "operationName": "Microsoft.Compute/virtualMachines/deallocate/action",
            "status": "Succeeded",
        },
    }


def test_eventgrid_validation_handshakes(dh: DevhostProcess) -> None:
    validation: list[dict[str, Any]] = [
        {
            "id": "v1",
            "topic": "/subscriptions/s",
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
    r = requests.post(
        dh.url(EG), json=validation, headers={"aeg-event-type": "SubscriptionValidation"}, timeout=10
    )
    assert r.status_code == 200
    assert r.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    r = requests.options(dh.url(EG), headers={"WebHook-Request-Origin": "eventgrid.azure.net"}, timeout=10)
    assert r.status_code == 200
    assert r.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    r = requests.post(
        dh.url("runtime/webhooks/eventgrid?functionName=nope"),
        json=[],
        headers={"aeg-event-type": "Notification"},
        timeout=10,
    )
    assert r.status_code == 404


def test_eventgrid_notification_batch(dh: DevhostProcess) -> None:
    vm = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
    batch = [eg_event("e1", vm + "1"), eg_event("e2", vm + "2")]
    r = requests.post(dh.url(EG), json=batch, headers={"aeg-event-type": "Notification"}, timeout=30)
    assert r.status_code == 202, r.text
    for n in ("1", "2"):
        status = wait_runtime_status(dh, f"eg-e{n}", "Completed")
        assert status["output"][0] == f"Hello Microsoft.Resources.ResourceActionSuccess|{vm}{n}"
    # a failing function makes the delivery fail so Event Grid retries it
    r = requests.post(
        dh.url(EG),
        json=[eg_event("e3", vm + "-fail")],
        headers={"aeg-event-type": "Notification"},
        timeout=30,
    )
    assert r.status_code == 500


def test_eventgrid_cloudevents_single_and_batch(dh: DevhostProcess) -> None:
    def ce(event_id: str) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": event_id,
            "source": "/subscriptions/s/resourceGroups/rg",
            "subject": "/vm/ce",
            "type": "Microsoft.Resources.ResourceActionSuccess",
            "time": "2025-05-01T10:00:00.123Z",
            "data": {"status": "Succeeded"},
        }

    headers = {
        "aeg-event-type": "Notification",
        "Content-Type": "application/cloudevents+json; charset=utf-8",
    }
    r = requests.post(dh.url(EG), json=ce("c1"), headers=headers, timeout=30)
    assert r.status_code == 202, r.text
    r = requests.post(
        dh.url(EG),
        json=[ce("c2"), ce("c3")],
        headers={**headers, "Content-Type": "application/cloudevents-batch+json; charset=utf-8"},
        timeout=30,
    )
    assert r.status_code == 202, r.text
    for n in ("c1", "c2", "c3"):
        status = wait_runtime_status(dh, f"eg-{n}", "Completed")
        assert status["output"][0] == "Hello Microsoft.Resources.ResourceActionSuccess|/vm/ce"


# -- keys ----------------------------------------------------------------------------------------


def test_require_keys(tmp_path: Path) -> None:
    with running_devhost(APP, tmp_path / ".devhost", require_keys=True) as dh:
        fkey, master = dh.function_key, dh.master_key
        assert fkey not in dh.log_text()  # only the key file and key names are printed
        assert requests.get(dh.url("api/items/1"), timeout=10).status_code == 401
        assert requests.get(dh.url("api/items/1?code=wrong"), timeout=10).status_code == 401
        assert requests.get(dh.url(f"api/items/1?code={fkey}"), timeout=10).status_code == 200
        assert (
            requests.get(dh.url("api/items/1"), headers={"x-functions-key": fkey}, timeout=10).status_code
            == 200
        )
        assert requests.get(dh.url(f"api/secure/thing?code={fkey}"), timeout=10).status_code == 401
        assert requests.get(dh.url(f"api/secure/thing?code={master}"), timeout=10).status_code == 200
        assert requests.get(dh.url("api/hello/anon"), timeout=10).status_code == 200  # anonymous stays open
        # management webhooks need the durabletask system key, which the check-status URLs carry
        r = start(dh, "greet", "keyed-1", {"name": "K"})
        assert r.status_code == 202
        status_url = r.json()["statusQueryGetUri"]
        assert "code=" in status_url
        assert requests.get(status_url.split("&code=")[0], timeout=10).status_code == 401
        assert poll_status(status_url).json()["runtimeStatus"] == "Completed"
        # Event Grid webhook needs the eventgrid_extension system key
        assert (
            requests.post(
                dh.url(EG), json=[], headers={"aeg-event-type": "Notification"}, timeout=10
            ).status_code
            == 401
        )
        egkey = dh.system_key("eventgrid_extension")
        r = requests.post(
            dh.url(f"{EG}&code={egkey}"),
            json=[eg_event("k1", "/vm/k")],
            headers={"aeg-event-type": "Notification"},
            timeout=30,
        )
        assert r.status_code == 202


def test_stop_after_client_calls_is_clean(tmp_path: Path) -> None:
    """The SDK's shared aiohttp session is closed at stop: no 'Unclosed client session' error."""
    with running_devhost(APP, tmp_path / ".devhost") as dh:
        r = start(dh, "greet", "greet-stop", {"name": "Oslo"})
        assert r.status_code == 202
        assert poll_status(r.json()["statusQueryGetUri"]).json()["runtimeStatus"] == "Completed"
        assert dh.stop() == 0
        log = dh.log_text()
    assert "Unclosed client session" not in log
    assert "Unclosed connector" not in log
