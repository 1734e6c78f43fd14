"""HTTP to the local stack (JSON in, JSON or text out) and a polling wait with a deadline."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    *,
    raw: bytes | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """Send ``body`` as JSON (or ``raw`` bytes as they are); answer (status, decoded body, headers).
    An error status is an answer, not an exception; a body that is not JSON comes back as text."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(url, method=method, data=data, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            got, status, answer_headers = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        got, status, answer_headers = exc.read(), exc.code, dict(exc.headers)
    text = got.decode("utf-8", "replace")
    try:
        return status, json.loads(text) if text else None, answer_headers
    except ValueError:
        return status, text, answer_headers


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.25) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
