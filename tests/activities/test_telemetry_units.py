"""Trace ids derived from the run id, the trace reference in activity payloads, the redacting processor,
the run's span tree as ``emit_run`` writes it, and the telemetry settings."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from shared.redaction import contains_secret
from shared.span_redaction import RedactingProcessor
from shared.telemetry import DerivedIds, TelemetrySettings, emit_run, span_json
from shared.trace_ids import (
    TRACE_KEY,
    RunTrace,
    StageSpan,
    TraceRef,
    pop_trace,
    span_id,
    trace_id,
    traceparent,
)

# Planted secrets, assembled at run time so that no SAS- or token-shaped string is committed.
SAS_URL = "https://stexports.blob.core.windows.net/vhds/os.vhd?" + "&".join(
    ["sv=2024-08-04", "sr=b", "sp=r", "sig" + "=" + "AbCdEfGhIjKlMnOpQrSt%3D"]
)
TOKEN = "Bearer " + ".".join(["eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9", "eyJhdWQiOiJodHRwcyJ9", "c2lnbmF0dXJl"])


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=DerivedIds())
    provider.add_span_processor(RedactingProcessor(SimpleSpanProcessor(exporter)))
    return provider, exporter


def test_ids_are_derived_from_the_run_id_alone() -> None:
    assert trace_id("run-a") == trace_id("run-a") != trace_id("run-b")
    assert 0 < trace_id("run-a") < 2**128 and 0 < span_id("run-a") < 2**64
    ids = {span_id("run-a"), span_id("run-a", "snapshot"), span_id("run-a", "snapshot", 2), span_id("run-b")}
    assert len(ids) == 4  # root, a stage, its second attempt, another run: all distinct
    assert TraceRef(run_id="run-a", stage="snapshot").parent_span_id == span_id("run-a", "snapshot")
    assert TraceRef(run_id="run-a").parent_span_id == span_id("run-a")  # no stage: the run's root
    version, tid, sid, flags = traceparent("run-a", "snapshot").split("-")
    assert (version, flags, int(tid, 16), int(sid, 16)) == (
        "00",
        "01",
        trace_id("run-a"),
        span_id("run-a", "snapshot"),
    )


def test_the_trace_reference_travels_in_the_payload_and_is_taken_out_before_validation() -> None:
    payload = TraceRef(run_id="run-a", stage="export").with_payload({"vmId": "/x"})
    assert payload[TRACE_KEY] == {"runId": "run-a", "stage": "export", "attempt": 1}
    ref = pop_trace(payload)
    assert ref == TraceRef(run_id="run-a", stage="export") and payload == {"vmId": "/x"}
    assert pop_trace({"vmId": "/x"}) is None
    assert pop_trace({TRACE_KEY: {"bogus": 1}}) is None  # a bad reference never fails the activity
    assert pop_trace("not a dict") is None


def test_the_processor_drops_query_strings_and_redacts_secret_shaped_values() -> None:
    provider, exporter = _provider()
    with provider.get_tracer("t").start_as_current_span("PUT", kind=SpanKind.CLIENT) as span:
        span.set_attribute("url.full", SAS_URL)
        span.set_attribute("http.request.header.authorization", "anything")
        span.set_attribute("storage.account_key", "c2VjcmV0")
        span.set_attribute("capture.note", f"copy from {SAS_URL} failed")
        span.set_attribute("capture.stage", "export")
        span.add_event("exception", {"exception.message": f"{TOKEN} refused", "exception.type": "X"})
    (got,) = exporter.get_finished_spans()
    attrs = dict(got.attributes or {})
    assert attrs["url.full"] == "https://stexports.blob.core.windows.net/vhds/os.vhd"
    assert attrs["http.request.header.authorization"] == attrs["storage.account_key"] == "<redacted>"
    note = str(attrs["capture.note"])
    assert "sig=" not in note and "copy from https://stexports" in note
    assert attrs["capture.stage"] == "export"  # ordinary values are left alone
    event = dict(got.events[0].attributes or {})
    assert "eyJ" not in str(event["exception.message"]) and event["exception.type"] == "X"
    assert not contains_secret(str(span_json(got)))


def _run(outcome: str = "succeeded") -> RunTrace:
    stages = [
        StageSpan(
            name="preflight", state="succeeded", started="2026-01-01T00:00:00Z", ended="2026-01-01T00:00:02Z"
        ),
        StageSpan(
            name="snapshot", state="failed", started="2026-01-01T00:00:02Z", ended="2026-01-01T00:00:05Z"
        ),
    ]
    return RunTrace(
        run_id="run-a",
        capture_id="capture-vm-1",
        plan="capture",
        started="2026-01-01T00:00:00Z",
        ended="2026-01-01T00:00:06Z",
        outcome=outcome,
        error_code="BadRequest" if outcome == "failed" else None,
        stages=stages,
    )


def test_emit_run_writes_the_root_and_stage_spans_with_the_derived_ids_and_the_progress_times() -> None:
    provider, exporter = _provider()
    assert emit_run(_run("failed"), provider) == 3
    spans = {s.name: s for s in exporter.get_finished_spans()}
    root, pre, snap = spans["capture capture"], spans["stage preflight"], spans["stage snapshot"]
    assert root.parent is None and root.context is not None
    assert (root.context.trace_id, root.context.span_id) == (trace_id("run-a"), span_id("run-a"))
    for stage, name in ((pre, "preflight"), (snap, "snapshot")):
        assert stage.context is not None and stage.parent is not None
        assert stage.context.trace_id == trace_id("run-a")
        assert (stage.context.span_id, stage.parent.span_id) == (span_id("run-a", name), span_id("run-a"))
    assert pre.start_time is not None and pre.end_time is not None
    assert (pre.end_time - pre.start_time) == 2 * 10**9
    assert snap.status.status_code is StatusCode.ERROR and pre.status.status_code is StatusCode.OK
    assert dict(root.attributes or {})["capture.id"] == "capture-vm-1"
    assert dict(root.attributes or {})["capture.error.code"] == "BadRequest"


def test_settings_choose_the_exporter_and_refuse_a_wrong_one() -> None:
    assert not TelemetrySettings.from_env({}).enabled
    s = TelemetrySettings.from_env({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"})
    assert s.enabled and s.exporter == "none"
    assert TelemetrySettings.from_env({"OTEL_EXPORTER": "OTLP"}).exporter == "otlp"
    with pytest.raises(ValueError, match="OTEL_EXPORTER_JSONFILE_PATH"):
        TelemetrySettings.from_env({"OTEL_EXPORTER": "jsonfile"})
    with pytest.raises(ValueError, match="must be one of none, console, otlp, jsonfile"):
        TelemetrySettings.from_env({"OTEL_EXPORTER": "zipkin"})


def test_a_wrong_setting_turns_tracing_off_instead_of_failing_activities(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shared import telemetry

    monkeypatch.setenv("OTEL_EXPORTER", "zipkin")
    telemetry.get_telemetry_settings.cache_clear()
    telemetry.configure.cache_clear()
    try:
        assert telemetry.configure() is None
        with telemetry.activity_span("get_vm_facts", TraceRef(run_id="run-a")) as span:
            assert not span.is_recording()  # the no-op tracer
    finally:
        telemetry.get_telemetry_settings.cache_clear()
        telemetry.configure.cache_clear()
