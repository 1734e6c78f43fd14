"""Sample app: timers: a short one, a 10-day one (split by the SDK), and a 12-hour polling loop."""

from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def short_timer(context: df.DurableOrchestrationContext):
    start = context.current_utc_datetime
    yield context.create_timer(start + timedelta(seconds=context.get_input()))
    return (context.current_utc_datetime - start).total_seconds()


@app.orchestration_trigger(context_name="context")
def long_timer(context: df.DurableOrchestrationContext):
    start = context.current_utc_datetime
    yield context.create_timer(start + timedelta(days=10))
    return (context.current_utc_datetime - start).total_seconds()


@app.orchestration_trigger(context_name="context")
def poller(context: df.DurableOrchestrationContext):
    """Polls every 5 minutes for 12 hours (144 timers), calling a status activity each time."""
    polls = 0
    deadline = context.current_utc_datetime + timedelta(hours=12)
    while context.current_utc_datetime < deadline:
        yield context.create_timer(context.current_utc_datetime + timedelta(minutes=5))
        polls += 1
        if polls % 48 == 0:
            yield context.call_activity("check", polls)
    return polls


@app.activity_trigger(input_name="n")
def check(n: int) -> int:
    return n
