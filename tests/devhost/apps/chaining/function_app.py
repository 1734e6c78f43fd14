"""Sample app: activity chaining, fan-out/fan-in, task_any, custom status, failures."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):
    a = yield context.call_activity("hello", "Tokyo")
    b = yield context.call_activity("hello", "Seattle")
    c = yield context.call_activity("hello", "London")
    return [a, b, c]


@app.activity_trigger(input_name="city")
def hello(city: str) -> str:
    return f"Hello {city}"


@app.function_name("RenamedActivity")
@app.activity_trigger(input_name="x")
async def some_activity(x: dict) -> dict:
    return {"got": x}


@app.route(route="start/{name}")
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client) -> func.HttpResponse:
    instance_id = await client.start_new(req.route_params["name"])
    return client.create_check_status_response(req, instance_id)
