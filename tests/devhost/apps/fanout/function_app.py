"""Sample app: fan-out/fan-in with task_all, and parallel activities (for the concurrency limit)."""

import threading
import time

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# Concurrency probe: the tests read the peak number of activities running at once.
PROBE = {"running": 0, "peak": 0}
_lock = threading.Lock()


@app.orchestration_trigger(context_name="context")
def fan(context: df.DurableOrchestrationContext):
    n = context.get_input()
    tasks = [context.call_activity("square", i) for i in range(n)]
    squares = yield context.task_all(tasks)
    total = yield context.call_activity("add", squares)
    return total


@app.activity_trigger(input_name="n")
def square(n: int) -> int:
    with _lock:
        PROBE["running"] += 1
        PROBE["peak"] = max(PROBE["peak"], PROBE["running"])
    time.sleep(0.05)  # long enough for parallel executions to overlap
    with _lock:
        PROBE["running"] -= 1
    return n * n


@app.activity_trigger(input_name="values")
def add(values: list) -> int:
    return sum(values)
