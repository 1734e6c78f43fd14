"""Sample app: activities with retry (succeeds after N failures, exhausts its attempts)."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

ATTEMPTS: dict[str, int] = {}


@app.orchestration_trigger(context_name="context")
def retry_orch(context: df.DurableOrchestrationContext):
    cfg = context.get_input()
    options = df.RetryOptions(
        first_retry_interval_in_milliseconds=cfg["interval_ms"], max_number_of_attempts=cfg["max"]
    )
    try:
        result = yield context.call_activity_with_retry("flaky", options, cfg)
    except Exception as exc:
        if cfg.get("catch"):
            return {"caught": str(exc)}
        raise
    return {"result": result}


@app.activity_trigger(input_name="cfg")
def flaky(cfg: dict) -> str:
    key = cfg["key"]
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] <= cfg["fail_times"]:
        raise ValueError(f"attempt {ATTEMPTS[key]} failed")
    return f"ok after {ATTEMPTS[key]} attempts"
