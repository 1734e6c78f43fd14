"""Sample app: an approval that races a 2-day timer, and an activity that waits with time.sleep."""

import time
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    deadline = context.create_timer(context.current_utc_datetime + timedelta(days=2))
    approved = context.wait_for_external_event("approve")
    winner = yield context.task_any([approved, deadline])
    if winner == approved:
        deadline.cancel()
        return {"result": "approved", "by": approved.result}
    return {"result": "timed out"}


@app.orchestration_trigger(context_name="context")
def sleepy(context: df.DurableOrchestrationContext):
    started = context.current_utc_datetime
    slept = yield context.call_activity("nap_in_activity", 600)
    ended = context.current_utc_datetime
    return {"slept": slept, "virtualSeconds": (ended - started).total_seconds()}


@app.activity_trigger(input_name="seconds")
def nap_in_activity(seconds: int) -> float:
    # What the Azure SDK does between LRO polls: on a virtual clock this passes in virtual time.
    t0 = time.monotonic()
    for _ in range(seconds // 60):
        time.sleep(60)
    return round(time.monotonic() - t0, 3)


@app.orchestration_trigger(context_name="context")
def sleepy_thread(context: df.DurableOrchestrationContext):
    started = context.current_utc_datetime
    yield context.call_activity("nap_in_a_thread", 300)
    return (context.current_utc_datetime - started).total_seconds()


@app.activity_trigger(input_name="seconds")
def nap_in_a_thread(seconds: int) -> str:
    # What LROPoller.result() does: the wait happens in a thread the activity starts and joins.
    import threading

    t = threading.Thread(target=time.sleep, args=(seconds,))
    t.start()
    t.join(10)
    return "alive" if t.is_alive() else "done"
