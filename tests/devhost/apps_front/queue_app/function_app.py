"""devhost front-end sample: storage-queue triggers with a queue output binding and a durable client."""

import json

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="done", queue_name="done-notices", connection="AzureWebJobsStorage")
def on_work(msg: func.QueueMessage, done: func.Out[str]) -> None:
    body = msg.get_json()
    if body.get("fail"):
        raise RuntimeError("the message asks for a failure")
    done.set(
        json.dumps(
            {
                "id": msg.id,
                "dequeue_count": msg.dequeue_count,
                "echo": body,
                "has_insertion_time": msg.insertion_time is not None,
            }
        )
    )


@app.queue_trigger(arg_name="msg", queue_name="start-requests", connection="AzureWebJobsStorage")
@app.durable_client_input(client_name="client")
async def on_start(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    body = msg.get_json()
    await client.start_new("greet", body["instance_id"], {"name": body["name"]})


@app.orchestration_trigger(context_name="context")
def greet(context: df.DurableOrchestrationContext):
    name = context.get_input()["name"]
    result = yield context.call_activity("say_hello", name)
    return result


@app.activity_trigger(input_name="name")
def say_hello(name: str) -> str:
    return f"Hello {name}"


@app.queue_trigger(arg_name="msg", queue_name="identity-items", connection="IdentityStorage")
@app.queue_output(arg_name="done", queue_name="identity-done", connection="IdentityStorage")
def on_identity(msg: func.QueueMessage, done: func.Out[str]) -> None:
    done.set(f"seen {msg.get_body().decode()}")
