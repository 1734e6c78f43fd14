"""Sample app: timer triggers. Each run appends one JSON line (function, past_due, schedule_status) to
the file named by the app setting TICKS_FILE, so a test can see which function ran and with what."""

import json
import os
from datetime import UTC, datetime

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def _record(name: str, timer: func.TimerRequest) -> None:
    line = {
        "function": name,
        "pastDue": timer.past_due,
        "scheduleStatus": timer.schedule_status,  # type: ignore[attr-defined]
        "at": datetime.now(UTC).isoformat(),
    }
    with open(os.environ["TICKS_FILE"], "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


@app.timer_trigger(schedule="%TICK_SCHEDULE%", arg_name="timer", use_monitor=True)
def every_second(timer: func.TimerRequest) -> None:
    _record("every_second", timer)


@app.timer_trigger(schedule="0 0 3 1 Jan *", arg_name="timer", run_on_startup=True, use_monitor=False)
def yearly(timer: func.TimerRequest) -> None:
    _record("yearly", timer)


@app.timer_trigger(schedule="%BROKEN_SCHEDULE%", arg_name="timer")
def broken(timer: func.TimerRequest) -> None:
    _record("broken", timer)


@app.route(route="hello")
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("hello")
