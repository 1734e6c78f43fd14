"""The engine's clock: real UTC time, a virtual clock, or the virtual clock of a clock owner.

A virtual clock never moves with wall time: it stands still until the engine skips it to the next
timer, which the engine does only when nothing is runnable (see docs/virtual-time.md). The
engine persists a standalone virtual clock's time so that it never goes backwards across restarts.
``OwnerClock`` is the virtual clock of another process that owns the time of a whole local cloud
(azsim's ``/_sim/clock``): devhost reads the time from it and asks it to skip, and the owner
refuses while it has work in flight or a hold is open, and stops early at its own next event.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit


def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock:
    """Real time. ``virtual`` is False and ``advance_to`` is not supported."""

    virtual = False
    persist = False

    def now(self) -> datetime:
        return utcnow()

    def timestamp(self) -> float:
        return self.now().timestamp()

    def advance_to(self, when: float) -> bool:  # pragma: no cover - real time cannot jump
        raise RuntimeError("the real clock cannot jump; start the engine with virtual_clock=True")


class VirtualClock(Clock):
    """A clock that stands still; ``advance_to(t)`` moves it to ``t`` if that is later."""

    virtual = True
    persist = True

    def __init__(self, start: float | None = None) -> None:
        self._now = utcnow().timestamp() if start is None else start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)

    def timestamp(self) -> float:
        with self._lock:
            return self._now

    def advance_to(self, when: float) -> bool:
        with self._lock:
            if when > self._now:
                self._now = when
                return True
            return False


class ClockOwnerError(RuntimeError):
    """The clock owner could not be reached or answered something unexpected."""


class OwnerClock(VirtualClock):
    """The virtual time of a clock owner (``GET``/``POST {url}/advance``; JSON, loopback only).

    The owner counts simulated seconds from an epoch; this clock is ``epoch + seconds``, cached
    between calls (the owner's time moves only when someone asks it to, and devhost re-reads it
    whenever it asks to skip).
    """

    persist = False

    def __init__(self, url: str, *, cafile: str | None = None, timeout: float = 10.0) -> None:
        parts = urlsplit(url.rstrip("/"))
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ClockOwnerError(f"the clock URL must be on the loopback interface, got {url!r}")
        self._parts = parts
        self._timeout = timeout
        cafile = cafile or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
        self._ssl = ssl.create_default_context(cafile=cafile) if parts.scheme == "https" else None
        self._conn: http.client.HTTPConnection | None = None
        self._call_lock = threading.Lock()
        state = self._call("GET", "")
        if not state.get("virtual"):
            raise ClockOwnerError(
                f"the clock at {url} is not virtual; start azsim with --virtual-clock to share its clock"
            )
        self.epoch = float(state["epoch"])
        super().__init__(self.epoch + float(state["now"]))

    def _connect(self) -> http.client.HTTPConnection:
        host, port = self._parts.hostname or "127.0.0.1", self._parts.port
        if self._ssl is not None:
            return http.client.HTTPSConnection(host, port, timeout=self._timeout, context=self._ssl)
        return http.client.HTTPConnection(host, port, timeout=self._timeout)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        with self._call_lock:
            for attempt in (1, 2):  # one retry on a keep-alive connection the owner has closed
                try:
                    if self._conn is None:
                        self._conn = self._connect()
                    self._conn.request(method, self._parts.path + path, body=payload, headers=headers)
                    resp = self._conn.getresponse()
                    text = resp.read()
                    if resp.status >= 400:
                        raise ClockOwnerError(f"clock owner answered {resp.status}: {text[:300]!r}")
                    answer: dict[str, Any] = json.loads(text)
                    return answer
                except (OSError, http.client.HTTPException) as exc:
                    if self._conn is not None:
                        self._conn.close()
                    self._conn = None
                    if attempt == 2:
                        raise ClockOwnerError(f"the clock owner is unreachable: {exc}") from None
        raise AssertionError("unreachable")

    def _take(self, state: dict[str, Any]) -> None:
        with self._lock:
            self._now = max(self._now, self.epoch + float(state["now"]))

    def refresh(self) -> None:
        self._take(self._call("GET", ""))

    def advance_to(self, when: float) -> bool:
        """Ask the owner to skip to ``when`` (or to its own earlier event); False if it refused."""
        state = self._call("POST", "/advance", {"to": when - self.epoch, "ifIdle": True})
        before = self.timestamp()
        self._take(state)
        return bool(state.get("moved")) or self.timestamp() > before
