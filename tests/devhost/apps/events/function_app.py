"""Sample app: external events awaited after they arrive (buffered) and before."""

import threading
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

GATE = threading.Event()


@app.orchestration_trigger(context_name="context")
def wait_two(context: df.DurableOrchestrationContext):
    # The "gate" activity holds the orchestrator so that a test can raise "First" before it waits.
    yield context.call_activity("gate", None)
    first = yield context.wait_for_external_event("First")
    second = yield context.wait_for_external_event("Second")
    return {"first": first, "second": second}


@app.activity_trigger(input_name="unused")
def gate(unused: None) -> str:
    if not GATE.wait(20):
        raise TimeoutError("the test never opened the gate")
    return "open"


@app.orchestration_trigger(context_name="context")
def nap(context: df.DurableOrchestrationContext):
    yield context.create_timer(context.current_utc_datetime + timedelta(hours=1))
    return "rested"
