"""No notice to an internal address, at delivery (activities.notices): the URL is checked again, every
address its host resolves to is checked (DNS rebinding), the connection goes to the checked address, and
redirects are not followed.

Names are resolved by an injected resolver stub, so a name can "resolve" to 169.254.169.254 or 10.0.0.1
without any DNS; ``socket.create_connection`` is replaced by a tripwire in the refusal tests, so they
prove that nothing was sent. The only real traffic goes to receivers on 127.0.0.1.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from activities.notices import deliver_webhook, webhook_from_setting
from azsim.certs import ensure_certs
from shared.settings import get_settings


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Production's default (no loopback webhooks), and a tripwire on every outgoing connection."""
    monkeypatch.delenv("NOTICE_ALLOW_LOOPBACK_WEBHOOKS", raising=False)
    get_settings.cache_clear()
    attempts: list[Any] = []

    def tripwire(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        attempts.append(address)
        raise AssertionError(f"a connection to {address} was attempted")

    monkeypatch.setattr(socket, "create_connection", tripwire)
    return attempts


def _resolver(answers: dict[str, list[str]], asked: list[str]) -> Any:
    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[host]

    return resolve


@pytest.mark.parametrize(
    "answer",
    [
        ["169.254.169.254"],  # the instance metadata endpoint
        ["10.0.0.1"],
        ["127.0.0.1"],
        ["::ffff:169.254.169.254"],
        ["fd00::1"],
        ["20.60.1.1", "10.0.0.1"],  # a public answer beside an internal one: rebinding bait
    ],
)
def test_a_name_resolving_to_an_internal_address_is_refused_before_any_connection(
    no_connections: list[Any], answer: list[str]
) -> None:
    asked: list[str] = []
    waits: list[float] = []
    d = deliver_webhook(
        "https://hooks.contoso.test/capture",
        b"{}",
        "n1",
        resolve=_resolver({"hooks.contoso.test": answer}, asked),
        wait=waits.append,
    )
    assert not d.delivered and d.attempts == 1 and waits == []  # refused once, never retried
    assert d.error and "hooks.contoso.test resolves to" in d.error, d.error
    assert answer[-1].replace("::ffff:", "") in d.error, d.error
    assert asked == ["hooks.contoso.test"] and no_connections == []


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/metadata",
        "https://0xa9fea9fe/metadata",
        "http://hooks.contoso.test/capture",
        "https://hooks.contoso.test/capture\r\nX-Evil: 1",
        "https://user:pw@hooks.contoso.test/capture",
    ],
)
def test_a_url_breaking_the_rules_is_refused_at_delivery_too(no_connections: list[Any], url: str) -> None:
    # A URL held by an app setting, or recorded before the rule (a replay), is checked here as well.
    asked: list[str] = []
    posts: list[str] = []

    def post(u: str, body: bytes, nid: str) -> tuple[int, str | None]:
        posts.append(u)
        return 204, None

    for kw in ({"post": post}, {}):
        d = deliver_webhook(url, b"{}", "n1", resolve=_resolver({}, asked), wait=lambda s: None, **kw)  # type: ignore[arg-type]
        assert not d.delivered and d.attempts == 0 and (d.error or "").startswith("refused"), d
        assert "pw" not in (d.error or "")
    assert posts == [] and asked == [] and no_connections == []


def test_a_setting_holding_an_internal_url_is_refused(
    no_connections: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTICE_WEBHOOK_UNITINTERNAL", "https://10.1.2.3/hook?code=k3y")
    url, shown, problem = webhook_from_setting("NOTICE_WEBHOOK_UNITINTERNAL")
    assert url is not None and problem is None
    d = deliver_webhook(url, b"{}", "n1", shown=shown, wait=lambda s: None)
    assert not d.delivered and d.attempts == 0 and "10.1.2.3 is a private address" in (d.error or "")
    assert "k3y" not in d.model_dump_json() and no_connections == []


# --- what is delivered: pinned to the checked address, redirects not followed ------------------


class Receiver:
    """A local HTTP server answering every POST with ``status`` (and a Location for redirects)."""

    def __init__(self, status: int = 204, location: str | None = None) -> None:
        self.requests: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append({"path": self.path, "host": self.headers.get("Host", "")})
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def loopback_allowed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("NOTICE_ALLOW_LOOPBACK_WEBHOOKS", "true")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_post_goes_to_the_checked_address_with_the_name_as_host(loopback_allowed: None) -> None:
    asked: list[str] = []
    with Receiver() as hook:
        # Only the stub knows this name: a second, unchecked lookup would fail the delivery.
        d = deliver_webhook(
            f"http://hooks.localhost:{hook.port}/capture?x=1",
            b'{"a":1}',
            "n1",
            resolve=_resolver({"hooks.localhost": ["127.0.0.1"]}, asked),
        )
    assert d.delivered and d.attempts == 1 and d.status_code == 204, d
    assert hook.requests == [{"path": "/capture?x=1", "host": f"hooks.localhost:{hook.port}"}]
    assert asked == ["hooks.localhost"]


def test_a_redirect_is_a_failed_delivery_and_is_not_followed(loopback_allowed: None) -> None:
    with Receiver() as target, Receiver(302, f"http://127.0.0.1:{target.port}/elsewhere") as hook:
        d = deliver_webhook(f"http://127.0.0.1:{hook.port}/capture", b"{}", "n1", wait=lambda s: None)
    assert not d.delivered and d.attempts == 1 and d.status_code == 302
    assert d.error and "redirect" in d.error
    assert len(hook.requests) == 1 and target.requests == []


def test_loopback_is_refused_without_the_development_setting(no_connections: list[Any]) -> None:
    d = deliver_webhook("http://127.0.0.1:9/hook", b"{}", "n1", wait=lambda s: None)
    assert not d.delivered and d.attempts == 0 and "loopback" in (d.error or "") and no_connections == []


def test_https_is_pinned_with_the_name_for_sni_and_the_certificate(
    loopback_allowed: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # azsim's local CA and server certificate (127.0.0.1 / localhost); the client trusts the CA.
    certs = ensure_certs(tmp_path / "certs")
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca_cert))
    names: list[str | None] = []
    ctx = certs.server_context()
    ctx.sni_callback = lambda sock, name, c: names.append(name)
    with Receiver() as hook:
        hook.server.socket = ctx.wrap_socket(hook.server.socket, server_side=True)
        asked: list[str] = []
        resolve = _resolver({"localhost": ["127.0.0.1"], "hooks.localhost": ["127.0.0.1"]}, asked)
        ok = deliver_webhook(f"https://localhost:{hook.port}/hook", b"{}", "n1", resolve=resolve)
        # Same address, a name the certificate does not hold: the TLS check is made against the name.
        wrong = deliver_webhook(
            f"https://hooks.localhost:{hook.port}/hook", b"{}", "n2", resolve=resolve, wait=lambda s: None
        )
    assert ok.delivered and hook.requests[0] == {"path": "/hook", "host": f"localhost:{hook.port}"}, ok
    assert names[0] == "localhost"
    assert not wrong.delivered and "certificate" in (wrong.error or "").lower(), wrong
    assert len(hook.requests) == 1
