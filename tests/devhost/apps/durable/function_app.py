"""Sample app for the durability test: activities that record each execution in files and can
block on a file-based signal, and a timer between activities."""

import os
import time
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def _dir() -> Path:
    return Path(os.environ["DEVHOST_TEST_DIR"])


@app.orchestration_trigger(context_name="context")
def blocking_flow(context: df.DurableOrchestrationContext):
    key = context.get_input()
    a = yield context.call_activity("work", {"key": f"{key}-a", "block": True})
    b = yield context.call_activity("work", {"key": f"{key}-b", "block": False})
    return [a, b]


@app.orchestration_trigger(context_name="context")
def timer_flow(context: df.DurableOrchestrationContext):
    key = context.get_input()
    a = yield context.call_activity("work", {"key": f"{key}-before", "block": False})
    yield context.create_timer(context.current_utc_datetime + timedelta(hours=1))
    b = yield context.call_activity("work", {"key": f"{key}-after", "block": False})
    return [a, b]


@app.activity_trigger(input_name="job")
def work(job: dict) -> str:
    d = _dir()
    with open(d / f"executions-{job['key']}.log", "a") as f:
        f.write("run\n")
    if job["block"]:
        (d / f"started-{job['key']}").touch()
        # Blocks until the test creates the release file (the kill happens meanwhile).
        deadline = time.monotonic() + 60
        while not (d / "release").exists():
            if time.monotonic() > deadline:
                raise TimeoutError("release file never appeared")
            time.sleep(0.02)
    return f"done {job['key']}"
