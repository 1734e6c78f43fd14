"""Refused by the Python worker: a Durable decorator of a plain FunctionApp stacked above an output binding.

``FunctionApp.activity_trigger`` rebuilds the function from the bare Python function, so the queue output
binding declared below it is dropped and the ``msg`` parameter has no binding.
"""

import azure.functions as func

app = func.FunctionApp()


@app.activity_trigger(input_name="item")
@app.queue_output(arg_name="msg", queue_name="work", connection="AzureWebJobsStorage")
def enqueue(item: str, msg: func.Out[str]) -> str:
    msg.set(item)
    return item
