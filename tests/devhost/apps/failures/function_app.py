"""Sample app: failure paths: orchestrator raises, activity failure not caught, bad output."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


@app.orchestration_trigger(context_name="context")
def raises(context: df.DurableOrchestrationContext):
    yield context.call_activity("ok", 1)
    raise ValueError("orchestrator gave up")


@app.orchestration_trigger(context_name="context")
def activity_fails(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("boom", "disk"))


@app.orchestration_trigger(context_name="context")
def catches(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity("boom", "net")
    except Exception as exc:
        return {"caught": str(exc)}
    return None


@app.orchestration_trigger(context_name="context")
def bad_output(context: df.DurableOrchestrationContext):
    yield context.call_activity("ok", 1)
    return Point(1)


@app.activity_trigger(input_name="x")
def ok(x: int) -> int:
    return x


@app.activity_trigger(input_name="what")
def boom(what: str) -> str:
    raise OSError(f"{what} exploded")
