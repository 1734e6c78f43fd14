"""Sample app: an eternal orchestration that continues as new until a counter reaches its limit."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def counter(context: df.DurableOrchestrationContext):
    state = context.get_input()
    n = yield context.call_activity("inc", state["n"])
    if state["n"] == 0:
        context.set_custom_status({"first_execution": True})
    if n < state["limit"]:
        context.continue_as_new({"n": n, "limit": state["limit"]})
        return None
    return {"n": n}


@app.activity_trigger(input_name="n")
def inc(n: int) -> int:
    return n + 1


@app.orchestration_trigger(context_name="context")
def event_loop(context: df.DurableOrchestrationContext):
    """Consumes one "Tick" per execution; ticks raised meanwhile wait for the next execution."""
    count = context.get_input()
    value = yield context.wait_for_external_event("Tick")
    if count + 1 < 3:
        context.continue_as_new(count + 1)
        return None
    return {"count": count + 1, "last": value}
