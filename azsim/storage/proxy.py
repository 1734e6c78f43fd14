"""The blob front: an HTTPS reverse proxy before Azurite's blob service that makes async copies take time.

Customer storage accounts are reached through it (``https://127.0.0.1:<port>/<account>``). It forwards
every request unchanged (``Host`` included, so Shared Key and SAS signatures and Azurite's same-host
copy-source check all still hold), with one exception: Azurite finishes an async Copy Blob at once,
while Azure's copies take minutes and can fail. So for a Copy Blob through the front, Azurite does the
real copy (real bytes) and the front then (``azsim.storage.copies``), for ``CopyBehaviour.copy_seconds(size)``, rewrites that
destination's Get Blob / Get Blob Properties answers to ``x-ms-copy-status: pending`` with advancing
``x-ms-copy-progress``, then ``success``; or, when ``CopyBehaviour.copy_fault`` says so, ``failed``,
``aborted`` or a stall (progress freezes, never completes). Abort Copy Blob on a simulated pending copy
answers 204 and leaves it ``aborted`` with a zero-length blob, as Azure does. A copy whose source SAS
stops working (``endGetAccess``) while it is pending ends ``failed``, because Azure needs the source
readable until the copy is done. Nothing here logs a query string: SAS signatures stay out of logs.

With a ``data_auth`` (``azsim.storage.rbac``), bearer-token requests to the world's storage accounts are
first checked against the world's role assignments and refused with ``403
AuthorizationPermissionMismatch`` when the principal lacks the operation's permission, as Azure does.

Not modelled: copy state in List Blobs (``include=copy``), writes to a destination with a pending
copy (Azure: 409 ``PendingCopyOperation``), and partial content while pending.
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import socket
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from azsim.core.clock import Clock, SimClock, wall_time
from azsim.interfaces import CopyBehaviour
from azsim.storage import delegation
from azsim.storage.copies import SimulatedCopy

if TYPE_CHECKING:
    from azsim.storage.rbac import BlobDataAuthorizer

log = logging.getLogger("azsim.storage.proxy")

# Source-readability checks while a copy is pending: at most this often per copy.
_SOURCE_CHECK_INTERVAL = 0.2
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
}
_SOURCE_GONE_DESCRIPTION = (
    '{status} CannotVerifyCopySource "The copy source could not be read any more: '
    'its SAS was revoked or expired, or the source was deleted."'
)


class _Upstream:
    """One keep-alive HTTPS connection to Azurite, re-opened when Azurite has closed it."""

    def __init__(self, host: str, port: int, ctx: ssl.SSLContext) -> None:
        self.host, self.port, self.ctx = host, port, ctx
        self.conn: http.client.HTTPSConnection | None = None

    def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> tuple[http.client.HTTPResponse, bytes]:
        for attempt in (1, 2):
            fresh = self.conn is None
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=120)
            try:
                self.conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    self.conn.putheader(name, value)
                if body is not None and not any(n.lower() == "content-length" for n, _ in headers):
                    self.conn.putheader("Content-Length", str(len(body)))
                self.conn.endheaders(body if body else None)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.close()
                return resp, data
            except (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine, ssl.SSLError):
                self.close()
                # A reused keep-alive connection may have been closed by Azurite meanwhile: retry once.
                if fresh or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class _FrontHandler(BaseHTTPRequestHandler):
    server: BlobFront
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.upstream = _Upstream(
            self.server.upstream_host, self.server.upstream_port, self.server.upstream_ctx
        )

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.upstream.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines carry SAS query strings; the per-request debug log below strips them

    # -- request plumbing ---------------------------------------------------------------------

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else None

    def _forward_headers(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP]

    def _send(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response_only(status, reason)
        has_length = False
        for name, value in headers:
            lname = name.lower()
            if lname in _HOP_BY_HOP:
                continue
            if lname == "content-length":
                if self.command == "HEAD":
                    has_length = True
                    self.send_header(name, value)
                continue
            self.send_header(name, value)
        if self.command != "HEAD" and status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        elif not has_length and self.command == "HEAD":
            self.send_header("Content-Length", "0")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def _handle(self) -> None:
        clock = self.server.sim_clock
        if clock is None:
            self._handle_request()
            return
        with clock.busy():  # a skip of virtual time waits for this request
            self._handle_request()

    def _handle_request(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        url = urlsplit(self.path)
        query = {k.lower(): v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        parts = [unquote(p) for p in url.path.lstrip("/").split("/", 2)]
        key = (parts[0], parts[1], parts[2]) if len(parts) == 3 and all(parts) else None
        front = self.server
        method = self.command
        if front.data_auth is not None and parts[0] and self._refused(parts, query):
            return
        if delegation.is_key_request(method, parts[1] if len(parts) > 1 else None, query):
            refusal = delegation.key_expiry_refusal(
                body, front.wall_now(), {k.lower(): v for k, v in self.headers.items()}
            )
            if refusal is not None:  # Azure's seven-day limit (azsim.storage.delegation)
                self._send(*refusal)
                return
        headers = self._forward_headers()
        try:
            resp, data = self.upstream.request(method, self.path, headers, body)
        except OSError as e:
            log.warning("blob front: upstream %s %s failed: %s", method, url.path, e)
            self._send(502, "Bad Gateway", [("Content-Type", "text/plain")], b"Azurite is not reachable\n")
            return
        out_headers = resp.getheaders()
        status, reason = resp.status, resp.reason
        log.debug("blob front: %s %s -> %s", method, url.path, status)
        if key is not None:
            status, reason, out_headers, data = front.shape(
                method, key, query, self.headers, status, reason, out_headers, data
            )
        self._send(status, reason, out_headers, data)

    # Every method goes through the same forwarding path (http.server dispatches on do_<METHOD>).
    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_OPTIONS = do_PATCH = _handle

    def _refused(self, parts: list[str], query: dict[str, str]) -> bool:
        """Answer 403 (and return True) if RBAC refuses this bearer-token request; Azurite never sees it."""
        from azsim.storage.rbac import permission_mismatch_response

        auth = self.server.data_auth
        assert auth is not None
        container = parts[1] if len(parts) > 1 and parts[1] else None
        blob = parts[2] if len(parts) > 2 and parts[2] else None
        denial = auth.check(self.command, parts[0], container, blob, query, self.headers.get("Authorization"))
        if denial is None:  # a user-delegation SAS: its delegator's roles (azsim.storage.delegation)
            denial = delegation.delegated_denial(auth, self.command, parts[0], container, blob, query)
        if denial is None:
            return False
        log.info(
            "blob front: %s %s refused: principal %s lacks %s on %s",
            self.command,
            urlsplit(self.path).path,
            denial.object_id,
            denial.permission.action,
            denial.scope,
        )
        lowered = {k.lower(): v for k, v in self.headers.items()}
        self._send(*permission_mismatch_response(lowered, head=self.command == "HEAD"))
        return True


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    lname = name.lower()
    for k, v in headers:
        if k.lower() == lname:
            return v
    return None


def _set_header(headers: list[tuple[str, str]], name: str, value: str | None) -> list[tuple[str, str]]:
    lname = name.lower()
    out = [(k, v) for k, v in headers if k.lower() != lname]
    if value is not None:
        out.append((name, value))
    return out


def _invalid_range(headers: list[tuple[str, str]]) -> tuple[int, str, list[tuple[str, str]], bytes]:
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><Error><Code>InvalidRange</Code>'
        b"<Message>The range specified is invalid for the current size of the resource.</Message></Error>"
    )
    keep = {"x-ms-request-id", "x-ms-client-request-id", "x-ms-version", "date", "server"}
    out = [(k, v) for k, v in headers if k.lower() in keep]
    out += [
        ("Content-Type", "application/xml"),
        ("x-ms-error-code", "InvalidRange"),
        ("Content-Range", "bytes */0"),
    ]
    return 416, "The range specified is invalid for the current size of the resource.", out, body


class BlobFront(ThreadingHTTPServer):
    """The HTTPS blob front before Azurite (see module docstring). ``start()`` serves in a thread."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(
        self,
        *,
        upstream_host: str,
        upstream_port: int,
        server_ctx: ssl.SSLContext,
        upstream_ctx: ssl.SSLContext,
        copy_behaviour: CopyBehaviour,
        host: str = "127.0.0.1",
        port: int = 0,
        unsimulated_accounts: frozenset[str] = frozenset(),
        data_auth: BlobDataAuthorizer | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__((host, port), _FrontHandler)
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.server_ctx = server_ctx
        self.upstream_ctx = upstream_ctx
        self.copy_behaviour = copy_behaviour
        self.unsimulated_accounts = unsimulated_accounts
        self.data_auth = data_auth
        self._copies: dict[tuple[str, str, str], SimulatedCopy] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._clock: Any = time.monotonic
        self._wall: Any = time.time
        self.sim_clock: SimClock | None = None
        if clock is not None:
            self.use_clock(clock)

    def use_clock(self, clock: Clock) -> None:
        """Time copies on ``clock``; on a ``SimClock`` also report in-flight requests and copy ends."""
        self._clock = clock.now
        self._wall = lambda: wall_time(clock)
        if isinstance(clock, SimClock):
            self.sim_clock = clock
            clock.add_due_source(self.next_due)

    def wall_now(self) -> float:
        """Wall-clock epoch seconds on the front's clock (simulated under a virtual clock)."""
        return float(self._wall())

    def next_due(self) -> float | None:
        """The earliest time a simulated copy changes state by itself."""
        with self._lock:
            dues = [d for d in (c.next_due() for c in self._copies.values()) if d is not None]
        return min(dues) if dues else None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="azsim-blob-front", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshake in the worker thread, so one slow client never blocks accept().
        sock: socket.socket = request
        try:
            tls = self.server_ctx.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError):
            sock.close()
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        finally:
            try:
                tls.close()
            except OSError:
                pass

    # -- the copy simulation -------------------------------------------------------------------

    def shape(
        self,
        method: str,
        key: tuple[str, str, str],
        query: dict[str, str],
        req_headers: Any,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        comp = query.get("comp")
        if method == "PUT" and comp is None and req_headers.get("x-ms-copy-source"):
            return self._on_copy_started(key, req_headers, status, reason, headers, body)
        with self._lock:
            sim = self._copies.get(key)
        if sim is None:
            return status, reason, headers, body
        if method in ("GET", "HEAD") and comp is None and status in (200, 206):
            ranged = method == "GET" and bool(req_headers.get("x-ms-range") or req_headers.get("Range"))
            return self._on_read(key, sim, status, reason, headers, body, ranged=ranged)
        if method == "PUT" and comp == "copy" and req_headers.get("x-ms-copy-action", "").lower() == "abort":
            return self._on_abort(sim, query, status, reason, headers, body)
        if (
            method in ("PUT", "DELETE")
            and comp in (None, "page", "block", "blocklist", "appendblock")
            and 200 <= status < 300
        ):
            with self._lock:  # the blob was rewritten or deleted: its copy state is gone
                self._copies.pop(key, None)
        return status, reason, headers, body

    def _on_copy_started(
        self,
        key: tuple[str, str, str],
        req_headers: Any,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        sync = req_headers.get("x-ms-requires-sync", "").lower() == "true"
        if status != 202 or sync or req_headers.get("x-ms-blob-type") or key[0] in self.unsimulated_accounts:
            with self._lock:
                self._copies.pop(key, None)
            return status, reason, headers, body
        copy_id = _header(headers, "x-ms-copy-id") or str(uuid.uuid4())
        fault = self.copy_behaviour.copy_fault(*key)
        sim = SimulatedCopy(
            copy_id=copy_id,
            source_url=req_headers.get("x-ms-copy-source", ""),
            fault=fault,
            started=self._clock(),
            started_wall=self._wall(),
        )
        if fault is None and float(self.copy_behaviour.copy_seconds(1)) <= 0:
            # Instant copies (time scale 0) need no simulation; Azurite's answer is the truth.
            with self._lock:
                self._copies.pop(key, None)
            return status, reason, headers, body
        source = self._head_source(sim.source_url)
        if source is not None and source.status == 200:
            sim.learn_size(int(source.getheader("Content-Length") or 0), self.copy_behaviour)
        with self._lock:
            self._copies[key] = sim
        log.info("blob front: copy into %s/%s/%s simulated (fault=%s)", *key, fault)
        return status, reason, _set_header(headers, "x-ms-copy-status", "pending"), body

    def _on_read(
        self,
        key: tuple[str, str, str],
        sim: SimulatedCopy,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        ranged: bool = False,
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        if _header(headers, "x-ms-copy-id") != sim.copy_id:
            with self._lock:  # another copy replaced this one directly on Azurite
                self._copies.pop(key, None)
            return status, reason, headers, body
        progress = _header(headers, "x-ms-copy-progress") or ""
        total = progress.partition("/")[2]
        size = int(total) if total.isdigit() else int(_header(headers, "content-length") or 0)
        now = self._clock()
        with self._lock:
            sim.learn_size(size, self.copy_behaviour)
            state = sim.view(now)
            check_source = state[0] == "pending" and now - sim.last_source_check >= _SOURCE_CHECK_INTERVAL
            if check_source:
                sim.last_source_check = now
        if check_source:
            source_status = self._source_status(sim.source_url)
            if source_status is not None and source_status >= 400:
                with self._lock:
                    sim.fail(now, _SOURCE_GONE_DESCRIPTION.format(status=source_status))
                    state = sim.view(now)
        copy_status, copied, completed, description = state
        headers = _set_header(headers, "x-ms-copy-status", copy_status)
        headers = _set_header(headers, "x-ms-copy-progress", f"{copied}/{sim.size}")
        headers = _set_header(
            headers,
            "x-ms-copy-completion-time",
            email.utils.formatdate(completed, usegmt=True) if completed is not None else None,
        )
        headers = _set_header(headers, "x-ms-copy-status-description", description)
        if copy_status in ("failed", "aborted"):
            # Azure leaves the destination with zero length when a copy ends without success.
            headers = _set_header(headers, "Content-Range", None)
            headers = _set_header(headers, "Content-MD5", None)
            headers = _set_header(headers, "Content-Length", "0")
            headers = _set_header(headers, "x-ms-blob-content-length", None)
            if ranged:
                # Any range of an empty blob is unsatisfiable; the SDK then re-reads without a range.
                return _invalid_range(headers)
            return 200, "OK", headers, b""
        return status, reason, headers, body

    def _on_abort(
        self,
        sim: SimulatedCopy,
        query: dict[str, str],
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        # Azurite has authenticated the request and matched the copy id before saying
        # NoPendingCopyOperation (its copy finished at once), so the caller may abort ours.
        if status != 409 or _header(headers, "x-ms-error-code") != "NoPendingCopyOperation":
            return status, reason, headers, body
        if query.get("copyid") != sim.copy_id:
            return status, reason, headers, body
        now = self._clock()
        with self._lock:
            if sim.view(now)[0] != "pending":
                return status, reason, headers, body
            sim.abort(now)
        keep = {"x-ms-request-id", "x-ms-client-request-id", "x-ms-version", "date", "server"}
        return 204, "No Content", [(k, v) for k, v in headers if k.lower() in keep], b""

    def _source_status(self, source_url: str) -> int | None:
        """HTTP status of a HEAD on the copy source, when it is one of ours and carries a SAS."""
        resp = self._head_source(source_url)
        return resp.status if resp is not None else None

    def _head_source(self, source_url: str) -> http.client.HTTPResponse | None:
        """HEAD the copy source on Azurite, when it is one of ours and carries a SAS."""
        src = urlsplit(source_url)
        if "sig=" not in src.query or src.hostname not in ("127.0.0.1", "localhost"):
            return None
        if src.port not in (self.port, self.upstream_port):
            return None
        upstream = _Upstream(self.upstream_host, self.upstream_port, self.upstream_ctx)
        try:
            resp, _ = upstream.request(
                "HEAD",
                f"{src.path}?{src.query}",
                [("Host", src.netloc), ("x-ms-version", "2021-08-06")],
                None,
            )
            return resp
        except OSError:
            return None
        finally:
            upstream.close()
