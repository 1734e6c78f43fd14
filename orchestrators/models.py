"""Inputs of the sub-orchestrations, including the state they carry across continue-as-new.

Only the orchestrators use these; activities keep their contracts in ``shared.contracts``.
"""

from __future__ import annotations

from pydantic import Field

from shared.contracts import RUN_ID_ALIASES, CapturePolicy, DefinitionInput, ExportStartInput, VersionInput
from shared.model_base import WireModel


class PublishState(WireModel):
    """What ``publish_version`` carries into its next execution."""

    started: str
    version_id: str
    operation_url: str | None = None  # of the create: lets get_version_status report Azure's error
    definition_id: str | None = None
    definition_created: bool | None = None
    gallery_created: bool | None = None
    polls: int = 0
    executions: int = 1
    recreated: int = 0  # versions created again after their create failed transiently


class PublishVersionInput(WireModel):
    run_id: str = Field(validation_alias=RUN_ID_ALIASES)
    definition: DefinitionInput
    version: VersionInput
    policy: CapturePolicy
    state: PublishState | None = None


class ExportState(WireModel):
    """What ``export_disk`` carries into its next execution."""

    started: str
    blob_url: str
    copy_id: str | None = None
    bytes_copied: int = 0
    bytes_total: int = 0
    last_progress_at: str  # when bytes_copied last grew (stall detection)
    polls: int = 0
    executions: int = 1
    # Copies restarted because the source SAS expired (timing.MAX_COPY_RESTARTS), and when the
    # current copy started (its progress rate paces the polls).
    restarts: int = 0
    copy_started: str | None = None


class ExportDiskInput(WireModel):
    run_id: str = Field(validation_alias=RUN_ID_ALIASES)
    start: ExportStartInput
    policy: CapturePolicy
    state: ExportState | None = None
