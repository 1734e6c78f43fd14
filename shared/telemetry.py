"""OpenTelemetry traces (and, to Application Insights, logs) of the app's activities and captures.

Configured once per process, on the first activity (``configure``), from settings read once:

- ``APPLICATIONINSIGHTS_CONNECTION_STRING`` set: spans and log records go to Application Insights
  through the Azure Monitor exporters, authenticated with the app's identity (the resource's local
  auth is off);
- else ``OTEL_EXPORTER``: ``otlp`` (endpoint and headers from the standard ``OTEL_EXPORTER_OTLP_*``
  variables), ``console`` (spans printed as JSON), ``jsonfile`` (one JSON span per line appended to
  ``OTEL_EXPORTER_JSONFILE_PATH``: for tests and local inspection), or ``none`` (the default: a no-op
  tracer, nothing recorded).

Ids: a capture run's trace, root span and stage spans have ids derived from its run id
(``shared.trace_ids``), so the activity spans written by many worker calls and the stage spans
written at the end of the run (``emit_run``) form one tree. Every span passes ``RedactingProcessor``
before any exporter sees it: URL query strings are dropped, SAS/token/key-shaped text is redacted.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from shared.errors import ErrorInfo
from shared.redaction import redact
from shared.span_redaction import RedactingLogFilter, RedactingProcessor
from shared.trace_ids import ROOT, RunTrace, TraceRef, span_id, trace_id

log = logging.getLogger("telemetry")

EXPORTERS = ("none", "console", "otlp", "jsonfile")
SCOPE = "imagepipeline"


@dataclass(frozen=True)
class TelemetrySettings:
    connection_string: str | None = None
    exporter: str = "none"
    jsonfile_path: str | None = None
    service_name: str = "vm-image-pipeline"

    @property
    def enabled(self) -> bool:
        return self.connection_string is not None or self.exporter != "none"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TelemetrySettings:
        env = os.environ if env is None else env
        exporter = (env.get("OTEL_EXPORTER") or "none").strip().lower()
        if exporter not in EXPORTERS:
            raise ValueError(f"setting OTEL_EXPORTER={exporter!r} must be one of {', '.join(EXPORTERS)}")
        path = env.get("OTEL_EXPORTER_JSONFILE_PATH") or None
        if exporter == "jsonfile" and path is None:
            raise ValueError(
                "setting OTEL_EXPORTER=jsonfile needs OTEL_EXPORTER_JSONFILE_PATH (a file to append to)"
            )
        return cls(
            connection_string=env.get("APPLICATIONINSIGHTS_CONNECTION_STRING") or None,
            exporter=exporter,
            jsonfile_path=path,
            service_name=env.get("OTEL_SERVICE_NAME") or cls.service_name,
        )


# -- exporters ---------------------------------------------------------------------------------------


def span_json(span: ReadableSpan) -> dict[str, Any]:
    """One span as the JSON-lines exporter writes it (ids in hex, times in ns since the epoch)."""
    return {
        "name": span.name,
        "traceId": f"{span.context.trace_id:032x}" if span.context else None,
        "spanId": f"{span.context.span_id:016x}" if span.context else None,
        "parentSpanId": f"{span.parent.span_id:016x}" if span.parent else None,
        "kind": span.kind.name,
        "start": span.start_time,
        "end": span.end_time,
        "status": span.status.status_code.name,
        "statusDescription": span.status.description,
        "attributes": dict(span.attributes or {}),
        "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
    }


class JsonLinesExporter(SpanExporter):
    """Appends every span as one JSON line to a file (``OTEL_EXPORTER=jsonfile``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_json(s), default=str) + "\n" for s in spans)
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(lines)
        return SpanExportResult.SUCCESS


def _processor(s: TelemetrySettings) -> SpanProcessor:
    if s.connection_string is not None:
        from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter

        from shared.clients import credential

        exporter: SpanExporter = AzureMonitorTraceExporter(
            connection_string=s.connection_string, credential=credential()
        )
        return BatchSpanProcessor(exporter)
    if s.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return BatchSpanProcessor(OTLPSpanExporter())
    if s.exporter == "console":
        return SimpleSpanProcessor(ConsoleSpanExporter())
    return SimpleSpanProcessor(JsonLinesExporter(str(s.jsonfile_path)))


def _send_logs(s: TelemetrySettings, resource: Resource) -> None:
    """Application Insights also gets the app's log records (INFO and up), redacted."""
    from azure.monitor.opentelemetry.exporter import AzureMonitorLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    from shared.clients import credential

    provider = LoggerProvider(resource=resource)
    exporter = AzureMonitorLogExporter(connection_string=s.connection_string, credential=credential())
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
    handler.addFilter(RedactingLogFilter())
    logging.getLogger().addHandler(handler)


# -- ids ---------------------------------------------------------------------------------------------

# The ids the next span started in this context must have (the derived spans of ``emit_run``).
_NEXT_IDS: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("next_ids", default=None)


class DerivedIds(RandomIdGenerator):
    """Random ids, except for a span started inside ``_derived(trace, span)``: those two."""

    def generate_trace_id(self) -> int:
        fixed = _NEXT_IDS.get()
        return fixed[0] if fixed else super().generate_trace_id()

    def generate_span_id(self) -> int:
        fixed = _NEXT_IDS.get()
        return fixed[1] if fixed else super().generate_span_id()


@contextmanager
def _derived(trace_value: int, span_value: int) -> Iterator[None]:
    token = _NEXT_IDS.set((trace_value, span_value))
    try:
        yield
    finally:
        _NEXT_IDS.reset(token)


# -- setup -------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def get_telemetry_settings() -> TelemetrySettings:
    return TelemetrySettings.from_env()


def _provider(s: TelemetrySettings) -> TracerProvider:
    resource = Resource.create({"service.name": s.service_name})
    provider = TracerProvider(resource=resource, id_generator=DerivedIds())
    provider.add_span_processor(RedactingProcessor(_processor(s)))
    if s.connection_string is not None:
        _send_logs(s, resource)
    return provider


@lru_cache(maxsize=1)
def configure() -> TracerProvider | None:
    """Set the process's tracer provider from the settings, once; ``None`` when tracing is off.

    A wrong setting or an exporter that cannot be built turns tracing off with an error log line: an
    observer must never fail the captures it observes.
    """
    try:
        s = get_telemetry_settings()
        if not s.enabled:
            return None
        provider = _provider(s)
    except Exception as exc:
        log.error("tracing is off: %s", redact(str(exc))[:500])
        return None
    trace.set_tracer_provider(provider)
    # azure-core's own OpenTelemetry support: a span per SDK operation and per HTTP request under it.
    from azure.core.settings import settings as azure_settings

    azure_settings.tracing_enabled = True
    return provider


def tracer() -> trace.Tracer:
    provider = configure()
    return provider.get_tracer(SCOPE) if provider is not None else trace.NoOpTracer()


# -- spans -------------------------------------------------------------------------------------------


def _parent(ref: TraceRef) -> Any:
    remote = SpanContext(
        trace_id(ref.run_id), ref.parent_span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    return trace.set_span_in_context(NonRecordingSpan(remote))


def mark_failed(span: trace.Span, info: ErrorInfo) -> None:
    """The error's code (Azure's when it came from Azure), kind and step, and an ERROR status."""
    span.set_attribute("error.type", info.azure_code or info.code)
    span.set_attribute("capture.error.code", info.code)
    if info.azure_code:
        span.set_attribute("azure.error.code", info.azure_code)
    if info.kind:
        span.set_attribute("capture.error.kind", info.kind)
    span.set_status(Status(StatusCode.ERROR, info.message[:500]))


@contextmanager
def activity_span(name: str, ref: TraceRef | None) -> Iterator[trace.Span]:
    """The span of one activity call, current while it runs (the Azure HTTP spans nest under it)."""
    attributes: dict[str, Any] = {"capture.activity": name}
    if ref is not None:
        attributes.update({"capture.run_id": ref.run_id, "capture.stage": ref.stage or ROOT})
    with tracer().start_as_current_span(
        f"activity {name}",
        context=_parent(ref) if ref is not None else None,
        kind=SpanKind.INTERNAL,
        attributes=attributes,
        record_exception=False,  # the error's attributes say what happened, without a traceback
        set_status_on_exception=False,
    ) as span:
        yield span


def _error_code(response: Any) -> str | None:
    """Azure's error code of a failed response: storage's header, else ARM's ``error.code`` in the body."""
    header = response.headers.get("x-ms-error-code")
    if header:
        return str(header)
    try:
        body = json.loads(response.text() or "{}")
    except Exception:  # a body that is not JSON (or was streamed) names no code
        return None
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code) if code else None


def record_azure_error(pipeline_response: Any) -> None:
    """``raw_response_hook`` of the app's SDK clients: a failed response becomes an ``azure.error`` event
    (Azure's code and the status) on the SDK operation's span, the span current while its requests run."""
    response = pipeline_response.http_response
    span = trace.get_current_span()
    if response.status_code < 400 or not span.is_recording():
        return
    attributes: dict[str, Any] = {"http.response.status_code": response.status_code}
    code = _error_code(response)
    if code:
        attributes["azure.error.code"] = code
    span.add_event("azure.error", attributes)


def _ns(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1e9)


def _status(state: str, note: str | None = None) -> Status:
    if state in ("failed", "canceled"):
        return Status(StatusCode.ERROR, note or state)
    return Status(StatusCode.OK)


def emit_run(run: RunTrace, provider: TracerProvider | None = None) -> int:
    """Write the run's root span and one span per stage it started, with their derived ids and the
    progress's times; return how many spans were written (0 with tracing off)."""
    provider = provider or configure()
    if provider is None:
        return 0
    t, tid = provider.get_tracer(SCOPE), trace_id(run.run_id)
    attributes = {
        "capture.id": run.capture_id,
        "capture.run_id": run.run_id,
        "capture.plan": run.plan,
        "capture.outcome": run.outcome,
    }
    if run.error_code:
        attributes["capture.error.code"] = run.error_code
    with _derived(tid, span_id(run.run_id)):
        root = t.start_span(
            f"capture {run.plan}",
            context=Context(),  # a root: not under the record_trace activity that writes it
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=_ns(run.started),
        )
    in_root = trace.set_span_in_context(root)
    for stage in run.stages:
        with _derived(tid, span_id(run.run_id, stage.name)):
            span = t.start_span(
                f"stage {stage.name}",
                context=in_root,
                attributes={
                    "capture.id": run.capture_id,
                    "capture.run_id": run.run_id,
                    "capture.stage": stage.name,
                },
                start_time=_ns(stage.started),
            )
        span.set_status(_status(stage.state, stage.note))
        span.end(end_time=_ns(stage.ended))
    root.set_status(_status(run.outcome, run.error_code))
    root.end(end_time=_ns(run.ended))
    provider.force_flush()
    return 1 + len(run.stages)
