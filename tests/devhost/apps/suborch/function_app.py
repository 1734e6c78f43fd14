"""Sample app: sub-orchestrations: explicit and generated ids, failure, retry."""

from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

CHILD_RUNS: dict[str, int] = {}


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    a = yield context.call_sub_orchestrator("child", {"n": 1}, "child-explicit")
    b = yield context.call_sub_orchestrator("child", {"n": 2})
    try:
        yield context.call_sub_orchestrator("child", {"n": -1})
        failed = None
    except Exception as exc:
        failed = str(exc)
    return {"a": a, "b": b, "failed": failed}


@app.orchestration_trigger(context_name="context")
def parent_retry(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=3)
    result = yield context.call_sub_orchestrator_with_retry("flaky_child", options, "k1", "flaky-child-1")
    return result


@app.orchestration_trigger(context_name="context")
def child(context: df.DurableOrchestrationContext):
    data = context.get_input()
    if data["n"] < 0:
        raise ValueError("negative input")
    doubled = yield context.call_activity("double", data["n"])
    return {"child": context.instance_id, "parent": context.parent_instance_id, "doubled": doubled}


@app.orchestration_trigger(context_name="context")
def flaky_child(context: df.DurableOrchestrationContext):
    key = context.get_input()
    # Count distinct executions, not replays: the activity runs once per child execution.
    runs = yield context.call_activity("count_run", key)
    if runs < 2:
        raise RuntimeError(f"child run {runs} failed")
    return f"child ok on run {runs}"


@app.activity_trigger(input_name="n")
def double(n: int) -> int:
    return 2 * n


@app.activity_trigger(input_name="key")
def count_run(key: str) -> int:
    CHILD_RUNS[key] = CHILD_RUNS.get(key, 0) + 1
    return CHILD_RUNS[key]


@app.orchestration_trigger(context_name="context")
def parent_of_sleeper(context: df.DurableOrchestrationContext):
    return (yield context.call_sub_orchestrator("sleeper", None, "sleeper-1"))


@app.orchestration_trigger(context_name="context")
def sleeper(context: df.DurableOrchestrationContext):
    yield context.create_timer(context.current_utc_datetime + timedelta(hours=1))
    return "woke"
