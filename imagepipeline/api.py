"""The client's HTTP: the capture API at one base URL, with the caller's key or token sent only there.

The base URL is the one origin the client trusts (``https``, or ``http`` for ``localhost``, ``127.0.0.1`` and
``::1`` only). Every URL the server hands back (``captureStatusUri``, ``cancelPostUri``…) is followed only
when it is on that same origin: a server (or anything between) could name another host, and the key would
go with the request. Redirects are not followed for the same reason: urllib would resend the key header to
wherever the redirect points.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imagepipeline import __version__

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
KEY_HEADER = "x-functions-key"
_CAPTURE_ID = re.compile(r"capture-[a-z0-9-]{1,200}")
MAX_ANSWER_BYTES = 8 * 1024 * 1024


class UsageError(Exception):
    """What the user gave cannot work (a URL, an id, a file): exit code 3."""


class ApiError(Exception):
    """The API could not be reached, refused us, or answered something the client cannot follow."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class OriginRefused(ApiError):
    """A URL the server handed back is not on the base URL's origin: nothing was sent to it."""


Origin = tuple[str, str, int]


def origin_of(url: str) -> Origin:
    """(scheme, host, port) of ``url``, the port filled in; ``UsageError`` for a URL the client may not use."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError as exc:
        raise UsageError(f"{url!r} is not a usable URL: {exc}") from exc
    if scheme not in ("https", "http") or not host:
        raise UsageError(f"{url!r} is not an https URL (https://<app>.azurewebsites.net).")
    if scheme == "http" and host not in LOCAL_HOSTS:
        raise UsageError(
            f"{url!r} uses http: the key or token would travel in clear text. Use https "
            "(http is accepted for localhost, 127.0.0.1 and ::1 only)."
        )
    if parts.username or parts.password:
        raise UsageError("The URL carries credentials: pass the key with --key or IMAGEPIPELINE_KEY instead.")
    return scheme, host, port or (443 if scheme == "https" else 80)


def _shown(origin: Origin) -> str:
    scheme, host, port = origin
    return f"{scheme}://{host}:{port}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx comes back as an HTTPError answer, not followed with our headers


_OPENER = urllib.request.build_opener(_NoRedirect())


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


class CaptureApi:
    """``POST/GET /api/captures``, ``GET /api/captures/{id}`` and ``POST …/cancel`` at ``base_url``.

    ``auth`` gives the headers to send (the key or a bearer token); it is called per request so a token
    can be renewed, and its headers go only to ``base_url``'s origin.
    """

    def __init__(
        self, base_url: str, auth: Callable[[], dict[str, str]] | None = None, timeout: float = 30.0
    ) -> None:
        self.origin = origin_of(base_url)
        parts = urllib.parse.urlsplit(base_url)
        path = parts.path.rstrip("/") or "/api"
        self.api_root = urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc, path, "", ""))
        self.auth = auth or (lambda: {})
        self.timeout = timeout

    # -- URLs ------------------------------------------------------------------------------------------
    def captures_url(self) -> str:
        return f"{self.api_root}/captures"

    def status_url(self, capture_id: str) -> str:
        return f"{self.captures_url()}/{check_capture_id(capture_id)}"

    def cancel_url(self, capture_id: str) -> str:
        return f"{self.status_url(capture_id)}/cancel"

    def same_origin(self, url: Any, what: str) -> str:
        """``url`` if it is on the base URL's origin; else ``ApiError`` (nothing is sent to it)."""
        if not isinstance(url, str) or not url:
            raise ApiError(f"The API's answer has no {what}.")
        try:
            other = origin_of(url)
        except UsageError as exc:
            raise OriginRefused(f"Refusing the {what} the server sent: {exc}") from exc
        if other != self.origin:
            shown, mine = _shown(other), _shown(self.origin)
            raise OriginRefused(
                f"Refusing to follow the {what} the server sent: it points to {shown}, not to {mine} "
                "(the URL you gave). The client sends your key or token only to that origin; check the "
                "URL and what answers there."
            )
        return url

    # -- calls -----------------------------------------------------------------------------------------
    def start(self, request: dict[str, Any]) -> Answer:
        return self.send("POST", self.captures_url(), request)

    def status(self, url: str) -> Answer:
        return self.send("GET", self.same_origin(url, "captureStatusUri"))

    def cancel(self, url: str, reason: str | None = None) -> Answer:
        body = {"reason": reason} if reason else None
        return self.send("POST", self.same_origin(url, "cancelPostUri"), body)

    def list(self, runtime_status: str | None = None, top: int | None = None) -> Answer:
        query = {k: v for k, v in (("runtimeStatus", runtime_status), ("top", top)) if v}
        url = self.captures_url() + (f"?{urllib.parse.urlencode(query)}" if query else "")
        return self.send("GET", url)

    def send(self, method: str, url: str, body: Any = None) -> Answer:
        self.same_origin(url, "URL")  # the last guard before any header leaves
        headers = {
            "Accept": "application/json",
            "User-Agent": f"imagepipeline/{__version__}",
            **self.auth(),
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with _OPENER.open(req, timeout=self.timeout) as resp:
                raw, status, got = resp.read(MAX_ANSWER_BYTES), resp.status, dict(resp.headers)
        except urllib.error.HTTPError as exc:
            raw, status, got = exc.read(MAX_ANSWER_BYTES), exc.code, dict(exc.headers or {})
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(f"{method} {url} could not be sent: {reason}") from None
        text = raw.decode("utf-8", "replace")
        try:
            decoded: Any = json.loads(text) if text.strip() else None
        except ValueError:
            decoded = text
        return Answer(status, decoded, got)


def check_capture_id(value: str) -> str:
    """A capture id as the API forms them (``capture-…``: lowercase letters, digits, ``-``)."""
    if not _CAPTURE_ID.fullmatch(value):
        raise UsageError(
            f"{value[:80]!r} is not a capture id (capture-<vm>-<hash>, lowercase letters, digits and '-')."
        )
    return value


def error_text(answer: Answer) -> str:
    """The API's error body as one readable line or a few (never the whole body when it is large)."""
    body = answer.body
    if isinstance(body, dict):
        if isinstance(body.get("errors"), list):
            return "; ".join(
                f"{e.get('field')}: {e.get('message')}" for e in body["errors"] if isinstance(e, dict)
            )
        err = body.get("error")
        if isinstance(err, dict):
            return f"{err.get('code')}: {err.get('message')}"
    text = body if isinstance(body, str) else json.dumps(body)
    return f"HTTP {answer.status}: {text[:500]}"
