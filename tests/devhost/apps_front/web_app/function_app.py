"""devhost front-end sample: HTTP routing/auth, the durable client against the management API, Event Grid."""

import json

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)


def _json(body, status=200):
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


# -- plain HTTP triggers ------------------------------------------------------------------------


@app.route(route="hello/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"Hello {req.route_params['name']}")


@app.route(route="items/{id:int}/{tag?}", methods=["GET", "POST"])
def items(req: func.HttpRequest) -> func.HttpResponse:
    body = req.get_json() if req.get_body() else None
    return _json(
        {
            "method": req.method,
            "route": dict(req.route_params),
            "params": dict(req.params),
            "header": req.headers.get("x-test"),
            "body": body,
            "url": req.url,
        }
    )


@app.route(route="items/special", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def items_special(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("literal wins")


@app.route(route="secure/thing", auth_level=func.AuthLevel.ADMIN)
def admin_thing(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin ok")


@app.route(auth_level=func.AuthLevel.ANONYMOUS)
def default_route(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _json({"function": context.function_name, "invocation": bool(context.invocation_id)})


@app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("intentional failure")


# -- durable client -----------------------------------------------------------------------------


@app.route(route="start/{name}/{instance_id?}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    payload = req.get_json() if req.get_body() else None
    try:
        instance_id = await client.start_new(
            req.route_params["name"], req.route_params.get("instance_id"), payload
        )
    except Exception as exc:  # the extension answers 409 for an active id, 400 for an unknown orchestrator
        return _json({"error": str(exc)}, status=409)
    return client.create_check_status_response(req, instance_id)


@app.route(route="wait/{name}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@app.durable_client_input(client_name="client")
async def wait(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = await client.start_new(req.route_params["name"], None, req.get_json())
    return await client.wait_for_completion_or_create_check_status_response(req, instance_id, 20000, 100)


@app.route(route="status/{instance_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@app.durable_client_input(client_name="client")
async def status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    st = await client.get_status(
        req.route_params["instance_id"], show_history=True, show_history_output=True, show_input=True
    )
    if not st:
        return _json({"found": False}, status=404)
    history = getattr(st, "historyEvents", None)
    return _json(
        {
            "found": True,
            "status": st.runtime_status.value if st.runtime_status else None,
            "output": st.output,
            "input": st.input_,
            "custom": st.custom_status,
            "history_types": [h.get("EventType") for h in history or []],
            "history": history,
        }
    )


@app.route(route="management/{instance_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@app.durable_client_input(client_name="client")
async def management(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return _json(client.create_http_management_payload(req.route_params["instance_id"]))


@app.route(route="raise/{instance_id}/{event}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@app.durable_client_input(client_name="client")
async def raise_event(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        await client.raise_event(req.route_params["instance_id"], req.route_params["event"], req.get_json())
    except Exception as exc:
        return _json({"error": str(exc)}, status=400)
    return _json({"raised": True}, status=202)


@app.route(route="terminate/{instance_id}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@app.durable_client_input(client_name="client")
async def terminate(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        await client.terminate(req.route_params["instance_id"], "stopped by test")
    except Exception as exc:
        return _json({"error": str(exc)}, status=404)
    return _json({"terminated": True}, status=202)


@app.route(route="purge/{instance_id}", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@app.durable_client_input(client_name="client")
async def purge(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    result = await client.purge_instance_history(req.route_params["instance_id"])
    return _json({"deleted": result.instances_deleted})


@app.route(route="list", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@app.durable_client_input(client_name="client")
async def list_instances(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    everything = await client.get_status_all()
    done = await client.get_status_by(runtime_status=[df.OrchestrationRuntimeStatus.Completed])
    return _json(
        {"all": sorted(s.instance_id for s in everything), "completed": sorted(s.instance_id for s in done)}
    )


# -- orchestrations -----------------------------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def greet(context: df.DurableOrchestrationContext):
    name = context.get_input() or {"name": "nobody"}
    context.set_custom_status({"stage": "greeting"})
    first = yield context.call_activity("say_hello", name["name"])
    second = yield context.call_activity("say_hello", "again")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    data = yield context.wait_for_external_event("approve")
    return {"approved": data}


@app.orchestration_trigger(context_name="context")
def forever(context: df.DurableOrchestrationContext):
    from datetime import timedelta

    yield context.create_timer(context.current_utc_datetime + timedelta(hours=1))
    return "timer fired"


@app.activity_trigger(input_name="name")
def say_hello(name: str) -> str:
    return f"Hello {name}"


# -- Event Grid ---------------------------------------------------------------------------------


@app.event_grid_trigger(arg_name="event")
@app.durable_client_input(client_name="client")
async def on_event(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    subject = event.subject if hasattr(event, "subject") else None
    if subject and "fail" in subject:
        raise ValueError("subject asks for a failure")
    event_type = getattr(event, "event_type", None) or getattr(event, "type", None)
    await client.start_new("greet", f"eg-{event.id}", {"name": f"{event_type}|{subject}"})
