"""Sample app: activity chaining, input passing, a renamed async activity, an HTTP client function."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):
    cities = context.get_input() or ["Tokyo", "Seattle", "London"]
    results = []
    for city in cities:
        results.append((yield context.call_activity("hello", city)))
    renamed = yield context.call_activity("RenamedActivity", {"n": len(results)})
    return {"greetings": results, "renamed": renamed}


@app.activity_trigger(input_name="city")
def hello(city: str) -> str:
    return f"Hello {city}"


@app.function_name("RenamedActivity")
@app.activity_trigger(input_name="x")
async def some_activity(x: dict) -> dict:
    return {"got": x}


@app.orchestration_trigger(context_name="context")
def calls_unknown(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("no_such_activity", 1))


@app.route(route="start/{name}")
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client) -> func.HttpResponse:
    instance_id = await client.start_new(req.route_params["name"])
    return client.create_check_status_response(req, instance_id)
