"""The ARM simulator: request pipeline (auth, throttling, RBAC, faults, handler) and its HTTPS server.

``ArmSimulator`` is transport-free (``handle()`` takes method, target, headers and body) so tests
and servers share it; ``serve_arm`` runs it on a threaded HTTPS server. The pipeline order follows
ARM: authenticate, ARM throttling, RBAC, then the resource provider (fault injection, Compute
throttling, handler). Inspection lives outside the ARM namespace under ``/_sim``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import ssl
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from azsim.arm import urls
from azsim.arm.responses import HANDLERS, ArmRequest
from azsim.compute.backend import ComputeBackend
from azsim.compute.regions import normalize
from azsim.core.clock import Clock, MonotonicClock, SimClock, utc_iso, wall_time
from azsim.core.context import Reply, RequestContext
from azsim.core.errors import (
    ArmError,
    authorization_failed,
    invalid_authentication_token,
    linked_authorization_failed,
    subscription_not_found,
)
from azsim.core.faults import FaultEngine, FaultRules, LroFailureEffect, ResetEffect, StatusEffect
from azsim.core.latency import LatencyProfile
from azsim.core.lifecycle import Lifecycle
from azsim.core.lro import OperationStore, lro_headers, retry_headers
from azsim.core.rbac import Authorizer
from azsim.core.requestlog import AuthorizationLog, RequestLog, RequestRecord, safe_query
from azsim.core.throttling import Throttler
from azsim.interfaces import CopyFaultKind, DiskStore, InvalidToken, TokenVerifier
from azsim.world import World

log = logging.getLogger("azsim.arm")

ARM_AUDIENCE = "https://management.azure.com"
# Fault effects the handler applies itself (the others the pipeline applies before it).
_HANDLER_EFFECTS = ("replicationFailure", "vmCreateFailure")
_STATUS_CODES = {
    400: "BadRequest",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    reset: bool = False  # drop the connection with a TCP reset instead of answering


class ArmSimulator:
    """The simulated ARM endpoint for one world. Thread-safe; all state changes happen under one lock."""

    def __init__(
        self,
        world: World,
        disk_store: DiskStore,
        tokens: TokenVerifier,
        *,
        time_scale: float = 1.0,
        faults: FaultRules | None = None,
        seed: int = 0,
        latency: LatencyProfile | None = None,
        throttle: bool = True,
        clock: Clock | None = None,
        authorizations: AuthorizationLog | None = None,
    ) -> None:
        self.world = world
        self.tokens = tokens
        # On the simulated clock every duration is in simulated seconds: the time scale is 1.
        if isinstance(clock, SimClock):
            time_scale = 1.0
        self.time_scale = time_scale
        self.latency = latency or LatencyProfile()
        self.clock = clock or MonotonicClock()
        self.lock = threading.RLock()
        self.lifecycle = Lifecycle(self.clock, time_scale)
        if isinstance(self.clock, SimClock):
            self.clock.add_due_source(self._next_due)
        self.ops = OperationStore()
        self.throttler = Throttler(self.clock, time_scale, enabled=throttle)
        self.faults = FaultEngine(faults, seed)
        self.authorizer = Authorizer(world, authorizations)  # the blob front may share its log
        self.requests = RequestLog()
        self.backend = ComputeBackend(world, disk_store, self.lifecycle, self.ops, self.latency, seed=seed)
        self.backend.bind_authorizer(self.authorizer)  # role assignments made through ARM apply at once
        self._subscriptions = {s.id.lower() for s in world.subscriptions}

    def _next_due(self) -> float | None:
        with self.lock:
            return self.lifecycle.next_due()

    def stamp(self) -> str:
        """The current time as ARM spells it, on the simulator's clock (simulated in virtual mode)."""
        return utc_iso(dt.datetime.fromtimestamp(wall_time(self.clock), dt.UTC))

    # ---------------------------------------------------------------- CopyBehaviour (for the blob front)

    @property
    def copy_behaviour(self) -> ArmSimulator:
        return self

    def copy_seconds(self, size_bytes: int) -> float:
        return self.latency.copy_s(size_bytes) * self.time_scale

    def copy_fault(self, account: str, container: str, blob: str) -> CopyFaultKind | None:
        outcome = self.faults.for_copy(account, container, blob)
        if outcome is not None:
            self.requests.add(
                RequestRecord(
                    time=self.stamp(),
                    principal=None,
                    method="COPY",
                    path=f"/{account}/{container}/{blob}",
                    query="",
                    action="Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
                    status=0,
                    fault=f"copy:{outcome}",
                )
            )
        return outcome

    # ---------------------------------------------------------------- control

    def reset(self) -> None:
        """Restore the world as loaded: resources, operations, throttling buckets, fault counters, log."""
        with self.lock:
            self.lifecycle.clear()
            self.ops.clear()
            self.throttler.reset()
            self.faults.reset()
            self.requests.clear()
            self.authorizer.log.clear()
            self.backend.reset()

    def state(self) -> dict[str, Any]:
        with self.lock:
            self.lifecycle.run_due()
            state = self.backend.state()
            state["operations"] = [
                {"id": op.id, "status": op.status, "resource": op.resource_id, "startTime": op.start_time}
                for op in self.ops.all()
            ]
            state["faults"] = self.faults.counts()
            return state

    def _control(
        self, method: str, path: str, body: bytes = b"", query: dict[str, str] | None = None
    ) -> HttpResult:
        if path == "/_sim/clock" or path.startswith("/_sim/clock/"):
            return self._clock_control(method, path, body)
        if method == "GET" and path == "/_sim/requests":
            return _json(200, {"value": self.requests.records()})
        if method == "GET" and path == "/_sim/authorizations":
            return _json(200, self.authorizer.log.report((query or {}).get("principal")))
        if method == "GET" and path == "/_sim/counters":
            return _json(200, self.requests.counters())
        if method == "GET" and path == "/_sim/state":
            return _json(200, self.state())
        if method == "POST" and path == "/_sim/reset":
            self.reset()
            return _json(200, {"reset": True})
        if method == "GET" and path in ("/_sim", "/_sim/"):
            return _json(
                200,
                {
                    "endpoints": [
                        "/_sim/requests",
                        "/_sim/counters",
                        "/_sim/authorizations?principal={objectId}",
                        "/_sim/state",
                        "POST /_sim/reset",
                        "/_sim/clock",
                        "POST /_sim/clock/advance",
                        "POST /_sim/clock/holds",
                        "DELETE /_sim/clock/holds/{id}",
                    ]
                },
            )
        return _json(404, {"error": {"code": "NotFound", "message": f"No control endpoint {method} {path}."}})

    def _clock_control(self, method: str, path: str, body: bytes) -> HttpResult:
        """The simulated clock's loopback API (docs/virtual-time.md)."""
        clock = self.clock
        if not isinstance(clock, SimClock):
            if method == "GET" and path == "/_sim/clock":
                return _json(200, {"virtual": False, "timeScale": self.time_scale})
            return _json(
                409,
                {
                    "error": {
                        "code": "NotVirtual",
                        "message": "Start azsim with --virtual-clock to move its clock.",
                    }
                },
            )
        try:
            args = json.loads(body) if body.strip() else {}
        except json.JSONDecodeError:
            args = None
        if not isinstance(args, dict):
            return _json(
                400, {"error": {"code": "InvalidRequestContent", "message": "Expected a JSON object."}}
            )
        if method == "GET" and path == "/_sim/clock":
            return _json(200, clock.state())
        if method == "POST" and path == "/_sim/clock/advance":
            return self._advance(clock, args)
        if method == "POST" and path == "/_sim/clock/holds":
            return _json(201, {"id": clock.hold(str(args.get("reason") or "")), **clock.state()})
        if method == "DELETE" and path.startswith("/_sim/clock/holds/"):
            released = clock.release(path.rsplit("/", 1)[1])
            return _json(200 if released else 404, {"released": released, **clock.state()})
        return _json(404, {"error": {"code": "NotFound", "message": f"No clock endpoint {method} {path}."}})

    def _advance(self, clock: SimClock, args: dict[str, Any]) -> HttpResult:
        to, by = args.get("to"), args.get("by")
        bad = [
            name
            for name, value in (("to", to), ("by", by))
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)))
        ]
        if bad or (to is not None and by is not None):
            message = "Give at most one of 'to' (simulated seconds) and 'by' (seconds), as numbers."
            return _json(400, {"error": {"code": "InvalidClockAdvance", "message": message}})
        moved = clock.advance(
            to=None if to is None else float(to),
            by=None if by is None else float(by),
            if_idle=bool(args.get("ifIdle", False)),
        )
        if moved:  # apply what fell due now, so that a SAS also expires for the blob data plane
            with self.lock:
                self.lifecycle.run_due()
        return _json(200, {"moved": moved, **clock.state()})

    # ---------------------------------------------------------------- ARM pipeline

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> HttpResult:
        started = time.monotonic()
        parts = urlsplit(target)
        path = unquote(parts.path).rstrip("/") or "/"
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if path == "/_sim" or path.startswith("/_sim/"):
            return self._control(method, path, body, query)
        if isinstance(self.clock, SimClock):
            with self.clock.busy():
                return self._handle_arm(method, path, query, headers, body, started)
        return self._handle_arm(method, path, query, headers, body, started)

    def _handle_arm(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        started: float,
    ) -> HttpResult:
        lower_headers = {k.lower(): v for k, v in headers.items()}
        record = RequestRecord(
            time=self.stamp(),
            principal=None,
            method=method,
            path=path,
            query=safe_query(query),
            action=None,
            status=0,
        )
        extra_headers: dict[str, str] = {}
        try:
            result = self._pipeline(method, path, query, lower_headers, body, record, extra_headers)
        except ArmError as err:
            record.error_code = err.code
            record.throttled = err.status == 429 and record.fault is None
            result = _json(
                err.status, err.body() if method != "HEAD" else None, {**extra_headers, **err.headers}
            )
        except Exception:
            log.exception("azsim internal error on %s %s", method, path)
            internal = ArmError(500, "InternalServerError", "azsim hit an internal error; see its log.")
            result = _json(500, internal.body())
        record.status = 0 if result.reset else result.status
        record.duration_ms = round((time.monotonic() - started) * 1000, 2)
        self.requests.add(record)
        request_id = str(uuid.uuid4())
        result.headers.setdefault("x-ms-request-id", request_id)
        result.headers.setdefault(
            "x-ms-correlation-request-id", lower_headers.get("x-ms-correlation-request-id", request_id)
        )
        result.headers.setdefault(
            "x-ms-routing-request-id", f"LOCAL:{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}:{request_id}"
        )
        if "x-ms-client-request-id" in lower_headers:
            result.headers.setdefault("x-ms-client-request-id", lower_headers["x-ms-client-request-id"])
        result.headers.setdefault("Cache-Control", "no-cache")
        result.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return result

    def _authenticate(self, headers: dict[str, str]) -> str:
        auth = headers.get("authorization")
        if not auth:
            raise ArmError(
                401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
            )
        try:
            return self.tokens.verify(auth, audience=ARM_AUDIENCE).object_id
        except InvalidToken as exc:
            raise invalid_authentication_token(str(exc)) from None

    def _pipeline(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        raw_body: bytes,
        record: RequestRecord,
        extra_headers: dict[str, str],
    ) -> HttpResult:
        found = urls.match(method, path)
        if found is None:
            if urls.path_known(path):
                raise ArmError(
                    405, "HttpMethodNotAllowed", f"The HTTP method '{method}' is not supported for '{path}'."
                )
            raise ArmError(
                404,
                "InvalidResourceType",
                f"azsim does not model '{path}'. See docs/azsim-arm.md for the ARM surface it serves.",
            )
        route, params = found
        record.action = route.action
        if "api-version" not in query:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        principal = self._authenticate(headers)
        record.principal = principal
        sub = params["sub"]
        if sub.lower() not in self._subscriptions:
            raise subscription_not_found(sub)
        extra_headers.update(self.throttler.check_arm(sub, principal, route.kind))
        if route.authorize and not self.authorizer.is_allowed(principal, route.action, params["scope"]):
            raise authorization_failed(principal, route.action, params["scope"])
        body: dict[str, Any] = {}
        if raw_body.strip():
            try:
                parsed = json.loads(raw_body)
            except json.JSONDecodeError as exc:
                raise ArmError(
                    400,
                    "InvalidRequestContent",
                    f"The request content was invalid and could not be deserialized: '{exc.msg}'.",
                ) from None
            if not isinstance(parsed, dict):
                raise ArmError(400, "InvalidRequestContent", "The request content must be a JSON object.")
            body = parsed
        effects = self.faults.for_request(
            route.action,
            method,
            path,
            kinds=("status", "connectionReset", "lroFailure", "replicationFailure", "vmCreateFailure"),
        )
        for effect in effects:
            if isinstance(effect, ResetEffect):
                record.fault = "connectionReset"
                return HttpResult(0, reset=True)
            if isinstance(effect, StatusEffect):
                record.fault = f"status:{effect.status}"
                err = ArmError(
                    effect.status,
                    effect.code or _STATUS_CODES.get(effect.status, "InternalServerError"),
                    effect.message or f"Injected fault: {effect.status} from azsim fault rules.",
                )
                retry = (
                    effect.retry_after
                    if effect.retry_after is not None
                    else (1.0 if effect.status in (429, 503) else None)
                )
                if retry is not None:
                    # retryAfter is in Azure seconds, like every duration azsim takes.
                    err.headers.update(retry_headers(self.lifecycle.real(retry), require_retry_after=True))
                raise err
        api_version = query["api-version"]
        with self.lock:
            self.lifecycle.run_due()
            if route.crp is not None:
                extra_headers.update(self.throttler.check_crp(sub, "region", route.crp, params["scope"]))
            ctx = RequestContext(
                principal=principal,
                api_version=api_version,
                base_url=f"https://{headers.get('host', 'localhost')}",
                authorize_linked=lambda action, scope: self._linked(principal, action, scope),
                allowed=lambda action, scope: self.authorizer.is_allowed(
                    principal, action, scope, record_denial=False
                ),
                effects=[e for e in effects if getattr(e, "type", "") in _HANDLER_EFFECTS],
                query=query,
            )
            lro_fault = next((e for e in effects if isinstance(e, LroFailureEffect)), None)
            if lro_fault is not None and method != "GET" and route.handler != "vm_generalize":
                record.fault = f"lroFailure:{lro_fault.code}"
                reply = self._failing_lro(route, params, body, ctx, lro_fault)
            else:
                handler_fault = next((str(e.type) for e in ctx.effects), None)
                if handler_fault is not None:
                    record.fault = handler_fault
                reply = HANDLERS[route.handler](self.backend, ArmRequest(params, body, ctx, route.action))
        return _json(reply.status, reply.body, {**extra_headers, **reply.headers}, head=method == "HEAD")

    def _linked(self, principal: str, action: str, scope: str) -> None:
        if not self.authorizer.is_allowed(principal, action, scope):
            raise linked_authorization_failed(principal, action, scope)

    def _failing_lro(
        self,
        route: urls.Route,
        params: dict[str, str],
        body: dict[str, Any],
        ctx: RequestContext,
        fault: LroFailureEffect,
    ) -> Reply:
        """Accept the request as Azure would, change nothing, and let its operation end Failed/Canceled."""
        action = route.action.lower()
        family = (
            "DiskOperations"
            if "/disks/" in action or "/snapshots/" in action
            else "capsOperations"
            if "/galleries/" in action
            else "operations"
        )
        location = normalize(str(body.get("location") or self.world.regions[0]))
        op = self.backend.start_op(
            ctx, family=family, location=location, resource_id=params["scope"], sub=params["sub"]
        )
        status = {"PUT": 201 if "virtualmachines/write" in action else 202, "PATCH": 200}.get(
            route.method, 202
        )
        if "/galleries/" in action and route.method == "PUT":
            status = 201

        def fail(_at: float) -> None:
            op.finish(fault.status, error={"code": fault.code, "message": fault.message})

        self.lifecycle.schedule(self.latency.poll_interval_s, fail)
        poll = self.lifecycle.real(self.latency.poll_interval_s)
        return Reply(
            status,
            None,
            lro_headers(ctx.base_url, op, location=route.method in ("POST", "DELETE"), poll_real_s=poll),
        )


def _json(status: int, body: Any, headers: dict[str, str] | None = None, *, head: bool = False) -> HttpResult:
    out = dict(headers or {})
    if body is None or head or status == 204:
        return HttpResult(status, out, b"")
    out["Content-Type"] = "application/json; charset=utf-8"
    return HttpResult(status, out, json.dumps(body).encode())


# ------------------------------------------------------------------------------ HTTPS server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ArmHttpsServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle + delayed ACK add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        result = self.server.sim.handle(self.command, self.path, dict(self.headers.items()), body)
        if result.reset:
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            except OSError:
                pass
            return
        self.send_response(result.status)
        for key, value in result.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(result.body)))
        self.end_headers()
        if self.command != "HEAD" and result.body:
            self.wfile.write(result.body)

    def finish(self) -> None:
        try:
            super().finish()
        except (OSError, ValueError):
            pass

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _serve


class ArmHttpsServer(ThreadingHTTPServer):
    """Threaded HTTPS server; the TLS handshake runs in the worker thread, not the accept loop."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, sim: ArmSimulator, host: str, port: int, ssl_context: ssl.SSLContext) -> None:
        self.sim = sim
        self.ssl_context = ssl_context
        super().__init__((host, port), _Handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base_url(self) -> str:
        host = str(self.server_address[0])
        return f"https://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            _Handler(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def start(self) -> ArmHttpsServer:
        self._thread = threading.Thread(target=self.serve_forever, name="azsim-arm", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        super().shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def serve_arm(sim: ArmSimulator, host: str, port: int, ssl_context: ssl.SSLContext) -> ArmHttpsServer:
    """Start ``sim`` on a threaded HTTPS server (port 0 = any free port); stop it with ``.shutdown()``."""
    return ArmHttpsServer(sim, host, port, ssl_context).start()
