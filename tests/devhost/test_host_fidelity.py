"""devhost behaves like the Functions host, the Python worker and the Durable extension where apps can tell.

Sample apps: ``apps/misbound_param`` and ``apps/misbound_blueprint`` (refused by the worker at indexing),
``apps/fidelity`` (disabled functions, a ``%SETTING%`` task hub, AnyState restarts, status history and
activity failure shapes). The HTTP tests run one real ``python -m devhost start`` subprocess.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests

import devhost
from devhost.functions import AppLoadError, load_app
from devhost.http.durable import convert_history
from devhost.settings import SettingsError, load_host_config
from devhost.testing import DevhostProcess, DevhostStartError, running_devhost
from tests.devhost.engine_support import APPS, running_engine

DEVHOST_DIR = str(Path(devhost.__file__).resolve().parent)
HOOKS = "runtime/webhooks/durabletask"

# -- apps the worker refuses --------------------------------------------------------------------------


def test_parameter_without_binding_is_refused_with_the_workers_reason() -> None:
    with pytest.raises(AppLoadError) as err:
        load_app(APPS / "misbound_param")
    assert (
        "FunctionLoadError: cannot load the enqueue function: the following parameters are declared in "
        "Python but not in function.json: {'msg'}"
    ) in str(err.value)


def test_binding_on_the_wrong_function_is_refused_with_the_workers_reason() -> None:
    with pytest.raises(AppLoadError) as err:
        load_app(APPS / "misbound_blueprint")
    assert (
        "FunctionLoadError: cannot load the hello function: the following parameters are declared in "
        "function.json but not in Python: {'msg'}"
    ) in str(err.value)


def test_devhost_start_refuses_a_misbound_app(tmp_path: Path) -> None:
    proc = DevhostProcess(APPS / "misbound_param", tmp_path / ".devhost", startup_timeout=20)
    with pytest.raises(DevhostStartError) as err:
        proc.start()
    proc.stop()
    assert "exited with code 2" in str(err.value)
    assert "cannot load the enqueue function" in str(err.value)


# -- host.json ----------------------------------------------------------------------------------------


def _app_with_host_json(tmp_path: Path, text: str) -> Path:
    (tmp_path / "host.json").write_text(text, encoding="utf-8")
    return tmp_path


def test_host_json_with_two_objects_back_to_back_is_refused(tmp_path: Path) -> None:
    app = _app_with_host_json(tmp_path, '{"version": "2.0"}\n{"extensions": {}}\n')
    with pytest.raises(SettingsError) as err:
        load_host_config(app)
    text = str(err.value)
    assert str(app / "host.json") in text
    assert "line 2 column 1: Extra data" in text and "more than one JSON value" in text


def test_hub_name_setting_is_resolved_from_app_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _app_with_host_json(tmp_path, '{"extensions": {"durableTask": {"hubName": "%MY_HUB%"}}}')
    cfg = load_host_config(app)
    monkeypatch.delenv("MY_HUB", raising=False)
    with pytest.raises(
        SettingsError, match=r"hubName is '%MY_HUB%', but the app setting 'MY_HUB' is not set"
    ):
        _ = cfg.hub_name
    monkeypatch.setenv("MY_HUB", "Resolved1")
    assert cfg.hub_name == "Resolved1"
    # only a whole-value reference is resolved, as the extension's TryResolveWholeString does
    partial = _app_with_host_json(tmp_path, '{"extensions": {"durableTask": {"hubName": "x%MY_HUB%"}}}')
    assert load_host_config(partial).hub_name == "x%MY_HUB%"


def test_overridable_existing_instance_states_setting(tmp_path: Path) -> None:
    def states(value: str) -> str:
        doc = {"extensions": {"durableTask": {"overridableExistingInstanceStates": value}}}
        return load_host_config(
            _app_with_host_json(tmp_path, json.dumps(doc))
        ).overridable_existing_instance_states

    assert load_host_config(_app_with_host_json(tmp_path, "{}")).overridable_existing_instance_states == (
        "NonRunningStates"
    )
    assert states("anystate") == "AnyState"  # .NET enum binding ignores case
    with pytest.raises(SettingsError, match="expected one of NonRunningStates, AnyState, got 'Always'"):
        states("Always")


# -- engine: generated sub-orchestration ids ----------------------------------------------------------


def test_sub_orchestration_without_id_is_named_after_the_parent_execution(tmp_path: Path) -> None:
    with running_engine("fidelity", tmp_path) as (engine, _, _m):
        pid = engine.start_new("parent_no_id", "parent-1", None)
        rec = engine.wait_for(pid, 10)
        history = engine.history(pid)
    execution_id = history[1]["OrchestrationInstance"]["ExecutionId"]
    assert json.loads(rec.output or "") == {"id": f"{execution_id}:0", "parent": "parent-1", "input": 5}
    assert history[2]["InstanceId"] == f"{execution_id}:0"


def test_each_retry_of_a_sub_orchestration_without_id_gets_a_new_id(tmp_path: Path) -> None:
    with running_engine("fidelity", tmp_path, virtual_clock=True) as (engine, _, _m):
        pid = engine.start_new("parent_retry_no_id", None, None)
        rec = engine.wait_for(pid, 10)
        history = engine.history(pid)
        first = engine.get_instance(history[2]["InstanceId"])
    execution_id = history[1]["OrchestrationInstance"]["ExecutionId"]
    created = [e for e in history if e["EventType"] == 7]
    # DTFx's RetryInterceptor makes each attempt a new call with a new task id (0, then 2 after timer 1)
    assert [e["InstanceId"] for e in created] == [f"{execution_id}:0", f"{execution_id}:2"]
    assert json.loads(rec.output or "") == f"{execution_id}:2"
    assert first is not None and first.runtime_status == "Failed"


def test_disabled_functions_stay_indexed_but_get_no_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureWebJobs.off_http.Disabled", "TRUE")
    monkeypatch.setenv("AzureWebJobs.on_http.Disabled", "false")
    monkeypatch.setenv("AzureWebJobs.off_activity.Disabled", "1")
    index = load_app(APPS / "fidelity")
    http = {f.name for f in index.by_trigger("httpTrigger")}
    assert "off_http" not in http and {"on_http", "start"} <= http
    assert index.functions["off_http"].disabled and not index.functions["on_http"].disabled
    assert index.activities["off_activity"].disabled  # still known by name, as the extension knows it


# -- status history conversion (pure) -----------------------------------------------------------------


def test_convert_history_keeps_a_waiting_task_and_drops_timer_ids() -> None:
    events = [
        {"EventType": 12, "EventId": -1, "IsPlayed": True, "Timestamp": "t0"},
        {
            "EventType": 4,
            "EventId": 0,
            "IsPlayed": True,
            "Timestamp": "t0",
            "Name": "a",
            "Version": "",
            "Input": "1",
        },
        {"EventType": 10, "EventId": 1, "IsPlayed": True, "Timestamp": "t0", "FireAt": "t9"},
        {"EventType": 11, "EventId": -1, "IsPlayed": False, "Timestamp": "t9", "TimerId": 1, "FireAt": "t9"},
    ]
    out = convert_history(events, show_input=True, show_output=False)
    assert out == [
        {"EventType": "TaskScheduled", "Timestamp": "t0", "Name": "a", "Input": "1"},
        {"EventType": "TimerCreated", "Timestamp": "t0", "FireAt": "t9"},
        {"EventType": "TimerFired", "Timestamp": "t9", "FireAt": "t9"},
    ]


# -- the HTTP surface of a running devhost ------------------------------------------------------------


@pytest.fixture(scope="module")
def fid(tmp_path_factory: pytest.TempPathFactory):
    with running_devhost(APPS / "fidelity", tmp_path_factory.mktemp("fid") / ".devhost") as proc:
        yield proc


def _start(dh: DevhostProcess, name: str, instance_id: str | None = None, body: Any = None) -> dict[str, Any]:
    path = f"api/start/{name}" + (f"/{instance_id}" if instance_id else "")
    r = requests.post(dh.url(path), json=body, timeout=30)
    assert r.status_code == 202, r.text
    return dict(r.json())


def _status(dh: DevhostProcess, instance_id: str, query: str = "") -> requests.Response:
    return requests.get(dh.url(f"{HOOKS}/instances/{instance_id}{query}"), timeout=10)


def _wait(dh: DevhostProcess, instance_id: str, wanted: set[str], timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = _status(dh, instance_id)
        if r.status_code in (200, 202) and r.json()["runtimeStatus"] in wanted:
            return dict(r.json())
        assert time.monotonic() < deadline, f"{instance_id} did not reach {wanted}: {r.status_code} {r.text}"
        time.sleep(0.05)


def test_disabled_http_function_answers_404(fid: DevhostProcess) -> None:
    assert requests.get(fid.url("api/on"), timeout=10).text == "on"
    assert requests.get(fid.url("api/off"), timeout=10).status_code == 404


def test_disabled_activity_does_not_run_and_its_task_fails(fid: DevhostProcess) -> None:
    _start(fid, "calls_disabled", "dis-1")
    done = _wait(fid, "dis-1", {"Completed", "Failed"})
    assert done["runtimeStatus"] == "Completed"
    caught = done["output"]["caught"]
    assert caught.startswith(
        "Activity function 'off_activity' failed: The function 'off_activity' is disabled"
    )
    assert "AzureWebJobs.off_activity.Disabled" in caught and "ran" not in caught


def test_disabled_orchestrator_is_accepted_then_fails(fid: DevhostProcess) -> None:
    _start(fid, "off_orch", "dis-orch")
    done = _wait(fid, "dis-orch", {"Completed", "Failed"})
    assert done["runtimeStatus"] == "Failed"
    assert (
        "The function 'off_orch' doesn't exist, is disabled, or is not an orchestrator function"
        in done["output"]
    )


def test_task_hub_comes_from_the_setting_and_the_task_hub_parameter_is_honoured(fid: DevhostProcess) -> None:
    payload = _start(fid, "greet", "hub-1")
    assert "taskHub=FidelityHub&" in payload["statusQueryGetUri"]
    _wait(fid, "hub-1", {"Completed"})
    assert _status(fid, "hub-1", "?taskHub=fidelityhub").status_code == 200  # hub names ignore case
    assert _status(fid, "hub-1", "?taskHub=OtherHub").status_code == 404
    listed = requests.get(fid.url(f"{HOOKS}/instances?taskHub=OtherHub"), timeout=10)
    assert listed.status_code == 200 and listed.json() == []
    assert requests.get(fid.url(f"{HOOKS}/instances"), timeout=10).json() != []
    r = requests.post(fid.url(f"{HOOKS}/orchestrators/greet?taskHub=OtherHub"), json=None, timeout=10)
    assert r.status_code == 400 and "Task hub 'OtherHub' is not served here" in r.json()["Message"]
    ev = requests.post(fid.url(f"{HOOKS}/instances/hub-1/raiseEvent/x?taskHub=OtherHub"), json=1, timeout=10)
    assert ev.status_code == 404


def test_any_state_lets_a_start_replace_a_running_instance(fid: DevhostProcess) -> None:
    _start(fid, "waits", "again-1", {"run": 1})
    _wait(fid, "again-1", {"Running"})
    _start(fid, "waits", "again-1", {"run": 2})  # 202, not 409: overridableExistingInstanceStates AnyState
    r = requests.post(fid.url(f"{HOOKS}/instances/again-1/raiseEvent/go"), json=True, timeout=10)
    assert r.status_code == 202
    done = _wait(fid, "again-1", {"Completed", "Failed"})
    assert done["runtimeStatus"] == "Completed" and done["output"] == {"run": 2}
    history = _status(fid, "again-1", "?showHistory=true").json()["historyEvents"]
    assert [h["EventType"] for h in history].count("ExecutionStarted") == 1


def test_status_history_is_shaped_like_the_extensions(fid: DevhostProcess) -> None:
    _start(fid, "greet", "shape-1")
    _wait(fid, "shape-1", {"Completed"})
    assert "historyEvents" not in _status(fid, "shape-1").json()
    events = _status(fid, "shape-1", "?showHistory=true").json()["historyEvents"]
    assert [e["EventType"] for e in events] == ["ExecutionStarted", "TaskCompleted", "ExecutionCompleted"]
    started, completed, finished = events
    assert set(started) == {"EventType", "Timestamp", "Input", "FunctionName"}
    assert started["FunctionName"] == "greet"
    assert set(completed) == {"EventType", "Timestamp", "ScheduledTime", "FunctionName", "Input"}
    assert (completed["FunctionName"], completed["Input"]) == ("hello_act", '"Tokyo"')
    assert "Result" not in finished and finished["OrchestrationStatus"] == "Completed"

    with_output = _status(fid, "shape-1", "?showHistory=true&showHistoryOutput=true").json()["historyEvents"]
    assert with_output[1]["Result"] == "Hello Tokyo" and with_output[2]["Result"] == ["Hello Tokyo"]
    no_input = _status(fid, "shape-1", "?showHistory=true&showInput=false").json()
    assert no_input["input"] is None and all("Input" not in e for e in no_input["historyEvents"])


def test_activity_failure_as_the_orchestrator_and_the_status_show_it(fid: DevhostProcess) -> None:
    _start(fid, "fails_in_activity", "boom-1")
    done = _wait(fid, "boom-1", {"Completed", "Failed"})
    assert done["runtimeStatus"] == "Failed"
    assert done["output"].startswith(
        "Orchestrator function 'fails_in_activity' failed: Activity function 'explode' failed:  "
        "ValueError: kaboom (uncaught)"
    )
    caught = done["customStatus"]
    reason, _, details_text = caught.partition(" \n ")
    assert reason == "Activity function 'explode' failed:  ValueError: kaboom (caught)"
    details = json.loads(details_text)
    assert details["Message"] == " ValueError: kaboom (caught)"
    stack = details["InnerException"]["RemoteStackTrace"]
    assert "in explode" in stack and 'raise ValueError(f"kaboom ({what})")' in stack
    assert DEVHOST_DIR not in stack  # no devhost frames, only the app's
    events = _status(fid, "boom-1", "?showHistory=true").json()["historyEvents"]
    failed = [e for e in events if e["EventType"] == "TaskFailed"]
    assert [e["Reason"] for e in failed] == [
        "Activity function 'explode' failed:  ValueError: kaboom (caught)",
        "Activity function 'explode' failed:  ValueError: kaboom (uncaught)",
    ]
    assert all(e["FunctionName"] == "explode" and "TaskScheduledId" not in e for e in failed)
    assert all(DEVHOST_DIR not in e["Details"] for e in failed)
