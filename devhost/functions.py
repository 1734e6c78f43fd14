"""Function indexing and invocation, done the way the Python worker does it.

``load_app`` imports an app's ``function_app.py``, finds its ``FunctionApp``/``DFApp``, calls
``get_functions()`` once and records, per function, the binding metadata the worker would send
the host (the ``function.json`` bindings). ``invoke`` calls a function with keyword arguments
named after its bindings; coroutine functions run on one shared event loop thread, as the
worker runs them on its single event loop. ``call_activity``/``call_orchestrator`` add the
activity/orchestration trigger conversions the worker applies (JSON text in, JSON text out).
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions import meta

from devhost.worker_rules import disabled_setting, is_disabled, load_error

APP_MODULE = "function_app"

log = logging.getLogger("devhost")


class AppLoadError(Exception):
    """The app folder has no usable function_app.py or its functions cannot be indexed."""


class FunctionNotFound(Exception):
    """No function with that name (and trigger type) is registered in the app."""


@dataclass
class FunctionInfo:
    """One indexed function: its registered name, trigger and bindings as function.json has them."""

    name: str
    trigger_type: str
    trigger_binding: dict[str, Any]
    bindings: list[dict[str, Any]]
    func: Callable[..., Any]
    is_async: bool
    # AzureWebJobs.<name>.Disabled: indexed (known by name) but never triggered.
    disabled: bool = False

    @property
    def trigger_arg(self) -> str:
        """The keyword the trigger payload is passed as (the trigger binding's ``name``)."""
        return str(self.trigger_binding["name"])

    def bindings_of_type(self, type_name: str) -> list[dict[str, Any]]:
        return [b for b in self.bindings if b.get("type") == type_name]


@dataclass
class AppIndex:
    """All functions of one app, by registered function name."""

    app_dir: Path
    functions: dict[str, FunctionInfo] = field(default_factory=dict)

    def by_trigger(self, type_name: str) -> list[FunctionInfo]:
        """The enabled functions with that trigger: what gets a listener (route, queue poller, webhook)."""
        return [f for f in self.functions.values() if f.trigger_type == type_name and not f.disabled]

    def _all_by_trigger(self, type_name: str) -> list[FunctionInfo]:
        return [f for f in self.functions.values() if f.trigger_type == type_name]

    @property
    def orchestrators(self) -> dict[str, FunctionInfo]:
        return self._durable_names("orchestrationTrigger", "orchestration")

    @property
    def activities(self) -> dict[str, FunctionInfo]:
        return self._durable_names("activityTrigger", "activity")

    def _durable_names(self, trigger: str, override_key: str) -> dict[str, FunctionInfo]:
        # The durable name is the registered function name; an explicit ``activity=`` /
        # ``orchestration=`` binding property is accepted as an extra alias, as the
        # extension's trigger binding providers use it as the name when present.
        # Disabled ones stay known by name, as the extension registers them at indexing time.
        names: dict[str, FunctionInfo] = {}
        for info in self._all_by_trigger(trigger):
            names[info.name] = info
        for info in self._all_by_trigger(trigger):
            alias = info.trigger_binding.get(override_key)
            if isinstance(alias, str) and alias and alias not in names:
                names[alias] = info
        return names

    def orchestrator(self, name: str) -> FunctionInfo:
        found = self.orchestrators.get(name)
        if found is None:
            raise FunctionNotFound(
                f"The orchestrator function '{name}' doesn't exist in {self.app_dir / 'function_app.py'}; "
                f"registered orchestrators: {sorted(self.orchestrators) or 'none'}. "
                "Check the name passed to start_new/call_sub_orchestrator (it is the registered function name)."
            )
        return found

    def activity(self, name: str) -> FunctionInfo:
        found = self.activities.get(name)
        if found is None:
            raise FunctionNotFound(
                f"The activity function '{name}' doesn't exist in {self.app_dir / 'function_app.py'}; "
                f"registered activities: {sorted(self.activities) or 'none'}. "
                "Check the name passed to call_activity (it is the registered function name, "
                "not the Python function name when @app.function_name renames it)."
            )
        return found


def _find_function_app(module: Any, path: Path) -> Any:
    registers = [v for v in vars(module).values() if isinstance(v, func.FunctionRegister)]
    app = getattr(module, "app", None)
    if isinstance(app, func.FunctionRegister):
        return app
    if len(registers) == 1:
        return registers[0]
    if not registers:
        raise AppLoadError(
            f"{path} defines no FunctionApp: expected a module-level `app = func.FunctionApp()` "
            "or `app = df.DFApp()`."
        )
    raise AppLoadError(
        f"{path} defines {len(registers)} FunctionApp objects and none is named `app`; "
        "name the one to run `app`."
    )


def load_app(app_dir: Path) -> AppIndex:
    """Import ``app_dir/function_app.py`` and index its functions as the worker would.

    The app folder is put first on ``sys.path`` so the app's own packages import as they do
    under the worker. A previously imported ``function_app`` module (another app) is replaced.
    """
    app_dir = Path(app_dir).resolve()
    path = app_dir / "function_app.py"
    if not path.is_file():
        raise AppLoadError(f"{path} not found: devhost runs Python v2-model apps from their function_app.py.")
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    sys.modules.pop(APP_MODULE, None)
    spec = importlib.util.spec_from_file_location(APP_MODULE, path)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"{path} cannot be imported.")
    module = importlib.util.module_from_spec(spec)
    # Registered before execution, as a normal import does: custom-object (de)serialization
    # looks classes up by module name in sys.modules.
    sys.modules[APP_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(APP_MODULE, None)
        raise AppLoadError(f"Importing {path} failed: {type(exc).__name__}: {exc}") from exc
    app = _find_function_app(module, path)
    return index_app(app, app_dir)


def index_app(app: Any, app_dir: Path, environ: Mapping[str, str] | None = None) -> AppIndex:
    """Index an already-imported FunctionApp (``get_functions()`` may be called only once per app).

    Refuses the app, as the worker does, when a function's parameters and bindings disagree; marks the
    functions the app settings (``environ``, default the process environment) disable.
    """
    env = os.environ if environ is None else environ
    try:
        functions = app.get_functions()
    except ValueError as exc:
        raise AppLoadError(f"Indexing the functions of {app_dir / 'function_app.py'} failed: {exc}") from exc
    index = AppIndex(app_dir=app_dir)
    for f in functions:
        name = f.get_function_name()
        bindings = [json.loads(raw) for raw in f.get_raw_bindings()]
        trigger = f.get_trigger()
        trigger_type = trigger.get_binding_name() if trigger is not None else ""
        trigger_binding: dict[str, Any] = next(
            (
                b
                for b in bindings
                if b.get("type") == trigger_type and str(b.get("direction", "")).upper() == "IN"
            ),
            {},
        )
        user_fn = f.get_user_function()
        problem = load_error(name, user_fn, [str(b.get("name")) for b in bindings])
        if problem is not None:
            raise AppLoadError(
                f"The Python worker would refuse to load {app_dir / 'function_app.py'}: {problem}. "
                "Give every parameter a binding decorator on the same function (decorators bind to the "
                "function right below them; a Durable decorator from another app or blueprint, or one "
                "stacked above another app's decorator, binds elsewhere)."
            )
        index.functions[name] = FunctionInfo(
            name=name,
            trigger_type=trigger_type,
            trigger_binding=trigger_binding,
            bindings=bindings,
            func=user_fn,
            is_async=inspect.iscoroutinefunction(user_fn),
            disabled=is_disabled(name, env),
        )
        if index.functions[name].disabled:
            log.info("function '%s' is disabled (%s)", name, disabled_setting(name))
    return index


class _LoopThread:
    """One event loop on a daemon thread: the worker runs every async function on a single loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="devhost-async", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        loop = self.loop()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("devhost.functions.invoke was called from the async-function loop itself")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def close(self, timeout: float = 5.0) -> None:
        """Close what the app left open on the loop, as a worker does when the host stops.

        The Durable SDK keeps one module-level aiohttp session for its client calls; left open,
        aiohttp reports "Unclosed client session" at interpreter exit.
        """
        with self._lock:
            loop = self._loop
        if loop is None or not loop.is_running():
            return

        async def _close_sessions() -> None:
            http_utils = sys.modules.get("azure.durable_functions.models.utils.http_utils")
            session = getattr(http_utils, "_client_session", None)
            if session is not None and not session.closed:
                await session.close()

        try:
            asyncio.run_coroutine_threadsafe(_close_sessions(), loop).result(timeout)
        except Exception:  # best effort at shutdown: never block or fail the stop
            pass


_ASYNC = _LoopThread()


def close_async_loop() -> None:
    """Release resources the app's async functions hold on the shared loop (call at host stop)."""
    _ASYNC.close()


def invoke(info: FunctionInfo, **kwargs: Any) -> Any:
    """Call a function with keyword arguments named after its bindings; return its result.

    Safe from any thread. Sync functions run in the calling thread; coroutine functions run on
    the shared async loop thread and the call blocks until they finish.
    """
    result = info.func(**kwargs)
    if inspect.isawaitable(result):

        async def _await() -> Any:
            return await result

        return _ASYNC.run(_await())
    return result


def call_activity(info: FunctionInfo, input_text: str | None) -> str:
    """Run an activity the way the worker does: JSON text in, JSON text (``df_dumps``) out.

    Exceptions from the activity propagate unchanged; a non-serializable result raises
    ``ValueError`` like the worker's converter.
    """
    converter = meta.get_binding_registry().get("activityTrigger")
    value = converter.decode(meta.Datum(type="string", value=input_text), trigger_metadata={})
    ret = invoke(info, **{info.trigger_arg: value})
    encoded = converter.encode(ret, expected_type=None)
    return str(encoded.value)


def call_orchestrator(info: FunctionInfo, context_json: str) -> str:
    """Run one orchestrator episode: the SDK's handle gets an OrchestrationContext, returns state JSON."""
    result = invoke(info, **{info.trigger_arg: func.OrchestrationContext(context_json)})
    return str(result)
