"""The Functions host's HTTP surface on ``http://127.0.0.1:<port>``, served by aiohttp on its own thread.

- ``/<routePrefix>/<route>``: HTTP trigger functions (``func.HttpRequest`` in, ``func.HttpResponse`` out);
- ``/runtime/webhooks/durabletask/...``: Durable management API (system key when keys are required);
- ``/runtime/webhooks/eventgrid``: Event Grid trigger deliveries (system key when keys are required);
- ``/admin/host/status`` and ``/``: liveness;
- ``/admin/functions/{name}``: run a non-HTTP function on demand (``devhost.http.admin``; master key).
A second listener on another port serves ``/durabletask/...``, the extension's local RPC endpoint the
durable client calls (``rpcBaseUrl``).

Functions never run on the server's event loop: sync and async functions run through
``devhost.functions.invoke`` on worker threads (async ones on the shared function loop), so an HTTP function
that awaits the durable client, which calls back into this server, cannot deadlock it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import azure.functions as func
from aiohttp import web
from azure.functions.http import HttpRequest as WorkerHttpRequest

from devhost.functions import FunctionInfo
from devhost.http.admin import PREFIX as ADMIN_FUNCTIONS
from devhost.http.admin import AdminApi
from devhost.http.durable import DurableApi
from devhost.http.routes import RouteTemplate
from devhost.keys import DURABLE_SYSTEM_KEY, EVENTGRID_SYSTEM_KEY, KeyStore
from devhost.triggers.bindings import Invoker
from devhost.triggers.eventgrid import handle_eventgrid

log = logging.getLogger("devhost.http")

ALL_METHODS = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"}


@dataclass
class HttpRoute:
    info: FunctionInfo
    template: RouteTemplate
    methods: set[str]
    auth_level: str


def build_routes(functions: list[FunctionInfo]) -> list[HttpRoute]:
    routes: list[HttpRoute] = []
    for info in functions:
        b = info.trigger_binding
        route = b.get("route") or info.name
        methods = {str(m).upper() for m in (b.get("methods") or [])} or set(ALL_METHODS)
        try:
            template = RouteTemplate.parse(str(route))
        except ValueError as exc:
            raise ValueError(f"function '{info.name}': {exc}") from exc
        routes.append(HttpRoute(info, template, methods, str(b.get("authLevel") or "function").lower()))
    routes.sort(key=lambda r: r.template.precedence)
    return routes


def _presented_key(request: web.Request) -> str | None:
    return request.query.get("code") or request.headers.get("x-functions-key")


def _unauthorized() -> web.Response:
    return web.Response(status=401)


def to_http_request(request: web.Request, body: bytes, route_params: dict[str, str], url: str) -> Any:
    """``func.HttpRequest`` as the worker builds it from the host's RpcHttp message."""
    params: dict[str, str] = {}
    for k, v in parse_qsl(request.query_string, keep_blank_values=True):
        # the host joins repeated query keys with ','
        params[k] = f"{params[k]},{v}" if k in params else v
    headers: dict[str, str] = {}
    for k, v in request.headers.items():
        headers[k] = f"{headers[k]}, {v}" if k in headers else v
    return WorkerHttpRequest(
        method=request.method,
        url=url,
        headers=headers,
        params=params,
        route_params=route_params,
        body_type="bytes",
        body=body,
    )


def to_web_response(value: Any, function_name: str) -> web.StreamResponse:
    if value is None:
        return web.Response(status=204)
    if isinstance(value, func.HttpResponse):
        headers = {
            k: v for k, v in value.headers.items() if k.lower() not in ("content-length", "transfer-encoding")
        }
        ct = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        if ct is None:
            ct = (
                f"{value.mimetype}; charset={value.charset}"
                if value.mimetype.startswith("text/")
                else value.mimetype
            )
            headers["Content-Type"] = ct
        return web.Response(status=value.status_code, body=value.get_body(), headers=headers)
    if isinstance(value, str | bytes):
        return web.Response(status=200, body=value if isinstance(value, bytes) else value.encode("utf-8"))
    if isinstance(value, dict | list | int | float | bool):
        import json

        return web.Response(status=200, text=json.dumps(value), content_type="application/json")
    log.error(
        "http trigger %s returned %s, which is not an HttpResponse", function_name, type(value).__name__
    )
    return web.Response(status=500)


class HttpServer:
    """Both listeners on one event loop thread. ``start`` returns once they are bound."""

    def __init__(
        self,
        *,
        routes: list[HttpRoute],
        route_prefix: str,
        invoker: Invoker,
        keys: KeyStore | None,
        eventgrid_functions: dict[str, FunctionInfo],
        pool: ThreadPoolExecutor,
        port: int = 7071,
        rpc_port: int = 0,
    ) -> None:
        self.routes = routes
        self.route_prefix = route_prefix.strip("/")
        self.invoker = invoker
        self.keys = keys
        self.eventgrid_functions = eventgrid_functions
        self.pool = pool
        # Engine calls get their own threads: invocations may block pool threads while their async
        # function awaits the durable client, whose requests need an engine call to finish.
        self._engine_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="devhost-mgmt")
        self.port = port
        self.rpc_port = rpc_port
        self.durable: DurableApi | None = None
        self.admin: AdminApi | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runners: list[web.AppRunner] = []
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> None:
        self._thread = threading.Thread(target=self._run, name="devhost-http", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("HTTP server did not start in time")
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._bind())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._cleanup())
        loop.close()

    async def _bind(self) -> None:
        public = web.Application(client_max_size=100 * 1024 * 1024)
        # Every path reaches _public, one with an encoded newline in a segment too (".*" stops at it).
        public.router.add_route("*", "/{tail:(?s:.*)}", self._public)
        rpc = web.Application(client_max_size=100 * 1024 * 1024)
        rpc.router.add_route("*", "/{tail:.*}", self._rpc)
        for app, port, name in ((public, self.port, "public"), (rpc, self.rpc_port, "rpc")):
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                raise OSError(
                    f"cannot listen on 127.0.0.1:{port} for the {name} endpoint ({exc.strerror}); "
                    "is another devhost or Functions host running? Pass --port to pick another port."
                ) from exc
            self._runners.append(runner)
            bound = runner.addresses[0][1]
            if name == "public":
                self.port = bound
            else:
                self.rpc_port = bound

    async def _cleanup(self) -> None:
        for runner in self._runners:
            await runner.cleanup()

    def stop(self, timeout: float = 10.0) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
        self._engine_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rpc_base_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}/durabletask/"

    async def run_blocking(self, fn: Callable[[], Any]) -> Any:
        """Run a short blocking engine call off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._engine_pool, fn)

    async def run_function(self, fn: Callable[[], Any]) -> Any:
        """Run a function invocation (possibly long) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn)

    # -- dispatch ------------------------------------------------------------------------------

    async def _rpc(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if self.durable is not None and (path == "/durabletask" or path.startswith("/durabletask/")):
            return await self.durable.handle(request, path[len("/durabletask") :])
        return web.Response(status=404)

    async def _public(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        lower = path.lower()
        if lower.startswith("/runtime/webhooks/durabletask"):
            if self.keys is not None and not self.keys.allows_system(
                DURABLE_SYSTEM_KEY, _presented_key(request)
            ):
                return _unauthorized()
            if self.durable is None:
                return web.Response(status=503)
            return await self.durable.handle(request, path[len("/runtime/webhooks/durabletask") :])
        if lower.rstrip("/") == "/runtime/webhooks/eventgrid":
            if (
                request.method != "OPTIONS"
                and self.keys is not None
                and not self.keys.allows_system(EVENTGRID_SYSTEM_KEY, _presented_key(request))
            ):
                return _unauthorized()
            return await handle_eventgrid(request, self._eventgrid_function, self._invoke_value)
        if lower.startswith(ADMIN_FUNCTIONS) and self.admin is not None:
            if self.keys is not None and not self.keys.allows("admin", _presented_key(request)):
                return _unauthorized()
            return await self.admin.handle(request, path[len(ADMIN_FUNCTIONS) :].strip("/"))
        if lower.rstrip("/") == "/admin/host/status":
            if self.keys is not None and not self.keys.allows("admin", _presented_key(request)):
                return _unauthorized()
            return web.json_response({"state": "Running", "version": "devhost"})
        prefix = f"/{self.route_prefix}" if self.route_prefix else ""
        if prefix and not (lower == prefix.lower() or lower.startswith(prefix.lower() + "/")):
            if path == "/":
                return web.Response(text="devhost is running.\n")
            return web.Response(status=404)
        sub = path[len(prefix) :].lstrip("/")
        return await self._http_trigger(request, sub)

    def _eventgrid_function(self, name: str) -> FunctionInfo | None:
        found = self.eventgrid_functions.get(name)
        if found is None:
            found = next((f for n, f in self.eventgrid_functions.items() if n.lower() == name.lower()), None)
        return found

    async def _invoke_value(self, info: FunctionInfo, trigger: Any) -> Any:
        result = await self.run_function(lambda: self.invoker.invoke(info, trigger))
        if result.queue_writes:
            from devhost.triggers.queues import write_queue_outputs

            await self.run_function(lambda: write_queue_outputs(result.queue_writes, self.queue_encoding))
        return result

    queue_encoding = "base64"

    async def _http_trigger(self, request: web.Request, sub: str) -> web.StreamResponse:
        method = request.method.upper()
        matched: tuple[HttpRoute, dict[str, str]] | None = None
        for route in self.routes:
            params = route.template.match(sub)
            if params is None:
                continue
            if method not in route.methods:
                continue
            matched = (route, params)
            break
        if matched is None:
            return web.Response(status=404)
        route, params = matched
        if self.keys is not None and not self.keys.allows(route.auth_level, _presented_key(request)):
            log.info(
                "http trigger %s: 401 (no valid key for authLevel %s)", route.info.name, route.auth_level
            )
            return _unauthorized()
        body = await request.read()
        url = str(request.url)
        req = to_http_request(request, body, params, url)
        log.info("http trigger %s: %s %s", route.info.name, method, request.path)
        try:
            result = await self._invoke_value(route.info, req)
        except Exception as exc:
            log.error(
                "http trigger %s failed: %s: %s", route.info.name, type(exc).__name__, exc, exc_info=True
            )
            return web.Response(status=500)
        value = result.http_out if result.http_out is not None else result.value
        return to_web_response(value, route.info.name)
