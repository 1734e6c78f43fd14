"""One typed input and one typed result per activity, defined once.

Orchestrators send ``Input.to_wire()`` (plain JSON) and read ``Result.from_wire(...)``;
activities do the reverse. Nothing here may carry a SAS: blob URLs are always without
their query string.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, model_validator

from shared.model_base import WireModel
from shared.requests import CaptureRequest, GalleryRef, ImageDefinitionSpec, TargetRegion
from shared.sources import VersionSource

# Fields holding a capture RUN id (CaptureInput.run_id) were once named captureId: inputs stored by
# that code still parse.
RUN_ID_ALIASES = AliasChoices("runId", "captureId")


class OperationOutcome(WireModel):
    """How an ARM long-running operation ended (or that it still runs), read from its status URL."""

    status: str  # InProgress | Succeeded | Failed | Canceled | Unknown
    code: str | None = None  # Azure's error code when Failed/Canceled, as Azure spells it
    message: str | None = None  # Azure's message, redacted
    transient: bool = False  # shared.azure_errors.is_transient(code, message): worth retrying


# --- the orchestration's own input ------------------------------------------------------


class CapturePolicy(WireModel):
    """Timing policy, read from settings by the trigger and passed in so orchestrators stay pure."""

    poll_min_seconds: float = 15.0
    poll_max_seconds: float = 300.0
    guest_stop_timeout_seconds: float = 3600.0
    power_state_timeout_seconds: float = 1800.0
    snapshot_timeout_seconds: float = 6 * 3600.0
    copy_stall_seconds: float = 1800.0
    replication_timeout_seconds: float = 72 * 3600.0
    expected_copy_mbps: float = 60.0
    transient_retry_attempts: int = 5
    transient_retry_first_seconds: float = 30.0
    max_polls_per_execution: int = 40
    sas_margin_seconds: int = 3600


class CaptureInput(WireModel):
    capture_id: str  # per VM: the orchestration instance id (shared.ids.capture_instance_id)
    request: CaptureRequest
    policy: CapturePolicy = Field(default_factory=CapturePolicy)
    trigger: Literal["http", "queue", "eventgrid"] = "http"
    # Per capture run (shared.ids.new_run_id), chosen by the trigger: every name and ownership tag of what
    # the run creates derives from it. Inputs written before run ids existed have none: their run id is
    # their capture id, so their replays keep finding the resources they named after it.
    run_id: str = ""

    @model_validator(mode="after")
    def _default_run_id(self) -> CaptureInput:
        if not self.run_id:
            self.run_id = self.capture_id
        return self


# --- VM -------------------------------------------------------------------------------


OsState = Literal["Generalized", "Specialized"]


class VmRef(WireModel):
    vm_id: str
    # The status URL of an operation started on the VM (deallocate): get_power_state reads its outcome.
    operation_url: str | None = None


class DiskFacts(WireModel):
    key: str  # "os" or "lun<N>"
    lun: int | None = None
    name: str
    id: str
    size_gb: int
    sku: str | None = None


class VmFacts(WireModel):
    id: str
    name: str
    resource_group: str
    subscription_id: str
    location: str
    os_type: Literal["Linux", "Windows"]
    hyper_v_generation: Literal["V1", "V2"]
    security_type: Literal["Standard", "TrustedLaunch", "ConfidentialVM"]
    architecture: Literal["x64", "Arm64"]
    vm_size: str | None = None
    power_state: str  # running | stopping | stopped | deallocating | deallocated | starting | unknown
    generalized: bool
    os_disk: DiskFacts
    data_disks: list[DiskFacts] = Field(default_factory=list)

    @property
    def disks(self) -> list[DiskFacts]:
        return [self.os_disk, *self.data_disks]


class PowerState(WireModel):
    """Result of get_power_state / start_deallocate / generalize_vm."""

    vm_id: str
    power_state: str
    provisioning_state: str | None = None
    generalized: bool = False
    operation_url: str | None = None  # of the operation start_deallocate started (no secret in it)
    operation: OperationOutcome | None = None  # that operation's outcome, when get_power_state read it


class GuestPrepareInput(WireModel):
    vm_id: str
    os_type: Literal["Linux", "Windows"]


class GuestPrepareResult(WireModel):
    started: bool
    already_in_progress: bool = False
    # Azure's code + message when it answered 409 "Run command extension execution is in progress":
    # that Run Command may be an earlier execution's of this activity, or someone else's.
    conflict: str | None = None
    command: str  # the RunCommand id used, never the script body
    # The VM's power state when the activity ran; "stopped"/"deallocated" with started=False means the
    # guest is no longer running (e.g. an earlier execution already deprovisioned and stopped it).
    power_state: str | None = None
    # ARM operation-status URL of the Run Command (no secret in it), when Azure returned one.
    operation_url: str | None = None


# --- gallery preflight ------------------------------------------------------------------


class GalleryCheckInput(WireModel):
    gallery: GalleryRef  # subscription_id always resolved
    definition: ImageDefinitionSpec
    version: str  # "auto" or Major.Minor.Patch
    vm: VmFacts
    # The image's OS state: Generalized (captureMode inPlace) or Specialized; the definition's must match.
    os_state: OsState = "Generalized"
    # The capture RUN id (CaptureInput.run_id). When set, a version made by this run (tag
    # image-pipeline:run-id, see shared.ids.made_by_run) is "ours" (an earlier execution of the same run),
    # not a conflict; a version made by an earlier run of the same VM is not.
    run_id: str | None = Field(default=None, validation_alias=RUN_ID_ALIASES)
    # The request's source kind (shared.sources): "vm", or the source whose traits ``vm`` describes.
    source_kind: str = "vm"


class DefinitionFacts(WireModel):
    id: str
    location: str
    os_type: str
    os_state: str
    hyper_v_generation: str
    security_type: str | None = None  # value of the SecurityType feature, if any
    architecture: str


class GalleryCheckResult(WireModel):
    gallery_exists: bool
    gallery_location: str | None = None
    definition: DefinitionFacts | None = None
    resolved_version: str
    version_exists: bool
    version_is_ours: bool = False  # the existing version was made by this same capture (a re-run)
    problems: list[str] = Field(default_factory=list)  # each an actionable sentence


class ExportCheckInput(WireModel):
    account_url: str
    container: str


class ExportCheckResult(WireModel):
    reachable: bool
    container_exists: bool
    problem: str | None = None


# --- region preflight -------------------------------------------------------------------


class RegionsInput(WireModel):
    subscription_id: str


class RegionsResult(WireModel):
    # Region names as ARM knows them for the subscription, normalised like TargetRegion.name
    # (lower case, no spaces: "westeurope"), sorted.
    regions: list[str]


# --- snapshots --------------------------------------------------------------------------


class SnapshotInput(WireModel):
    run_id: str = Field(
        validation_alias=RUN_ID_ALIASES
    )  # names the snapshot (<run-id>-<disk>) and tags it as the run's
    disk: DiskFacts
    subscription_id: str
    resource_group: str
    location: str
    hyper_v_generation: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class SnapshotRef(WireModel):
    snapshot_id: str
    operation_url: str | None = None  # of the snapshot's create (or delete): its outcome explains a failure


class SnapshotResult(WireModel):
    snapshot_id: str
    name: str
    disk_key: str
    lun: int | None = None
    provisioning_state: str
    size_gb: int | None = None
    completion_percent: float | None = None
    exists: bool = True  # False: Azure has no such snapshot (its create failed, or it was deleted)
    operation_url: str | None = None
    failure: OperationOutcome | None = None  # why the create failed, when it did


# --- gallery ----------------------------------------------------------------------------


class DefinitionInput(WireModel):
    gallery: GalleryRef
    definition: ImageDefinitionSpec
    vm: VmFacts
    location: str  # where to create gallery/definition if missing (the VM's region)
    tags: dict[str, str] = Field(default_factory=dict)
    os_state: OsState = "Generalized"  # of a definition created here


class DefinitionResult(WireModel):
    gallery_id: str
    definition_id: str
    gallery_created: bool
    definition_created: bool


class DataSnapshot(WireModel):
    lun: int
    snapshot_id: str


class VersionInput(WireModel):
    run_id: str = Field(
        validation_alias=RUN_ID_ALIASES
    )  # an existing version tagged with it is this run's own work
    gallery: GalleryRef
    definition_name: str
    version: str  # explicit, or (auto) preflight's candidate: the lowest version start_image_version tries
    auto: bool = False  # the request said "auto": start_image_version takes the next free patch
    location: str
    os_snapshot_id: str = ""  # the snapshots' source; empty when ``source`` names another
    data_snapshots: list[DataSnapshot] = Field(default_factory=list)
    source: VersionSource | None = None  # a managed image or VHD blobs instead of snapshots
    target_regions: list[TargetRegion]
    end_of_life_date: str | None = None
    exclude_from_latest: bool = False
    tags: dict[str, str] = Field(default_factory=dict)


class VersionRef(WireModel):
    version_id: str
    # The create operation's status URL from VersionStatus.operation_url: lets get_version_status
    # report Azure's code + message when provisioning failed.
    operation_url: str | None = None


class RegionReplication(WireModel):
    region: str
    state: str  # Unknown | Replicating | Completed | Failed
    progress: int = 0
    details: str | None = None


class VersionStatus(WireModel):
    version_id: str
    exists: bool = True
    provisioning_state: str | None = None
    aggregated_state: str | None = None
    regions: list[RegionReplication] = Field(default_factory=list)
    error: str | None = None  # Azure's error code + message when provisioning failed
    operation_url: str | None = (
        None  # ARM operation-status URL of the create (no secret); pass it back in VersionRef
    )
    failure: OperationOutcome | None = None  # the create operation's outcome when it failed


# --- VHD export -------------------------------------------------------------------------


class ExportStartInput(WireModel):
    run_id: str = Field(validation_alias=RUN_ID_ALIASES)  # the blob is <container>/<run-id>/<disk>.vhd
    snapshot_id: str
    disk_key: str
    disk_name: str
    size_gb: int
    account_url: str
    container: str
    sas_duration_seconds: int


class BlobRef(WireModel):
    blob_url: str  # never with a query string
    copy_id: str | None = None


CopyState = Literal["pending", "success", "failed", "aborted"]


class CopyStatus(WireModel):
    blob_url: str
    copy_id: str | None = None
    status: CopyState
    bytes_copied: int = 0
    bytes_total: int = 0
    description: str | None = None  # redacted

    @property
    def percent(self) -> float:
        return round(100.0 * self.bytes_copied / self.bytes_total, 1) if self.bytes_total else 0.0


class Done(WireModel):
    """Result of an activity whose only outcome is that it happened (idempotent deletes, revokes)."""

    resource_id: str
    changed: bool
    operation_url: str | None = None  # of the delete/revoke started, when it was not waited for
