"""Activity ``publish_notice``: deliver a capture's completion notice (results queue + optional webhook).

It never fails the capture: a queue or webhook failure is logged and reported in ``NoticeResult``,
never raised, so the orchestrator can call it at the very end of every capture (completed, failed or
canceled) without a notice problem changing the capture's result.

- Queue: one message on ``Settings.capture_results_queue`` (``CAPTURE_RESULTS_QUEUE``, default
  ``capture-results``), on the host's storage connection (``shared.queues``), created if missing.
  azure-core's retry policy owns transient storage failures.
- Webhook (``notify.webhookUrl`` of the request, or the URL held by the app setting that
  ``notify.webhookSetting`` names — read here, at delivery, so a URL carrying a key never enters the
  orchestration's input or history; for such a URL only ``scheme://host/…`` and the setting's name appear
  in the result and the logs): ``POST`` of the same JSON, ``Content-Type:
  application/json``, header ``X-Image-Pipeline-Notice-Id``. Before anything is sent, the URL obeys the
  webhook rules of ``shared.endpoints`` (https; no credentials; no loopback, link-local, private or other
  internal host in any spelling) and every address the host resolves to is checked; the connection goes
  to the checked address (TLS name and Host header stay the host's name), so a second lookup cannot
  rebind it. A refusal is reported, never retried. Redirects are not followed: a 3xx is a failed delivery.
  Any 2xx is delivered; 408/429/5xx and
  connection errors are retried ``WEBHOOK_ATTEMPTS`` times in all with doubling waits (a ``Retry-After``
  up to ``WEBHOOK_MAX_WAIT_SECONDS`` is honoured); other 4xx are not retried. Bounded: at most about
  ``WEBHOOK_ATTEMPTS * WEBHOOK_TIMEOUT_SECONDS + 7`` s.

Registered on its own blueprint ``bp``; ``function_app.py`` registers it beside ``activities.bp``.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import azure.durable_functions as df

from shared.activity_types import PUBLISH_NOTICE
from shared.endpoints import WebhookTarget, webhook_target
from shared.hosts import address_problem
from shared.notices import NoticeInput, NoticeResult, WebhookDelivery
from shared.queues import queue_client
from shared.redaction import redact, strip_query
from shared.settings import app_setting, get_settings

log = logging.getLogger("activities.notices")
bp = df.Blueprint()

WEBHOOK_ATTEMPTS = 4
WEBHOOK_FIRST_WAIT_SECONDS = 1.0
WEBHOOK_MAX_WAIT_SECONDS = 10.0
WEBHOOK_TIMEOUT_SECONDS = 10.0
_RETRIED_STATUS = {408, 425, 429, 500, 502, 503, 504}


Resolver = Callable[[str, int], list[str]]
Poster = Callable[[str, bytes, str], tuple[int, str | None]]


class RefusedAddress(Exception):
    """The webhook's host resolved to an address the app must not send to (never retried)."""


def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6), in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def checked_address(target: WebhookTarget, *, resolve: Resolver, allow_loopback: bool) -> str:
    """The address to connect to: the host's own if it is a literal, else the first resolved one, after
    checking EVERY resolved address (a name that also resolves to an internal address is refused, since
    a later lookup could return that one)."""
    if target.address is not None:
        return str(target.address)
    answers = resolve(target.host, target.port)
    if not answers:
        raise OSError(f"{target.host} resolved to no address")
    for text in answers:
        problem = address_problem(ipaddress.ip_address(text.split("%", 1)[0]), allow_loopback=allow_loopback)
        if problem:
            raise RefusedAddress(
                f"refused: the webhook's host {target.host} resolves to an address the app may not send to: {problem}"
            )
    return answers[0]


def pinned_post(
    url: str, body: bytes, notice_id: str, *, resolve: Resolver = resolve_host, allow_loopback: bool = False
) -> tuple[int, str | None]:
    """POST once to the checked address of the URL's host (TLS SNI, certificate name and Host header stay
    the host's name), without following redirects; the status code and the Retry-After header.

    Transport errors raise OSError; a host that resolves to a forbidden address raises RefusedAddress
    before any connection is made."""
    target, problem = webhook_target(url, allow_loopback=allow_loopback)
    if target is None:
        raise RefusedAddress(f"refused: the webhook URL {problem}")
    address = checked_address(target, resolve=resolve, allow_loopback=allow_loopback)
    conn: http.client.HTTPConnection
    if target.scheme == "https":
        conn = http.client.HTTPSConnection(
            target.host, target.port, timeout=WEBHOOK_TIMEOUT_SECONDS, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(target.host, target.port, timeout=WEBHOOK_TIMEOUT_SECONDS)

    def connect_pinned(
        where: tuple[str, int], timeout: float | None = None, source: tuple[str, int] | None = None
    ) -> socket.socket:
        return socket.create_connection((address, where[1]), timeout, source)

    conn._create_connection = connect_pinned  # type: ignore[attr-defined]
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "image-pipeline-notice/1",
        "X-Image-Pipeline-Notice-Id": notice_id,
    }
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read(65536)
        return int(resp.status), resp.getheader("Retry-After")
    finally:
        conn.close()


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _answer_error(status: int) -> str:
    if 300 <= status < 400:
        return (
            f"the webhook answered HTTP {status} (a redirect): redirects are not followed, so configure "
            "the URL the notice should finally go to"
        )
    return f"the webhook answered HTTP {status}"


def deliver_webhook(
    url: str,
    body: bytes,
    notice_id: str,
    *,
    post: Poster | None = None,
    wait: Callable[[float], None] = time.sleep,
    shown: str | None = None,
    resolve: Resolver = resolve_host,
) -> WebhookDelivery:
    """POST the notice with bounded retries; report the outcome (never raises).

    The URL is checked first (``shared.endpoints.webhook_target``: https, no credentials, no host that
    only the app's network reaches) and, by the default ``post``, its host's resolved addresses before
    every attempt; a refusal is reported at once, never retried, with nothing sent.
    ``shown`` is how the URL appears in the result and the logs (default: without its query string).
    """
    shown = shown or strip_query(url)
    allow_loopback = get_settings().webhook_allow_loopback
    _target, problem = webhook_target(url, allow_loopback=allow_loopback)
    if problem:
        log.warning("notice %s: webhook %s refused: %s", notice_id, shown, problem)
        return WebhookDelivery(
            url=shown, delivered=False, attempts=0, error=f"refused: the webhook URL {problem}"
        )
    send = post or partial(pinned_post, resolve=resolve, allow_loopback=allow_loopback)
    status: int | None = None
    error: str | None = None
    delay = WEBHOOK_FIRST_WAIT_SECONDS
    for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
        retry_after: float | None = None
        try:
            status, header = send(url, body, notice_id)
            retry_after = _retry_after(header)
        except RefusedAddress as exc:
            status, error = None, str(exc)
            break
        except Exception as exc:  # connection refused/reset, timeout, DNS: worth another try
            status = None
            error = redact(f"{type(exc).__name__}: {exc}".replace(url, shown))
        else:
            if 200 <= status < 300:
                return WebhookDelivery(url=shown, delivered=True, attempts=attempt, status_code=status)
            error = _answer_error(status)
            if status not in _RETRIED_STATUS:
                break
        if attempt < WEBHOOK_ATTEMPTS:
            pause = min(retry_after if retry_after is not None else delay, WEBHOOK_MAX_WAIT_SECONDS)
            log.info(
                "notice %s: webhook %s attempt %d failed (%s); retrying", notice_id, shown, attempt, error
            )
            wait(max(pause, 0.0))
            delay *= 2
    log.warning("notice %s: webhook %s not delivered: %s", notice_id, shown, error)
    return WebhookDelivery(url=shown, delivered=False, attempts=attempt, status_code=status, error=error)


def _shown_from_setting(url: str, setting: str) -> str:
    """A URL from a setting, as it may be shown: scheme and host only (Slack/Teams keep the key in the path)."""
    m = re.match(r"^(https?)://(?:[^/@?#]*@)?([^/?#]+)", url, re.IGNORECASE)
    where = f"{m.group(1).lower()}://{m.group(2)}/…" if m else "(not a URL)"
    return f"{where} (app setting {setting})"


def webhook_from_setting(setting: str) -> tuple[str | None, str, str | None]:
    """The webhook URL held by the app setting ``setting``: (url, how to show it, problem)."""
    value = (app_setting(setting) or "").strip()
    if not value:
        return (
            None,
            f"(app setting {setting})",
            f"the app setting {setting} is not set: add it to the function app's settings with the "
            "webhook URL as its value",
        )
    shown = _shown_from_setting(value, setting)
    if not re.match(r"^https?://[^/?#]+", value, re.IGNORECASE):
        return None, shown, f"the app setting {setting} does not hold an http(s) URL: fix its value"
    return value, shown, None


def publish(
    inp: NoticeInput, *, post: Poster | None = None, resolve: Resolver = resolve_host
) -> NoticeResult:
    notice = inp.notice
    text = json.dumps(notice.to_wire(), separators=(",", ":"))
    queue = get_settings().capture_results_queue
    result = NoticeResult(queue=queue, queued=False)
    try:
        queue_client(queue).send_message(text)
        result.queued = True
        log.info("notice %s (%s) queued on %s", notice.notice_id, notice.outcome, queue)
    except Exception as exc:  # the notice must never change the capture's result
        result.queue_error = redact(f"{type(exc).__name__}: {exc}")[:1000]
        log.error("notice %s could not be queued on %s: %s", notice.notice_id, queue, result.queue_error)
    if inp.webhook_setting:
        url, shown, problem = webhook_from_setting(inp.webhook_setting)
        if url is None:
            log.warning("notice %s: webhook not delivered: %s", notice.notice_id, problem)
            result.webhook = WebhookDelivery(
                url=shown, setting=inp.webhook_setting, delivered=False, attempts=0, error=problem
            )
        else:
            delivery = deliver_webhook(
                url, text.encode(), notice.notice_id, post=post, shown=shown, resolve=resolve
            )
            result.webhook = delivery.model_copy(update={"setting": inp.webhook_setting})
    elif inp.webhook_url:
        result.webhook = deliver_webhook(
            inp.webhook_url, text.encode(), notice.notice_id, post=post, resolve=resolve
        )
    return result


@bp.activity_trigger(input_name="payload", activity=PUBLISH_NOTICE.name)
def publish_notice(payload: dict[str, Any]) -> dict[str, Any]:
    """Queue the notice and POST it to the webhook; failures are in the result, not raised."""
    try:
        inp = NoticeInput.from_wire(payload)
    except Exception as exc:  # a bug in the caller: report it, still without failing the capture
        log.error("publish_notice got an invalid NoticeInput: %s", redact(str(exc))[:500])
        return NoticeResult(queue="", queued=False, queue_error="invalid NoticeInput").to_wire()
    return publish(inp).to_wire()
