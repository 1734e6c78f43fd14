"""Binding metadata turned into the keyword arguments the worker passes, and output bindings written back.

For a trigger invocation (HTTP, queue, Event Grid) ``Invoker.invoke`` passes:

- the trigger payload under the trigger binding's ``name``;
- the durable client binding JSON string under each ``durableClient`` binding's name;
- a ``func.Out`` for each output binding (``queue``, ``http``) other than ``$return``;
- a ``func.Context`` when the function declares a ``context`` parameter that is not a binding.

After a successful call, queue outputs (``func.Out`` values and a ``$return`` queue binding) are written to
their storage queue with the host's message encoding, as the host flushes output bindings only when the
function succeeds. Bindings devhost does not implement (blob, table, Cosmos DB ...) fail the invocation
with a message naming the function and binding.
"""

from __future__ import annotations

import inspect
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions import _abc as func_abc

from devhost.functions import FunctionInfo, invoke
from devhost.settings import resolve_binding_value

log = logging.getLogger("devhost.invoke")

SUPPORTED_OUT = {"queue", "http"}
SUPPORTED_IN = {"durableClient"}
TRIGGERS = {"httpTrigger", "queueTrigger", "eventGridTrigger"}


class BindingError(Exception):
    """A function declares a binding devhost cannot supply."""


class Out(func.Out[Any]):
    """The worker's output-binding holder."""

    def __init__(self) -> None:
        self._value: Any = None
        self._set = False

    def set(self, val: Any) -> None:
        self._value = val
        self._set = True

    def get(self) -> Any:
        return self._value

    @property
    def is_set(self) -> bool:
        return self._set


class _TraceContext(func_abc.TraceContext):
    def __init__(self) -> None:
        self._tp = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._tp

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(func_abc.RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> func_abc.RpcException:
        raise AttributeError("no retry policy")


class InvocationContext(func.Context):
    """``func.Context`` as the worker fills it for one invocation."""

    def __init__(self, function_name: str, function_directory: str) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._function_directory = function_directory
        self._tls = threading.local()
        self._trace = _TraceContext()
        self._retry = _RetryContext()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._tls

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> func_abc.TraceContext:
        return self._trace

    @property
    def retry_context(self) -> func_abc.RetryContext:
        return self._retry


@dataclass
class QueueWrite:
    """A message an output binding produced: to ``queue_name`` via ``connection``."""

    connection: str
    queue_name: str
    body: bytes


@dataclass
class InvocationResult:
    value: Any
    http_out: Any
    queue_writes: list[QueueWrite]


def _direction(b: dict[str, Any]) -> str:
    return str(b.get("direction", "")).upper()


def unsupported_bindings(info: FunctionInfo) -> list[str]:
    """Descriptions of bindings devhost cannot supply for this trigger function (empty when all fine)."""
    bad: list[str] = []
    for b in info.bindings:
        if b is info.trigger_binding or (b.get("type") == info.trigger_type and _direction(b) == "IN"):
            continue
        t = str(b.get("type"))
        if _direction(b) == "IN" and t not in SUPPORTED_IN:
            bad.append(f"input binding '{b.get('name')}' of type '{t}'")
        elif _direction(b) == "OUT" and t not in SUPPORTED_OUT:
            bad.append(f"output binding '{b.get('name')}' of type '{t}'")
    return bad


def _message_bodies(value: Any, where: str) -> list[bytes]:
    """What a queue output value turns into, per the worker's QueueMessageOutConverter."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value.encode("utf-8")]
    if isinstance(value, bytes | bytearray):
        return [bytes(value)]
    if isinstance(value, func.QueueMessage):
        return [value.get_body()]
    if isinstance(value, list | tuple):
        out: list[bytes] = []
        for item in value:
            if isinstance(item, str):
                out.append(item.encode("utf-8"))
            elif isinstance(item, func.QueueMessage):
                out.append(item.get_body())
            else:
                raise BindingError(
                    f"{where}: a queue message list may hold str or func.QueueMessage, got {type(item).__name__}"
                )
        return out
    raise BindingError(
        f"{where}: a queue output takes str, bytes, func.QueueMessage or a list of them, got {type(value).__name__}"
    )


class Invoker:
    """Invokes trigger functions with their bindings; ``client_json`` supplies the durable client binding."""

    def __init__(self, client_json: Callable[[str | None], str], app_dir: str) -> None:
        self._client_json = client_json
        self._app_dir = app_dir

    def invoke(self, info: FunctionInfo, trigger_value: Any) -> InvocationResult:
        """Blocking: call from a worker thread, never from an event loop thread."""
        problems = unsupported_bindings(info)
        if problems:
            raise BindingError(
                f"function '{info.name}' declares {', '.join(problems)}; devhost supports trigger, durableClient, "
                "queue and http output bindings only."
            )
        kwargs: dict[str, Any] = {info.trigger_arg: trigger_value}
        outs: dict[str, tuple[dict[str, Any], Out]] = {}
        return_binding: dict[str, Any] | None = None
        for b in info.bindings:
            name = str(b.get("name"))
            t = b.get("type")
            if t == "durableClient":
                kwargs[name] = self._client_json(b.get("taskHub"))
            elif _direction(b) == "OUT":
                if name == "$return":
                    return_binding = b
                else:
                    o = Out()
                    outs[name] = (b, o)
                    kwargs[name] = o
        params = _parameters(info.func)
        if "context" in params and "context" not in kwargs:
            kwargs["context"] = InvocationContext(info.name, self._app_dir)
        value = invoke(info, **kwargs)
        writes: list[QueueWrite] = []
        http_out: Any = None
        for name, (b, o) in outs.items():
            if b.get("type") == "http":
                http_out = o.get()
            elif b.get("type") == "queue" and o.is_set:
                writes.extend(self._queue_writes(info, b, o.get(), name))
        if return_binding is not None:
            if return_binding.get("type") == "http":
                http_out = value if http_out is None else http_out
            elif return_binding.get("type") == "queue":
                writes.extend(self._queue_writes(info, return_binding, value, "$return"))
        return InvocationResult(value=value, http_out=http_out, queue_writes=writes)

    def _queue_writes(self, info: FunctionInfo, b: dict[str, Any], value: Any, name: str) -> list[QueueWrite]:
        where = f"function '{info.name}' output binding '{name}'"
        queue = resolve_binding_value(
            str(b.get("queueName", "")), function_name=info.name, field_name="queueName"
        )
        if not queue:
            raise BindingError(f"{where}: queueName is empty")
        conn = str(b.get("connection") or "AzureWebJobsStorage")
        return [QueueWrite(conn, queue.lower(), body) for body in _message_bodies(value, where)]


def _parameters(fn: Callable[..., Any]) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()
