"""Refused by the Python worker: an app decorator stacked on a blueprint's function binds to another function.

The app's ``queue_output`` receives the blueprint's function builder and attaches its binding to the app's
most recently declared function (``hello``), which has no ``msg`` parameter.
"""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
bp = df.Blueprint()


@app.route(route="hello")
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("hi")


@app.queue_output(arg_name="msg", queue_name="work", connection="AzureWebJobsStorage")
@bp.activity_trigger(input_name="item")
def enqueue(item: str, msg: func.Out[str]) -> str:
    msg.set(item)
    return item


app.register_functions(bp)
