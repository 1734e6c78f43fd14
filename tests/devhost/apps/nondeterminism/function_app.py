"""Sample app: an orchestrator whose code changes between episodes (non-determinism)."""

import threading

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# The test flips MODE while the first activity runs, as a deployment would change the code.
MODE = {"first": "step_a"}
GATE = threading.Event()


@app.orchestration_trigger(context_name="context")
def changing(context: df.DurableOrchestrationContext):
    yield context.call_activity(MODE["first"], None)
    yield context.call_activity("step_b", None)
    return "done"


@app.activity_trigger(input_name="unused")
def step_a(unused: None) -> str:
    if not GATE.wait(20):
        raise TimeoutError("the test never opened the gate")
    return "a"


@app.activity_trigger(input_name="unused")
def step_b(unused: None) -> str:
    return "b"
