"""A capture's trace, as the app exports it: one capture on devhost (three regions, with an export),
spans appended to a JSON-lines file (``OTEL_EXPORTER=jsonfile``) that the test reads back.

The generalize call answers 500 four times (more than the SDK's own retries), so one activity fails
and is retried by the orchestrator: its span must carry Azure's error code.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.redaction import contains_secret
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

FAULT = {
    "name": "generalize-500",
    "match": {"action": "Microsoft.Compute/virtualMachines/generalize/action"},
    "effect": {"type": "status", "status": 500, "code": "InternalExecutionError"},
    "count": 4,
}

Span = dict[str, Any]


def _spans(path: Path) -> list[Span]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _activity_of(span: Span, by_id: dict[str, Span]) -> str | None:
    """The id of the activity span ``span`` is under (through the SDK's operation spans), if any."""
    parent = by_id.get(span["parentSpanId"] or "")
    while parent is not None and not parent["name"].startswith("activity "):
        parent = by_id.get(parent["parentSpanId"] or "")
    return parent["spanId"] if parent is not None else None


def _tree(spans: list[Span], run_id: str) -> tuple[Span, list[Span], list[Span], list[Span]]:
    """The capture's root, its stage spans, its activity spans and the Azure HTTP spans of its trace."""
    (root,) = [
        s for s in spans if s["name"].startswith("capture ") and s["attributes"]["capture.run_id"] == run_id
    ]
    mine = [s for s in spans if s["traceId"] == root["traceId"]]
    stages = [s for s in mine if s["name"].startswith("stage ")]
    activities = [s for s in mine if s["name"].startswith("activity ")]
    http = [s for s in mine if s["kind"] == "CLIENT"]
    return root, stages, activities, http


def test_one_capture_is_one_trace_of_stages_activities_and_azure_calls(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    spans_file = tmp_path / "spans.jsonl"
    stack = make_stack(
        faults={"rules": [FAULT]},
        env={"OTEL_EXPORTER": "jsonfile", "OTEL_EXPORTER_JSONFILE_PATH": str(spans_file)},
    )
    status = stack.run(stack.request("vm-web"))
    assert status["runtimeStatus"] == "Completed", status.get("error")
    spans = _spans(spans_file)
    root, stages, activities, http = _tree(spans, status["runId"])

    # One trace: the root names the capture and the run; every span of the run is in its trace.
    assert root["parentSpanId"] is None and root["attributes"]["capture.id"] == status["id"]
    assert root["attributes"]["capture.outcome"] == "succeeded"
    run_spans = [s for s in spans if s["attributes"].get("capture.run_id") == status["runId"]]
    assert {s["traceId"] for s in run_spans} == {root["traceId"]}

    # A span per stage of the plan, in the plan's order (publish and export side by side), under the root.
    planned = [s["name"] for s in status["stages"] if s["state"] != "skipped"]
    assert planned == [
        "preflight",
        "prepare",
        "deallocate",
        "generalize",
        "snapshot",
        "publish",
        "export",
        "cleanup",
    ]
    by_stage = {s["attributes"]["capture.stage"]: s for s in stages}
    assert sorted(by_stage) == sorted(planned) and len(stages) == len(planned)
    steps = [
        ["preflight"],
        ["prepare"],
        ["deallocate"],
        ["generalize"],
        ["snapshot"],
        ["publish", "export"],
        ["cleanup"],
    ]
    for before, after in itertools.pairwise(steps):
        assert max(by_stage[b]["end"] for b in before) <= min(by_stage[a]["start"] for a in after), (
            before,
            after,
        )
    assert {s["parentSpanId"] for s in stages} == {root["spanId"]}
    by_start = sorted(stages, key=lambda s: (s["start"], s["name"]))

    # Activity spans under their stage's span (or the root, for the trace record itself).
    stage_ids = {s["attributes"]["capture.stage"]: s["spanId"] for s in stages}
    for a in activities:
        stage = a["attributes"]["capture.stage"]
        assert a["parentSpanId"] == stage_ids.get(stage, root["spanId"]), a
    assert {a["attributes"]["capture.stage"] for a in activities} >= set(planned)

    # The Azure SDK's spans (an operation, its HTTP requests) under the activities.
    by_id = {s["spanId"]: s for s in spans}
    activity_ids = {a["spanId"] for a in activities}
    assert len(http) > 20 and all(_activity_of(h, by_id) in activity_ids for h in http)
    assert all(h["attributes"].get("http.response.status_code") for h in http)

    # The failing generalize call: the activity's span carries Azure's code, its HTTP spans the 500s.
    failed = [a for a in activities if a["name"] == "activity generalize_vm" and a["status"] == "ERROR"]
    assert failed and failed[0]["attributes"]["azure.error.code"] == "InternalExecutionError"
    assert failed[0]["attributes"]["azure.resource_id"].endswith("/virtualMachines/vm-web")
    under = [h for h in http if _activity_of(h, by_id) == failed[0]["spanId"] and h["name"] == "POST"]
    assert len(under) == 4 and all(h["attributes"]["http.response.status_code"] == 500 for h in under)
    # ... and the SDK operation those requests belong to has Azure's code on each failed response.
    (operation,) = {h["parentSpanId"] for h in under}
    errors = [e["attributes"] for e in by_id[operation]["events"] if e["name"] == "azure.error"]
    assert errors == [{"http.response.status_code": 500, "azure.error.code": "InternalExecutionError"}] * 4

    # No secret anywhere in any span, and no URL with a query string.
    texts = [t for s in spans for t in _strings(s)]
    assert not [t for t in texts if contains_secret(t)]
    urls = [t for t in texts if t.startswith(("http://", "https://"))]
    assert urls and not [u for u in urls if "?" in u]
    print(
        "span tree:", [s["name"] for s in [root, *by_start]], len(activities), "activities", len(http), "http"
    )
