"""Sample app: custom status set across episodes, including falsy values the SDK never sends."""

import threading

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

GATES = {"step1": threading.Event(), "step2": threading.Event()}


@app.orchestration_trigger(context_name="context")
def staged(context: df.DurableOrchestrationContext):
    context.set_custom_status({"stage": 1})
    yield context.call_activity("wait_gate", "step1")
    context.set_custom_status(0)  # falsy: not sent, so the stored status stays {"stage": 1}
    yield context.call_activity("wait_gate", "step2")
    context.set_custom_status("done")
    return "finished"


@app.activity_trigger(input_name="name")
def wait_gate(name: str) -> str:
    if not GATES[name].wait(20):
        raise TimeoutError(f"gate {name} never opened")
    return name
