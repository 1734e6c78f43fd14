"""The capture's progress model (custom status of each orchestration) and the status view of the API.

Three orchestrations report progress, each through its own Durable custom status:

- the main ``capture_image`` instance: ``CaptureProgress`` (mode, stage timings, disks, error);
- ``<run-id>:version`` (``publish_version``): ``VersionProgress`` (per-region replication);
- ``<run-id>:export:<disk>`` (``export_disk``): ``ExportProgress`` (copy bytes, SAS revoked).

``<run-id>`` is ``CaptureProgress.run_id`` (``shared.ids.new_run_id``; older captures: the capture id).
``shared.status_view.aggregate_status`` folds the three into the one readable ``CaptureStatusView`` that
``GET /api/captures/{id}`` answers. It is a pure function so it can be unit-tested without a host.
Nothing here may hold a SAS: blob URLs are always stored without their query string.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from shared.clones import CloneProgress
from shared.errors import ErrorInfo
from shared.marketplace_spec import MarketplaceHandoff
from shared.model_base import WireModel
from shared.release_spec import RetentionReport, ShareReport
from shared.request_rules import CaptureKind
from shared.verify_spec import BootTestProgress


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
    # The release stages, in plan order (orchestrators.capture.plan.RELEASE).
    VERIFY = "verify"  # the boot test per region (verify.bootTest)
    PROMOTE = "promote"  # excludeFromLatest lifted once every boot test passed
    RETAIN = "retain"  # retention: the oldest versions of the definition beyond retention.keepLatest deleted
    SHARE = "share"  # share.principals: role assignments on the gallery
    HANDOFF = "handoff"  # the Marketplace hand-off (shared.marketplace_spec), the last release stage
    RESTART = "restart"  # specialized, consistency "stopped": the VM started again after the snapshots
    CLEANUP = "cleanup"
    # captureMode "clone" (orchestrators.capture.clone): the copy of the VM is built, prepared, captured, deleted.
    CLONE_DISKS = "cloneDisks"
    CLONE_VM = "cloneVm"
    CLONE_DEALLOCATE = "cloneDeallocate"
    CLONE_SNAPSHOT = "cloneSnapshot"
    DELETE_CLONE = "deleteClone"
    # Not stages of the pipeline: the capture's whereabouts once it finished or while it is undone.
    DONE = "done"
    CANCELING = "canceling"
    CANCELED = "canceled"


# The stages an inPlace capture reports, in order (each a ``StageTiming`` in ``CaptureProgress.stages``);
# a run of another plan lists its plan's stages instead (``orchestrators.capture.plan``).
_NOT_IN_PLACE: tuple[Stage, ...] = (Stage.RESTART, Stage.DONE, Stage.CANCELING, Stage.CANCELED)
_NOT_IN_PLACE += (
    Stage.CLONE_DISKS,
    Stage.CLONE_VM,
    Stage.CLONE_DEALLOCATE,
    Stage.CLONE_SNAPSHOT,
    Stage.DELETE_CLONE,
)
STAGES: tuple[Stage, ...] = tuple(s for s in Stage if s not in _NOT_IN_PLACE)

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
    source_vm_id: str | None = None  # a VM source's id (None for the other sources)
    # The source: "vm", "managedImage", "snapshots", "vhds" (shared.sources) and the id naming it.
    source_kind: str = "vm"
    source_id: str | None = None
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
    # With a boot test: "bootTestFailed" (kept, excluded from latest) or "promoted".
    image_version_state: str | None = None
    disks: list[DiskProgress] = Field(default_factory=list)
    regions: list[RegionProgress] = Field(default_factory=list)
    boot_tests: list[BootTestProgress] = Field(default_factory=list)  # per region (verify.bootTest)
    export: bool = False
    error: ErrorView | None = None
    # Cancellation (POST /api/captures/{id}/cancel): requested, why, and what the compensation did.
    cancel_requested: bool = False
    cancel_reason: str | None = None
    cleaned: list[str] = Field(default_factory=list)
    retention: RetentionReport | None = None  # what the retain stage deleted and kept, and why
    shared: list[ShareReport] = Field(default_factory=list)  # the share stage's role assignments
    # What Partner Center needs (no SAS: POST /api/captures/{id}/marketplace-sas issues it).
    marketplace: MarketplaceHandoff | None = None
    clone: CloneProgress | None = None  # captureMode "clone": the copy's resources while they exist

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
    source_vm_id: str | None = None  # a VM source's id (None for the other sources)
    source_kind: str = "vm"  # CaptureProgress.source_kind
    source_id: str | None = None
    run_id: str | None = None
    image_version_id: str
    image_version: str
    regions: list[RegionProgress]
    exported_blobs: list[str] = Field(default_factory=list)
    snapshots_kept: list[str] = Field(default_factory=list)
    snapshots_deleted: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    retention: RetentionReport | None = None
    shared: list[ShareReport] = Field(default_factory=list)
    marketplace: MarketplaceHandoff | None = None
    boot_tests: list[BootTestProgress] = Field(default_factory=list)  # per region, when verify.bootTest ran


class CaptureStatusView(CaptureKind):
    """The body of ``GET /api/captures/{id}``."""

    id: str
    run_id: str | None = None  # the capture run shown (names its snapshots and export blobs)
    runtime_status: str
    created_time: str | None = None
    last_updated_time: str | None = None
    source_vm_id: str | None = None
    source_kind: str | None = None  # CaptureProgress.source_kind
    source_id: str | None = None
    stage: str | None = None
    generalized: bool = False
    irreversible_note: str | None = None
    stages: list[StageTiming] = Field(default_factory=list)
    disks: list[DiskProgress] = Field(default_factory=list)
    regions: list[RegionProgress] = Field(default_factory=list)
    boot_tests: list[BootTestProgress] = Field(default_factory=list)  # CaptureProgress.boot_tests
    image_version_id: str | None = None
    image_version_state: str | None = None  # CaptureProgress.image_version_state
    result: CaptureResult | None = None
    error: ErrorView | None = None
    cancel_requested: bool = False
    cancel_reason: str | None = None
    cleaned: list[str] = Field(default_factory=list)
    retention: RetentionReport | None = None
    shared: list[ShareReport] = Field(default_factory=list)
    marketplace: MarketplaceHandoff | None = None
    clone: CloneProgress | None = None  # captureMode "clone": the copy's resources while they exist
