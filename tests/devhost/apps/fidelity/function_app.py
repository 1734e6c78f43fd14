"""devhost fidelity sample: disabled functions, a %SETTING% task hub, AnyState restarts, generated
sub-orchestration ids, status history shapes and activity failures."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="start/{name}/{id?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_json() if req.get_body() else None
    iid = await client.start_new(req.route_params["name"], req.route_params.get("id"), body)
    return client.create_check_status_response(req, iid)


@app.route(route="off", methods=["GET"])
def off_http(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("disabled functions must not answer")


@app.route(route="on", methods=["GET"])
def on_http(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("on")


@app.orchestration_trigger(context_name="context")
def calls_disabled(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity("off_activity", "x")
    except Exception as exc:  # the disabled activity's task fails
        return {"caught": str(exc)}
    return {"caught": None}


@app.activity_trigger(input_name="item")
def off_activity(item: str) -> str:
    raise RuntimeError("a disabled activity ran")


@app.orchestration_trigger(context_name="context")
def off_orch(context: df.DurableOrchestrationContext):
    return "a disabled orchestrator ran"


@app.orchestration_trigger(context_name="context")
def waits(context: df.DurableOrchestrationContext):
    yield context.wait_for_external_event("go")
    return context.get_input()


@app.orchestration_trigger(context_name="context")
def parent_no_id(context: df.DurableOrchestrationContext):
    child = yield context.call_sub_orchestrator("child_echo", 5)
    return child


@app.orchestration_trigger(context_name="context")
def child_echo(context: df.DurableOrchestrationContext):
    return {"id": context.instance_id, "parent": context.parent_instance_id, "input": context.get_input()}


@app.orchestration_trigger(context_name="context")
def greet(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("hello_act", "Tokyo")
    return [first]


@app.activity_trigger(input_name="who")
def hello_act(who: str) -> str:
    return f"Hello {who}"


@app.orchestration_trigger(context_name="context")
def fails_in_activity(context: df.DurableOrchestrationContext):
    caught = None
    try:
        yield context.call_activity("explode", "caught")
    except Exception as exc:
        caught = str(exc)
    context.set_custom_status(caught)
    yield context.call_activity("explode", "uncaught")
    return "unreachable"


@app.activity_trigger(input_name="what")
def explode(what: str) -> str:
    raise ValueError(f"kaboom ({what})")


CHILD_RUNS: dict[str, int] = {}


@app.orchestration_trigger(context_name="context")
def parent_retry_no_id(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=2)
    result = yield context.call_sub_orchestrator_with_retry("flaky_no_id", options, "r1")
    return result


@app.orchestration_trigger(context_name="context")
def flaky_no_id(context: df.DurableOrchestrationContext):
    key = context.get_input()
    if not context.is_replaying:
        CHILD_RUNS[key] = CHILD_RUNS.get(key, 0) + 1
    if CHILD_RUNS[key] < 2:
        raise ValueError("first run fails")
    return context.instance_id
