"""The status view folded from the orchestrations' custom statuses (``GET /api/captures/{id}``).

``aggregate_status`` folds the main instance's ``CaptureProgress``, the version branch's
``VersionProgress`` and the export branches' ``ExportProgress`` (``shared.status``) into the one
readable ``CaptureStatusView``. Pure functions, so they are unit-tested without a host. Nothing here
may hold a SAS: blob URLs are always stored without their query string.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from shared.errors import parse_failure
from shared.instances import InstanceSnapshot, decoded
from shared.model_base import WireModel
from shared.redaction import redact, strip_query
from shared.status import (
    CaptureProgress,
    CaptureResult,
    CaptureStatusView,
    ErrorView,
    ExportProgress,
    StageState,
    VersionProgress,
    export_instance_id,
    version_instance_id,
)

M = TypeVar("M", bound=WireModel)


def _model(cls: type[M], value: Any) -> M | None:
    value = decoded(value)
    if not isinstance(value, dict):
        return None
    try:
        return cls.from_wire(value)
    except ValidationError:
        return None


def _error_from_output(output: Any) -> ErrorView | None:
    text = output if isinstance(output, str) else json.dumps(output) if output is not None else ""
    info = parse_failure(text)
    if info is not None:
        return ErrorView.from_info(info)
    if text:
        return ErrorView(step="orchestration", code="OrchestrationFailed", message=redact(text)[:2000])
    return None


def _seconds(started: str | None, ended: str | None) -> float | None:
    if not started or not ended:
        return None
    try:
        a = datetime.fromisoformat(started.replace("Z", "+00:00"))
        b = datetime.fromisoformat(ended.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((b - a).total_seconds(), 3)


def aggregate_status(
    capture_id: str,
    main: InstanceSnapshot,
    version: InstanceSnapshot | None = None,
    exports: dict[str, InstanceSnapshot] | None = None,
) -> CaptureStatusView:
    """Fold the main instance and its sub-orchestrations into one readable status.

    The main instance's custom status is the frame; the sub-orchestrations' own statuses are
    fresher for their part (copy bytes, region %), so they override the per-disk copy and
    per-region fields and the ``publish``/``export`` stage timings while they run.
    """
    progress = _model(CaptureProgress, main.custom_status)
    view = CaptureStatusView(
        id=capture_id,
        runtime_status=main.runtime_status,
        created_time=main.created_time,
        last_updated_time=main.last_updated_time,
    )
    if progress is not None:
        _copy_progress(view, progress)
    vp = _model(VersionProgress, version.custom_status) if version is not None else None
    if vp is not None:
        if vp.regions:
            view.regions = [r.model_copy() for r in vp.regions]
        view.image_version_id = vp.version_id or view.image_version_id
        _overlay_stage(view, "publish", vp.started, vp.ended, vp.state)
    _overlay_exports(view, exports or {})

    view.runtime_status = shown_runtime_status(main.runtime_status, progress)
    if view.runtime_status == "Completed":
        view.result = _model(CaptureResult, main.output)
    elif main.runtime_status == "Failed" and view.error is None:
        view.error = _error_from_output(main.output)
    return view


def _copy_progress(view: CaptureStatusView, progress: CaptureProgress) -> None:
    """The main instance's own progress: the frame of the view."""
    view.source_vm_id = progress.source_vm_id
    view.source_kind, view.source_id = progress.source_kind, progress.source_id
    view.run_id = progress.run_id or progress.capture_id
    view.stage = progress.stage
    view.generalized = progress.generalized
    view.capture_mode, view.consistency = progress.capture_mode, progress.consistency
    view.source_state = progress.source_state
    view.irreversible_note = progress.irreversible_note
    view.stages = [s.model_copy() for s in progress.stages]
    view.disks = [d.model_copy() for d in progress.disks]
    view.regions = [r.model_copy() for r in progress.regions]
    view.image_version_id = progress.image_version_id
    view.image_version_state = progress.image_version_state
    view.error = progress.error
    view.cancel_requested = progress.cancel_requested
    view.cancel_reason = progress.cancel_reason
    view.cleaned = list(progress.cleaned)


def _overlay_exports(view: CaptureStatusView, exports: dict[str, InstanceSnapshot]) -> None:
    """The export sub-orchestrations' fresher copy figures, per disk, and the ``export`` stage's timing."""
    export_states: list[str] = []
    starts: list[str] = []
    ends: list[str] = []
    for key, snap in exports.items():
        ep = _model(ExportProgress, snap.custom_status)
        if ep is None:
            continue
        export_states.append(ep.state)
        starts += [ep.started] if ep.started else []
        ends += [ep.ended] if ep.ended else []
        for d in view.disks:
            if d.key == key:
                d.copy_state = ep.copy_state or d.copy_state
                d.bytes_copied = ep.bytes_copied
                d.bytes_total = ep.bytes_total
                d.copy_percent = ep.percent
                d.blob_url = strip_query(ep.blob_url) if ep.blob_url else d.blob_url
                d.access_revoked = ep.access_revoked
    if not export_states:
        return
    done = all(s in ("succeeded", "failed", "canceled") for s in export_states)
    state = "succeeded" if done else "copying"
    for bad in ("canceled", "failed"):
        if bad in export_states and done:
            state = bad
    _overlay_stage(
        view, "export", min(starts) if starts else None, max(ends) if done and ends else None, state
    )


_SUB_TO_STAGE: dict[str, StageState] = {
    "completed": "succeeded",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
}


def capture_progress(custom_status: Any) -> CaptureProgress | None:
    """A capture's custom status as ``CaptureProgress`` (JSON text or decoded), or ``None`` if it is none."""
    return _model(CaptureProgress, custom_status)


def shown_runtime_status(runtime_status: str, progress: CaptureProgress | None) -> str:
    """The runtime status to show: ``Canceled`` for a capture that completed by a cancel.

    Durable has no "Canceled" runtime status: the orchestration completes after its compensation.
    """
    if runtime_status == "Completed" and progress is not None and progress.state == "canceled":
        return "Canceled"
    return runtime_status


def run_id_of(capture_id: str, custom_status: Any) -> str:
    """The run id a capture's custom status names (the capture id for runs started before run ids)."""
    progress = capture_progress(custom_status)
    return (progress.run_id if progress is not None else None) or capture_id


def sub_instance_ids(capture_id: str, custom_status: Any) -> list[str]:
    """The sub-orchestrations a capture's current run may have started, from its custom status: the
    version branch, and an export per disk when the run exports (disks are known after preflight)."""
    progress = capture_progress(custom_status)
    run_id = (progress.run_id if progress is not None else None) or capture_id
    ids = [version_instance_id(run_id)]
    if progress is not None and progress.export:
        ids += [export_instance_id(run_id, d.key) for d in progress.disks]
    return ids


def _overlay_stage(
    view: CaptureStatusView, name: str, started: str | None, ended: str | None, sub_state: str
) -> None:
    for s in view.stages:
        if s.name != name or s.state in ("skipped",):
            continue
        s.started = s.started or started
        if ended and s.state in ("pending", "running"):
            s.ended = ended
        if s.state in ("pending", "running"):
            s.state = _SUB_TO_STAGE.get(sub_state, "running")
        s.seconds = _seconds(s.started, s.ended)
