"""Rules of the Python worker and the Functions host that decide whether, and how, a function runs.

- ``load_error``: the check the Python worker makes when it indexes an app
  (azure-functions-python-worker ``functions.Registry.add_indexed_function``): every Python parameter must
  have a binding of that name and every binding (except ``$return``) a parameter; an unbound ``context``
  parameter gets the invocation context. The first function that fails stops the whole app from loading,
  with the text ``cannot load the <name> function: ...``.
- ``is_disabled``: ``AzureWebJobs.<function>.Disabled`` set to ``true`` (any case) or ``1`` in the app
  settings disables a function. The host still indexes it (the Durable extension still knows a disabled
  activity's name) but starts no listener for it.
- ``activity_failure``: the ``TaskFailed`` reason and details the extension's activity shim writes for an
  exception raised by a Python activity, built from what the worker reports (exception type and message,
  the stack of the user's frames).
"""

from __future__ import annotations

import inspect
import json
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

_DEVHOST_DIR = str(Path(__file__).resolve().parent)

# The .NET type names in the serialized exception the extension stores as TaskFailed.Details: the
# friendly-message exception wrapping the host's RpcException, with the fields seen in status histories
# of Python apps; the real serialization carries more .NET fields (HResult, Source, ...) that devhost omits.
_OUTER_TYPE = "System.Exception, System.Private.CoreLib"
_RPC_TYPE = "Microsoft.Azure.WebJobs.Script.Workers.Rpc.RpcException, Microsoft.Azure.WebJobs.Script"


def load_error(function_name: str, func: Callable[..., Any], binding_names: list[str]) -> str | None:
    """The worker's FunctionLoadError text for a function whose parameters and bindings disagree, or None."""
    try:
        params = set(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return None  # the worker would fail differently; leave it to the invocation
    bound = {name for name in binding_names if name != "$return"}
    if "context" in params and "context" not in bound:
        params.discard("context")
    missing = params - bound
    if missing:
        return _worker_text(
            function_name,
            f"the following parameters are declared in Python but not in function.json: {missing!r}",
        )
    extra = bound - params
    if extra:
        return _worker_text(
            function_name,
            f"the following parameters are declared in function.json but not in Python: {extra!r}",
        )
    return None


def _worker_text(function_name: str, msg: str) -> str:
    return f"FunctionLoadError: cannot load the {function_name} function: {msg}"


def disabled_setting(function_name: str) -> str:
    return f"AzureWebJobs.{function_name}.Disabled"


def is_disabled(function_name: str, environ: Mapping[str, str]) -> bool:
    value = environ.get(disabled_setting(function_name))
    return value is not None and value.strip().lower() in ("true", "1")


def user_stack(exc: BaseException) -> str:
    """The traceback frames the worker would report (``extract_tb`` formatted), without devhost's own."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_DEVHOST_DIR)]
    return "".join(traceback.StackSummary.from_list(frames).format())


def activity_failure(activity_name: str, exc: BaseException) -> tuple[str, str]:
    """``(Reason, Details)`` of the TaskFailed event for an exception raised by a Python activity.

    The worker reports ``"<Type>: <message>"`` and the stack; the host wraps them in an RpcException whose
    message reads ``Result: Failure\\nException: <message>\\nStack: <stack>``; the extension takes the text
    between ``Exception:`` and ``Stack:`` (hence the leading space) as the friendly message and serializes
    the exception as Details.
    """
    message = f"{type(exc).__name__}: {exc}"
    friendly = f" {message}"
    stack = user_stack(exc)
    details = {
        "$type": _OUTER_TYPE,
        "ClassName": "System.Exception",
        "Message": friendly,
        "Data": None,
        "InnerException": {
            "$type": _RPC_TYPE,
            "ClassName": "Microsoft.Azure.WebJobs.Script.Workers.Rpc.RpcException",
            "Message": f"Result: Failure\nException: {message}\nStack: {stack}",
            "IsUserException": False,
            "RemoteStackTrace": stack,
        },
    }
    return f"Activity function '{activity_name}' failed: {friendly}", json.dumps(details)
