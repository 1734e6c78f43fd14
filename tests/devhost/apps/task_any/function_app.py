"""Sample app: task_any races (activity vs. long timer, event vs. timeout) and timer cancellation."""

from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def race(context: df.DurableOrchestrationContext):
    work = context.call_activity("quick", "x")
    timeout = context.create_timer(context.current_utc_datetime + timedelta(hours=1))
    winner = yield context.task_any([work, timeout])
    if winner == work:
        timeout.cancel()
        return {"winner": "activity", "result": work.result}
    return {"winner": "timer"}


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    event = context.wait_for_external_event("Approve")
    timeout = context.create_timer(context.current_utc_datetime + timedelta(minutes=30))
    winner = yield context.task_any([event, timeout])
    if winner == event:
        timeout.cancel()
        return {"approved": event.result}
    return {"approved": None, "timed_out": True}


@app.activity_trigger(input_name="value")
def quick(value: str) -> str:
    return value.upper()
