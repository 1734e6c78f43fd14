"""Conformance of devhost's durable engine: exact histories, results and context JSON per action type.

Each test runs a small sample app from tests/devhost/apps/ through the real SDK.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from devhost.api import InstanceExists, InstanceNotFound, InstanceNotRunning, InstanceQuery
from devhost.functions import FunctionNotFound
from tests.devhost.engine_support import capture_contexts, running_engine, summary, wait_until

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
TIMESPAN = re.compile(r"^-?(\d+\.)?\d\d:\d\d:\d\d(\.\d{7})?$")


def test_chaining_history_results_and_context_json(tmp_path: Path) -> None:
    with running_engine("chaining", tmp_path) as (engine, index, _):
        contexts = capture_contexts(index, "chain")
        iid = engine.start_new("chain", "chain-1", json.dumps(["Tokyo", "Seattle"]))
        rec = engine.wait_for(iid, 10)
        assert rec.runtime_status == "Completed"
        assert json.loads(rec.output or "") == {
            "greetings": ["Hello Tokyo", "Hello Seattle"],
            "renamed": {"got": {"n": 2}},
        }
        assert rec.input == '["Tokyo", "Seattle"]'
        history = engine.history(iid)
    assert summary(history) == [
        "OrchestratorStarted", "ExecutionStarted", "TaskScheduled#0:hello", "OrchestratorCompleted",
        "OrchestratorStarted", "TaskCompleted->0", "TaskScheduled#1:hello", "OrchestratorCompleted",
        "OrchestratorStarted", "TaskCompleted->1", "TaskScheduled#2:RenamedActivity", "OrchestratorCompleted",
        "OrchestratorStarted", "TaskCompleted->2", "ExecutionCompleted:Completed", "OrchestratorCompleted",
    ]  # fmt: skip
    assert history[2]["Input"] == '"Tokyo"'
    assert history[5]["Result"] == '"Hello Tokyo"'
    assert history[13]["Result"] == '{"got": {"n": 2}}'

    # One context per episode, shaped as the extension builds it (reference §1.2, §2).
    assert len(contexts) == 4
    first = json.loads(contexts[0])
    assert set(first) == {
        "history", "input", "instanceId", "isReplaying", "parentInstanceId", "upperSchemaVersion",
        "upperSchemaVersionNew", "maximumShortTimerDuration", "longRunningTimerIntervalDuration",
        "defaultHttpAsyncRequestSleepTimeMillseconds",
    }  # fmt: skip
    assert first["upperSchemaVersion"] == 1 and first["upperSchemaVersionNew"] == 2
    assert TIMESPAN.match(first["maximumShortTimerDuration"]) and TIMESPAN.match(
        first["longRunningTimerIntervalDuration"]
    )
    assert first["input"] == '["Tokyo", "Seattle"]'  # JSON text in a string
    assert first["instanceId"] == "chain-1" and first["parentInstanceId"] is None
    assert first["isReplaying"] is False
    assert [e["EventType"] for e in first["history"]] == [12, 0]
    started = first["history"][1]
    assert started["Version"] == "" and started["Name"] == "chain"
    assert started["OrchestrationInstance"]["InstanceId"] == "chain-1"
    last = json.loads(contexts[-1])
    assert last["isReplaying"] is True
    for ctx in (first, last):
        for ev in ctx["history"]:
            assert {"EventType", "EventId", "IsPlayed", "Timestamp"} <= set(ev)
            assert TS.match(ev["Timestamp"]), ev["Timestamp"]
    # Past episodes are played; the new OrchestratorStarted and the one new event are not.
    assert [e["IsPlayed"] for e in last["history"]] == [True] * 12 + [False, False]
    assert [e["EventType"] for e in last["history"][-2:]] == [12, 5]
    # Persisted past events keep their timestamps unchanged across episodes (determinism).
    assert [e["Timestamp"] for e in last["history"][:12]] == [e["Timestamp"] for e in history[:12]]


def test_fan_out_fan_in_and_activity_concurrency_limit(tmp_path: Path) -> None:
    with running_engine("fanout", tmp_path, max_concurrent_activities=3) as (engine, _, module):
        iid = engine.start_new("fan", None, "12")
        rec = engine.wait_for(iid, 20)
        history = engine.history(iid)
        peak = module.PROBE["peak"]
    assert rec.runtime_status == "Completed"
    assert json.loads(rec.output or "") == sum(i * i for i in range(12))
    s = summary(history)
    assert s[:2] == ["OrchestratorStarted", "ExecutionStarted"]
    assert s[2:14] == [f"TaskScheduled#{i}:square" for i in range(12)]
    # One completion per episode, in whatever order the parallel activities finished.
    completions = [x for x in s if x.startswith("TaskCompleted")]
    assert sorted(completions[:12]) == sorted(f"TaskCompleted->{i}" for i in range(12))
    assert s[-6:] == [
        "TaskScheduled#12:add", "OrchestratorCompleted",
        "OrchestratorStarted", "TaskCompleted->12", "ExecutionCompleted:Completed", "OrchestratorCompleted",
    ]  # fmt: skip
    assert s.count("OrchestratorStarted") == 14
    assert 2 <= peak <= 3


def test_task_any_activity_beats_timer(tmp_path: Path) -> None:
    with running_engine("task_any", tmp_path) as (engine, _, _m):
        iid = engine.start_new("race", None, None)
        rec = engine.wait_for(iid, 10)
        history = engine.history(iid)
    assert json.loads(rec.output or "") == {"winner": "activity", "result": "X"}
    assert summary(history) == [
        "OrchestratorStarted", "ExecutionStarted", "TaskScheduled#0:quick", "TimerCreated#1", "OrchestratorCompleted",
        "OrchestratorStarted", "TaskCompleted->0", "ExecutionCompleted:Completed", "OrchestratorCompleted",
    ]  # fmt: skip


def test_task_any_event_vs_timeout(tmp_path: Path) -> None:
    with running_engine("task_any", tmp_path / "real") as (engine, _, _m):
        approved = engine.start_new("approval", "approved", None)
        wait_until(lambda: len(engine.history(approved)) == 4, what="the approval wait")
        engine.raise_event(approved, "Approve", '{"by": "ops"}')
        rec = engine.wait_for(approved, 10)
        assert json.loads(rec.output or "") == {"approved": {"by": "ops"}}
        assert summary(engine.history(approved)) == [
            "OrchestratorStarted", "ExecutionStarted", "TimerCreated#0", "OrchestratorCompleted",
            "OrchestratorStarted", "EventRaised:Approve", "ExecutionCompleted:Completed", "OrchestratorCompleted",
        ]  # fmt: skip

    # With the virtual clock nothing else is runnable, so time jumps straight to the timeout.
    with running_engine("task_any", tmp_path / "virtual", virtual_clock=True) as (engine, _, _m):
        timed_out = engine.start_new("approval", "timed-out", None)
        rec = engine.wait_for(timed_out, 10)  # the virtual clock jumps 30 minutes
        assert json.loads(rec.output or "") == {"approved": None, "timed_out": True}
        history = engine.history(timed_out)
        assert summary(history)[4:] == [
            "OrchestratorStarted", "TimerFired->0", "ExecutionCompleted:Completed", "OrchestratorCompleted",
        ]  # fmt: skip
        assert history[5]["FireAt"] == history[2]["FireAt"]


def test_retry_succeeds_after_failures(tmp_path: Path) -> None:
    cfg = {"key": "ok", "fail_times": 2, "max": 3, "interval_ms": 1000}
    with running_engine("retries", tmp_path, virtual_clock=True) as (engine, _, module):
        iid = engine.start_new("retry_orch", None, json.dumps(cfg))
        rec = engine.wait_for(iid, 10)
        history = engine.history(iid)
        attempts = module.ATTEMPTS["ok"]
    assert json.loads(rec.output or "") == {"result": "ok after 3 attempts"}
    assert attempts == 3
    assert summary(history) == [
        "OrchestratorStarted", "ExecutionStarted", "TaskScheduled#0:flaky", "OrchestratorCompleted",
        "OrchestratorStarted", "TaskFailed->0", "TimerCreated#1", "OrchestratorCompleted",
        "OrchestratorStarted", "TimerFired->1", "TaskScheduled#2:flaky", "OrchestratorCompleted",
        "OrchestratorStarted", "TaskFailed->2", "TimerCreated#3", "OrchestratorCompleted",
        "OrchestratorStarted", "TimerFired->3", "TaskScheduled#4:flaky", "OrchestratorCompleted",
        "OrchestratorStarted", "TaskCompleted->4", "ExecutionCompleted:Completed", "OrchestratorCompleted",
    ]  # fmt: skip
    # The extension's friendly message keeps the space that follows "Exception:" in the RpcException text.
    assert history[5]["Reason"] == "Activity function 'flaky' failed:  ValueError: attempt 1 failed"
    # The retry timer fires firstRetryInterval after the episode that saw the failure.
    from devhost.engine.history import parse_time

    assert parse_time(history[6]["FireAt"]) - parse_time(history[4]["Timestamp"]) == pytest.approx(
        1.0, abs=1e-3
    )


def test_retry_exhausts_attempts(tmp_path: Path) -> None:
    with running_engine("retries", tmp_path, virtual_clock=True) as (engine, _, module):
        cfg = {"key": "caught", "fail_times": 9, "max": 2, "interval_ms": 500, "catch": True}
        caught = engine.start_new("retry_orch", None, json.dumps(cfg))
        cfg2 = {"key": "uncaught", "fail_times": 9, "max": 2, "interval_ms": 500}
        uncaught = engine.start_new("retry_orch", None, json.dumps(cfg2))
        rec = engine.wait_for(caught, 10)
        rec2 = engine.wait_for(uncaught, 10)
        history = engine.history(caught)
        attempts = dict(module.ATTEMPTS)
    assert attempts == {"caught": 2, "uncaught": 2}
    # After the last failed attempt the host still runs a retry timer; the SDK raises after it fires.
    assert summary(history) == [
        "OrchestratorStarted", "ExecutionStarted", "TaskScheduled#0:flaky", "OrchestratorCompleted",
        "OrchestratorStarted", "TaskFailed->0", "TimerCreated#1", "OrchestratorCompleted",
        "OrchestratorStarted", "TimerFired->1", "TaskScheduled#2:flaky", "OrchestratorCompleted",
        "OrchestratorStarted", "TaskFailed->2", "TimerCreated#3", "OrchestratorCompleted",
        "OrchestratorStarted", "TimerFired->3", "ExecutionCompleted:Completed", "OrchestratorCompleted",
    ]  # fmt: skip
    caught_msg = json.loads(rec.output or "")["caught"]
    assert caught_msg.startswith("Activity function 'flaky' failed:  ValueError: attempt 2 failed \n {")
    assert "in flaky" in caught_msg  # Details: the serialized exception with the activity's frames
    assert rec2.runtime_status == "Failed"
    assert json.loads(rec2.output or "").startswith(
        "Orchestrator function 'retry_orch' failed: Activity function 'flaky' failed:  ValueError: attempt 2 failed"
    )


def test_sub_orchestrations_ids_results_and_failure(tmp_path: Path) -> None:
    with running_engine("suborch", tmp_path) as (engine, _, _m):
        contexts = capture_contexts(_, "child")
        pid = engine.start_new("parent", "p1", None)
        rec = engine.wait_for(pid, 10)
        history = engine.history(pid)
        generated = history[6]["InstanceId"]
        child_rec = engine.get_instance("child-explicit", with_history=True)
        failed_child = engine.get_instance(history[10]["InstanceId"])
    out = json.loads(rec.output or "")
    assert out["a"] == {"child": "child-explicit", "parent": "p1", "doubled": 2}
    assert out["b"] == {"child": generated, "parent": "p1", "doubled": 4}
    assert out["failed"].startswith("Orchestrator function 'child' failed: negative input")
    assert summary(history) == [
        "OrchestratorStarted", "ExecutionStarted", "SubOrchestrationInstanceCreated#0:child", "OrchestratorCompleted",
        "OrchestratorStarted", "SubOrchestrationInstanceCompleted->0", "SubOrchestrationInstanceCreated#1:child",
        "OrchestratorCompleted",
        "OrchestratorStarted", "SubOrchestrationInstanceCompleted->1", "SubOrchestrationInstanceCreated#2:child",
        "OrchestratorCompleted",
        "OrchestratorStarted", "SubOrchestrationInstanceFailed->2", "ExecutionCompleted:Completed",
        "OrchestratorCompleted",
    ]  # fmt: skip
    assert history[2]["InstanceId"] == "child-explicit" and history[2]["Input"] == '{"n": 1}'
    # DTFx names a child started without an id "<parent execution id>:<task id>"
    assert generated == f"{history[1]['OrchestrationInstance']['ExecutionId']}:1"
    assert child_rec is not None and child_rec.runtime_status == "Completed"
    assert failed_child is not None and failed_child.runtime_status == "Failed"
    started = (child_rec.history or [])[1]
    assert started["ParentInstance"]["OrchestrationInstance"]["InstanceId"] == "p1"
    assert started["ParentInstance"]["TaskScheduleId"] == 0
    first_child_ctx = json.loads(contexts[0])
    assert first_child_ctx["parentInstanceId"] == "p1" and first_child_ctx["input"] == '{"n": 1}'


def test_sub_orchestration_with_retry(tmp_path: Path) -> None:
    with running_engine("suborch", tmp_path, virtual_clock=True) as (engine, _, module):
        pid = engine.start_new("parent_retry", None, None)
        rec = engine.wait_for(pid, 10)
        history = engine.history(pid)
        runs = module.CHILD_RUNS["k1"]
    assert json.loads(rec.output or "") == "child ok on run 2"
    assert runs == 2
    assert summary(history) == [
        "OrchestratorStarted", "ExecutionStarted", "SubOrchestrationInstanceCreated#0:flaky_child",
        "OrchestratorCompleted",
        "OrchestratorStarted", "SubOrchestrationInstanceFailed->0", "TimerCreated#1", "OrchestratorCompleted",
        "OrchestratorStarted", "TimerFired->1", "SubOrchestrationInstanceCreated#2:flaky_child",
        "OrchestratorCompleted",
        "OrchestratorStarted", "SubOrchestrationInstanceCompleted->2", "ExecutionCompleted:Completed",
        "OrchestratorCompleted",
    ]  # fmt: skip
    assert history[2]["InstanceId"] == history[10]["InstanceId"] == "flaky-child-1"
    assert history[5]["Reason"].startswith("Orchestrator function 'flaky_child' failed: child run 1 failed")


def test_external_events_before_and_after_waiting(tmp_path: Path) -> None:
    with running_engine("events", tmp_path) as (engine, _, module):
        iid = engine.start_new("wait_two", None, None)
        wait_until(lambda: len(engine.history(iid)) == 4, what="the gate activity to be scheduled")
        engine.raise_event(iid, "First", '{"ok": true}')  # arrives while the orchestrator waits on "gate"
        wait_until(lambda: len(engine.history(iid)) == 7, what="the buffered event's episode")
        module.GATE.set()
        wait_until(lambda: len(engine.history(iid)) == 10, what="the gate completion")
        engine.raise_event(iid, "Second", '"two"')  # arrives after the orchestrator waits for it
        rec = engine.wait_for(iid, 10)
        history = engine.history(iid)
    assert json.loads(rec.output or "") == {"first": {"ok": True}, "second": "two"}
    assert summary(history) == [
        "OrchestratorStarted", "ExecutionStarted", "TaskScheduled#0:gate", "OrchestratorCompleted",
        "OrchestratorStarted", "EventRaised:First", "OrchestratorCompleted",
        "OrchestratorStarted", "TaskCompleted->0", "OrchestratorCompleted",
        "OrchestratorStarted", "EventRaised:Second", "ExecutionCompleted:Completed", "OrchestratorCompleted",
    ]  # fmt: skip
    assert history[5]["Input"] == '{"ok": true}'


def test_continue_as_new_fresh_execution_same_instance(tmp_path: Path) -> None:
    with running_engine("continue_as_new", tmp_path) as (engine, _, _m):
        iid = engine.start_new("counter", "eternal", json.dumps({"n": 0, "limit": 3}))
        rec = engine.wait_for(iid, 10)
        history = engine.history(iid)
        execs = engine.store.read("SELECT DISTINCT execution_id FROM history WHERE instance_id=?", (iid,))
        previous = [e[0] for e in execs if e[0] != history[1]["OrchestrationInstance"]["ExecutionId"]]
        prev_history = [json.loads(t) for t in engine.store.history_texts(iid, previous[0])]
    assert json.loads(rec.output or "") == {"n": 3}
    assert rec.custom_status == '{"first_execution": true}'  # kept across executions
    # The final execution starts over: its own ExecutionStarted with the carried input, ids from 0.
    assert summary(history) == [
        "OrchestratorStarted", "ExecutionStarted", "TaskScheduled#0:inc", "OrchestratorCompleted",
        "OrchestratorStarted", "TaskCompleted->0", "ExecutionCompleted:Completed", "OrchestratorCompleted",
    ]  # fmt: skip
    assert history[1]["Input"] == '{"n": 2, "limit": 3}'
    assert rec.input == '{"n": 2, "limit": 3}'
    # Only the previous execution's history is kept beside the current one.
    assert len(previous) == 1
    assert summary(prev_history)[-3:] == ["TaskCompleted->0", "ContinueAsNew", "OrchestratorCompleted"]
    assert prev_history[-2]["Result"] == '{"n": 2, "limit": 3}'


def test_custom_status_only_replaced_when_sent(tmp_path: Path) -> None:
    with running_engine("custom_status", tmp_path) as (engine, _, module):
        iid = engine.start_new("staged", None, None)
        wait_until(lambda: len(engine.history(iid)) == 4, what="the first episode")
        assert (engine.get_instance(iid) or pytest.fail()).custom_status == '{"stage": 1}'
        module.GATES["step1"].set()
        wait_until(lambda: len(engine.history(iid)) == 8, what="the second episode")
        assert (engine.get_instance(iid) or pytest.fail()).custom_status == '{"stage": 1}'
        module.GATES["step2"].set()
        rec = engine.wait_for(iid, 10)
    assert rec.custom_status == '"done"'
    assert rec.output == '"finished"'


def test_failure_reasons_and_details(tmp_path: Path) -> None:
    with running_engine("failures", tmp_path) as (engine, _, _m):
        ids = {
            name: engine.start_new(name, None, None)
            for name in ("raises", "activity_fails", "catches", "bad_output")
        }
        recs = {name: engine.wait_for(iid, 10) for name, iid in ids.items()}
        raised_history = engine.history(ids["raises"])
    assert recs["raises"].runtime_status == "Failed"
    assert (
        json.loads(recs["raises"].output or "")
        == "Orchestrator function 'raises' failed: orchestrator gave up"
    )
    assert summary(raised_history)[-3:] == [
        "TaskCompleted->0",
        "ExecutionCompleted:Failed",
        "OrchestratorCompleted",
    ]
    assert raised_history[-2]["FailureDetails"]["ErrorMessage"] == "orchestrator gave up"

    assert recs["activity_fails"].runtime_status == "Failed"
    assert json.loads(recs["activity_fails"].output or "").startswith(
        "Orchestrator function 'activity_fails' failed: Activity function 'boom' failed:  OSError: disk exploded \n "
    )
    caught = json.loads(recs["catches"].output or "")["caught"]
    assert caught.startswith("Activity function 'boom' failed:  OSError: net exploded \n {")
    assert recs["catches"].runtime_status == "Completed"

    assert recs["bad_output"].runtime_status == "Failed"
    assert "Object of type Point is not JSON serializable" in json.loads(recs["bad_output"].output or "")


def test_unknown_functions_fail_clearly(tmp_path: Path) -> None:
    with running_engine("chaining", tmp_path) as (engine, _, _m):
        with pytest.raises(FunctionNotFound, match="no_such_orchestrator"):
            engine.start_new("no_such_orchestrator", None, None)
        iid = engine.start_new("calls_unknown", None, None)
        rec = engine.wait_for(iid, 10)
    assert rec.runtime_status == "Failed"
    assert "The activity function 'no_such_activity' doesn't exist" in (rec.output or "")
    assert "registered activities: ['RenamedActivity', 'hello']" in (rec.output or "")


def test_non_determinism_fails_instance_with_clear_message(tmp_path: Path) -> None:
    with running_engine("nondeterminism", tmp_path) as (engine, _, module):
        iid = engine.start_new("changing", None, None)
        wait_until(lambda: len(engine.history(iid)) == 4, what="step_a to be scheduled")
        module.MODE["first"] = "step_b"  # the "new deployment" schedules a different activity first
        module.GATE.set()
        rec = engine.wait_for(iid, 10)
    assert rec.runtime_status == "Failed"
    message = json.loads(rec.output or "")
    assert "Non-deterministic workflow detected" in message
    assert "recorded TaskScheduled of activity 'step_a' (id 0) as step 1" in message
    assert "now schedules CallActivity 'step_b'" in message


def test_management_operations(tmp_path: Path) -> None:
    with running_engine("task_any", tmp_path) as (engine, _, _m):
        iid = engine.start_new("approval", "waiting", None)
        wait_until(lambda: len(engine.history(iid)) == 4, what="the approval wait")
        with pytest.raises(InstanceExists):
            engine.start_new("approval", "waiting", None)
        with pytest.raises(InstanceNotFound):
            engine.raise_event("nope", "Approve", None)
        assert engine.purge("waiting") == 0  # never purges a running instance
        engine.terminate(iid, "no longer needed")
        rec = engine.wait_for(iid, 10)
        assert rec.runtime_status == "Terminated"
        assert rec.output == '"no longer needed"'
        assert summary(engine.history(iid))[-3:] == [
            "OrchestratorStarted", "ExecutionTerminated", "OrchestratorCompleted",
        ]  # fmt: skip
        with pytest.raises(InstanceNotRunning):
            engine.raise_event(iid, "Approve", None)
        with pytest.raises(InstanceNotRunning):
            engine.terminate(iid, "again")

        done = engine.start_new("race", "race-1", None)
        engine.wait_for(done, 10)
        assert [r.instance_id for r in engine.query(InstanceQuery(runtime_status=["Completed"]))] == [
            "race-1"
        ]
        assert [r.instance_id for r in engine.query(InstanceQuery(instance_id_prefix="wait"))] == ["waiting"]
        assert len(engine.query(InstanceQuery(top=1))) == 1
        assert engine.purge("race-1") == 1
        assert engine.get_instance("race-1") is None
        assert engine.purge_many(InstanceQuery()) == 1  # the terminated one
        assert engine.query(InstanceQuery()) == []
        # A finished instance id can be reused.
        again = engine.start_new("race", "race-1", None)
        assert engine.wait_for(again, 10).runtime_status == "Completed"


def test_continue_as_new_carries_undelivered_events(tmp_path: Path) -> None:
    with running_engine("continue_as_new", tmp_path) as (engine, _, _m):
        iid = engine.start_new("event_loop", None, "0")
        for n in (1, 2, 3):
            engine.raise_event(iid, "Tick", str(n))
        rec = engine.wait_for(iid, 10)
        history = engine.history(iid)
    # Each execution consumes one tick; the others move on to the next execution in order.
    assert json.loads(rec.output or "") == {"count": 3, "last": 3}
    assert summary(history) == [
        "OrchestratorStarted", "ExecutionStarted", "OrchestratorCompleted",
        "OrchestratorStarted", "EventRaised:Tick", "ExecutionCompleted:Completed", "OrchestratorCompleted",
    ]  # fmt: skip


def test_terminated_sub_orchestration_fails_the_parent_call(tmp_path: Path) -> None:
    with running_engine("suborch", tmp_path) as (engine, _, _m):
        pid = engine.start_new("parent_of_sleeper", None, None)
        wait_until(
            lambda: engine.get_instance("sleeper-1") and len(engine.history("sleeper-1")) == 4, what="child"
        )
        engine.terminate("sleeper-1", "stop")
        child = engine.wait_for("sleeper-1", 10)
        rec = engine.wait_for(pid, 10)
        history = engine.history(pid)
    assert child.runtime_status == "Terminated" and child.output == '"stop"'
    assert rec.runtime_status == "Failed"
    assert "Orchestrator function 'sleeper' was terminated: stop" in json.loads(rec.output or "")
    assert summary(history)[4:6] == ["OrchestratorStarted", "SubOrchestrationInstanceFailed->0"]
