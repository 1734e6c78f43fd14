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
  application/json``, header ``X-Image-Pipeline-Notice-Id``. Any 2xx is delivered; 408/429/5xx and
  connection errors are retried ``WEBHOOK_ATTEMPTS`` times in all with doubling waits (a ``Retry-After``
  up to ``WEBHOOK_MAX_WAIT_SECONDS`` is honoured); other 4xx are not retried. Bounded: at most about
  ``WEBHOOK_ATTEMPTS * WEBHOOK_TIMEOUT_SECONDS + 7`` s.

Registered on its own blueprint ``bp``; ``function_app.py`` registers it beside ``activities.bp``.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import azure.durable_functions as df

from shared.notices import NoticeInput, NoticeResult, WebhookDelivery
from shared.queues import queue_client
from shared.redaction import redact, strip_query
from shared.settings import app_setting, get_settings

log = logging.getLogger("activities.notices")
bp = df.Blueprint()

PUBLISH_NOTICE = "publish_notice"
WEBHOOK_ATTEMPTS = 4
WEBHOOK_FIRST_WAIT_SECONDS = 1.0
WEBHOOK_MAX_WAIT_SECONDS = 10.0
WEBHOOK_TIMEOUT_SECONDS = 10.0
_RETRIED_STATUS = {408, 425, 429, 500, 502, 503, 504}


def _post(url: str, body: bytes, notice_id: str) -> tuple[int, str | None]:
    """POST once; the status code and the Retry-After header (transport errors raise OSError)."""
    req = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "image-pipeline-notice/1",
            "X-Image-Pipeline-Notice-Id": notice_id,
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=WEBHOOK_TIMEOUT_SECONDS) as resp:
            return int(resp.status), resp.headers.get("Retry-After")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.headers.get("Retry-After") if exc.headers else None


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def deliver_webhook(
    url: str,
    body: bytes,
    notice_id: str,
    *,
    post: Callable[[str, bytes, str], tuple[int, str | None]] = _post,
    wait: Callable[[float], None] = time.sleep,
    shown: str | None = None,
) -> WebhookDelivery:
    """POST the notice with bounded retries; report the outcome (never raises).

    ``shown`` is how the URL appears in the result and the logs (default: without its query string).
    """
    shown = shown or strip_query(url)
    status: int | None = None
    error: str | None = None
    delay = WEBHOOK_FIRST_WAIT_SECONDS
    for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
        retry_after: float | None = None
        try:
            status, header = post(url, body, notice_id)
            retry_after = _retry_after(header)
        except Exception as exc:  # connection refused/reset, timeout, DNS: worth another try
            status = None
            error = redact(f"{type(exc).__name__}: {exc}".replace(url, shown))
        else:
            if 200 <= status < 300:
                return WebhookDelivery(url=shown, delivered=True, attempts=attempt, status_code=status)
            error = f"the webhook answered HTTP {status}"
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
    inp: NoticeInput, *, post: Callable[[str, bytes, str], tuple[int, str | None]] = _post
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
            delivery = deliver_webhook(url, text.encode(), notice.notice_id, post=post, shown=shown)
            result.webhook = delivery.model_copy(update={"setting": inp.webhook_setting})
    elif inp.webhook_url:
        result.webhook = deliver_webhook(inp.webhook_url, text.encode(), notice.notice_id, post=post)
    return result


@bp.activity_trigger(input_name="payload", activity=PUBLISH_NOTICE)
def publish_notice(payload: dict[str, Any]) -> dict[str, Any]:
    """Queue the notice and POST it to the webhook; failures are in the result, not raised."""
    try:
        inp = NoticeInput.from_wire(payload)
    except Exception as exc:  # a bug in the caller: report it, still without failing the capture
        log.error("publish_notice got an invalid NoticeInput: %s", redact(str(exc))[:500])
        return NoticeResult(queue="", queued=False, queue_error="invalid NoticeInput").to_wire()
    return publish(inp).to_wire()
