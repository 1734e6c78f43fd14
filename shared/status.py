"""The capture's progress model (custom status of each orchestration) and the status view of the API.

Three orchestrations report progress, each through its own Durable custom status:

- the main ``capture_image`` instance: ``CaptureProgress`` (mode, stage timings, disks, error);
- ``<run-id>:version`` (``publish_version``): ``VersionProgress`` (per-region replication);
- ``<run-id>:export:<disk>`` (``export_disk``): ``ExportProgress`` (copy bytes, SAS revoked).

``<run-id>`` is ``CaptureProgress.run_id`` (``shared.ids.new_run_id``; older captures: the capture id).
``aggregate_status`` folds the three into the one readable ``CaptureStatusView`` that
``GET /api/captures/{id}`` answers. It is a pure function so it can be unit-tested without a host.
Nothing here may hold a SAS: blob URLs are always stored without their query string.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, TypeVar

from pydantic import Field, ValidationError

from shared.errors import ErrorInfo, parse_failure
from shared.instances import InstanceSnapshot, decoded
from shared.model_base import WireModel
from shared.redaction import redact, strip_query
from shared.request_rules import CaptureKind


class Stage(StrEnum):
    """Where a capture is: one of its pipeline stages (``STAGES``), or where it ended.

    ``orchestrators.capture`` names its stages with these; ``CaptureProgress.stage`` takes only these.
    """

    PREFLIGHT = "preflight"
    PREPARE = "prepare"
    DEALLOCATE = "deallocate"
    GENERALIZE = "generalize"
    SNAPSHOT = "snapshot"
    PUBLISH = "publish"
    EXPORT = "export"
    RESTART = "restart"  # specialized, consistency "stopped": the VM started again after the snapshots
    CLEANUP = "cleanup"
    # Not stages of the pipeline: the capture's whereabouts once it finished or while it is undone.
    DONE = "done"
    CANCELING = "canceling"
    CANCELED = "canceled"


# The stages an inPlace capture reports, in order (each a ``StageTiming`` in ``CaptureProgress.stages``);
# a run of another plan lists its plan's stages instead (``orchestrators.capture.plan``).
_NOT_IN_PLACE = (Stage.RESTART, Stage.DONE, Stage.CANCELING, Stage.CANCELED)
STAGES: tuple[Stage, ...] = tuple(s for s in Stage if s not in _NOT_IN_PLACE)

M = TypeVar("M", bound=WireModel)

StageState = Literal["pending", "running", "succeeded", "failed", "skipped", "canceled"]


def version_instance_id(run_id: str) -> str:
    """Instance id of a capture run's ``publish_version`` sub-orchestration (``<run-id>:version``).

    Per run, not per VM: a later capture of the same VM never shows (or cancels) an earlier run's branch.
    """
    return f"{run_id}:version"


def export_instance_id(run_id: str, disk_key: str) -> str:
    """Instance id of a capture run's ``export_disk`` sub-orchestration of one disk."""
    return f"{run_id}:export:{disk_key}"


# The status and notice ``error``: the one error model (the name the status models have always used).
ErrorView = ErrorInfo


class StageTiming(WireModel):
    name: str
    state: StageState = "pending"
    started: str | None = None
    ended: str | None = None
    seconds: float | None = None
    note: str | None = None


class DiskProgress(WireModel):
    key: str
    name: str
    lun: int | None = None
    size_gb: int | None = None
    snapshot_id: str | None = None
    snapshot_state: str | None = None
    snapshot_percent: float | None = None
    copy_state: str | None = None  # pending | success | failed | aborted | stalled
    bytes_copied: int = 0
    bytes_total: int = 0
    copy_percent: float = 0.0
    blob_url: str | None = None
    access_revoked: bool | None = None


class RegionProgress(WireModel):
    region: str
    state: str = "Unknown"  # Unknown | Replicating | Completed | Failed
    progress: int = 0
    details: str | None = None


class CaptureProgress(CaptureKind):
    """Custom status of the main ``capture_image`` orchestration."""

    capture_id: str
    source_vm_id: str
    run_id: str | None = None  # this run's id (None: a capture started before run ids; use capture_id)
    stage: Stage = Stage.PREFLIGHT
    state: Literal["running", "succeeded", "failed", "canceled"] = "running"
    stages: list[StageTiming] = Field(default_factory=lambda: [StageTiming(name=s) for s in STAGES])
    generalized: bool = False
    irreversible_note: str | None = None
    image_version: str | None = None
    image_version_id: str | None = None
    # The image version's outcome: "completed" (usable, even when the capture failed later, e.g. in the
    # VHD export), "failed", "deleted" (a failed version removed again) or None (not created yet).
    image_version_state: str | None = None
    disks: list[DiskProgress] = Field(default_factory=list)
    regions: list[RegionProgress] = Field(default_factory=list)
    export: bool = False
    error: ErrorView | None = None
    # Cancellation (POST /api/captures/{id}/cancel): requested, why, and what the compensation did.
    cancel_requested: bool = False
    cancel_reason: str | None = None
    cleaned: list[str] = Field(default_factory=list)

    def stage_of(self, name: Stage) -> StageTiming:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def disk(self, key: str) -> DiskProgress:
        for d in self.disks:
            if d.key == key:
                return d
        raise KeyError(key)


class VersionProgress(WireModel):
    """Custom status (and, with ``ok``, the output) of ``publish_version``."""

    state: Literal["creating", "replicating", "completed", "failed", "canceled"] = "creating"
    version_id: str | None = None
    definition_id: str | None = None
    definition_created: bool | None = None
    gallery_created: bool | None = None
    regions: list[RegionProgress] = Field(default_factory=list)
    started: str | None = None
    ended: str | None = None
    polls: int = 0
    executions: int = 1
    error: ErrorView | None = None
    deleted: bool = False  # a version of this run that failed was deleted again (nothing left behind)
    recreated: int = 0  # versions created again after a transient failure of their create


class ExportProgress(WireModel):
    """Custom status (and output) of ``export_disk``."""

    disk_key: str
    state: Literal["starting", "copying", "succeeded", "failed", "canceled"] = "starting"
    copy_state: str | None = None
    blob_url: str | None = None
    bytes_copied: int = 0
    bytes_total: int = 0
    access_revoked: bool = False
    started: str | None = None
    ended: str | None = None
    polls: int = 0
    executions: int = 1
    # Copies restarted (access granted again, for longer) because the snapshot's SAS expired mid-copy.
    restarts: int = 0
    error: ErrorView | None = None

    @property
    def percent(self) -> float:
        return round(100.0 * self.bytes_copied / self.bytes_total, 1) if self.bytes_total else 0.0


class CaptureResult(CaptureKind):
    """Output of a completed ``capture_image``."""

    capture_id: str
    source_vm_id: str
    run_id: str | None = None
    image_version_id: str
    image_version: str
    regions: list[RegionProgress]
    exported_blobs: list[str] = Field(default_factory=list)
    snapshots_kept: list[str] = Field(default_factory=list)
    snapshots_deleted: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)


class CaptureStatusView(CaptureKind):
    """The body of ``GET /api/captures/{id}``."""

    id: str
    run_id: str | None = None  # the capture run shown (names its snapshots and export blobs)
    runtime_status: str
    created_time: str | None = None
    last_updated_time: str | None = None
    source_vm_id: str | None = None
    stage: str | None = None
    generalized: bool = False
    irreversible_note: str | None = None
    stages: list[StageTiming] = Field(default_factory=list)
    disks: list[DiskProgress] = Field(default_factory=list)
    regions: list[RegionProgress] = Field(default_factory=list)
    image_version_id: str | None = None
    image_version_state: str | None = None  # CaptureProgress.image_version_state
    result: CaptureResult | None = None
    error: ErrorView | None = None
    cancel_requested: bool = False
    cancel_reason: str | None = None
    cleaned: list[str] = Field(default_factory=list)


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
