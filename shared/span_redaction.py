"""Spans leave the process without secrets: the processor every exporter of ``shared.telemetry`` sits behind.

URL-valued attributes lose their query string (a SAS always travels there), attributes named like a
credential (authorization, sas, token, key, signature, password, connection string) are replaced, and
any other text (names, status descriptions, event attributes such as an exception's message) goes
through ``shared.redaction.redact``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.trace import Status

from shared.redaction import redact, strip_query

REDACTED = "<redacted>"
# Attribute names that carry a credential whatever their value looks like.
_SECRET_NAME = re.compile(
    r"(?i)(^|[._-])(authorization|sas|token|access[._-]?token|key|account[._-]?key|signature|sig|"
    r"password|secret|connection[._-]?string|cookie)($|[._-])"
)


def _clean_text(key: str, value: str) -> str:
    if _SECRET_NAME.search(key):
        return REDACTED
    if value.lower().startswith(("http://", "https://")) and " " not in value:
        return strip_query(value)
    return redact(value)


def _clean_value(key: str, value: Any) -> Any:
    if isinstance(value, str):
        return _clean_text(key, value)
    if isinstance(value, bytes):
        return REDACTED if _SECRET_NAME.search(key) else value
    if isinstance(value, Sequence):
        return tuple(_clean_value(key, v) for v in value)
    return value


def clean_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """The attributes with URL query strings dropped and SAS/token/key-shaped values redacted."""
    return {k: _clean_value(k, v) for k, v in (attributes or {}).items()}


def redacted_span(span: ReadableSpan) -> ReadableSpan:
    """A copy of ``span`` whose name, status, attributes and events hold no secret."""
    status = span.status
    if status.description:
        status = Status(status.status_code, redact(status.description))
    events = [Event(redact(e.name), clean_attributes(e.attributes), e.timestamp) for e in span.events]
    return ReadableSpan(
        name=redact(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=clean_attributes(span.attributes),
        events=events,
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class RedactingProcessor(SpanProcessor):
    """Hands the wrapped processor (and so its exporter) a redacted copy of every ended span."""

    def __init__(self, inner: SpanProcessor) -> None:
        self.inner = inner

    def on_end(self, span: ReadableSpan) -> None:
        self.inner.on_end(redacted_span(span))

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class RedactingLogFilter(logging.Filter):
    """Log records leave for Application Insights redacted, like the app's own log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        return True
