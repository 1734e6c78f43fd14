"""What a migration carries and reports: the per-image entry, the inputs of its orchestrations, the view.

The root orchestration (``migrate_images``) lists the images, plans them (``ImageEntry`` each: its
definition and capture id) and runs them in batches (``migrate_batch`` sub-orchestrations of at most
``BATCH_SIZE`` images, each keeping its own short history). ``GET /api/migrations/{id}`` folds the
root's plan and the batches' entries into one ``MigrationView`` (``fold_view``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from shared.contracts import CapturePolicy
from shared.errors import ErrorInfo
from shared.migrations import MigrationRequest
from shared.model_base import WireModel

ImageState = Literal["pending", "running", "completed", "failed", "canceled"]
# Images per batch sub-orchestration: its history stays ~8 events per image, and its custom status
# (at most 16 KB in Azure) holds every entry with errors cut to SHORT_TEXT.
BATCH_SIZE = 16
# A root of at most MAX_BATCHES batches keeps its history short too: larger scopes are refused with advice.
MAX_BATCHES = 64
MAX_IMAGES = BATCH_SIZE * MAX_BATCHES
SHORT_TEXT = 300


class ManagedImageFacts(WireModel):
    """One managed image as ``list_managed_images`` read it."""

    id: str
    name: str
    resource_group: str
    location: str
    os_type: str | None = None
    hyper_v_generation: str | None = None
    provisioning_state: str | None = None
    size_gib: int = 0  # OS and data disks, as the image states them (0 when it does not)


class ImageScope(WireModel):
    scope: str  # /subscriptions/<id> or /subscriptions/<id>/resourceGroups/<rg>


class ManagedImageList(WireModel):
    images: list[ManagedImageFacts] = Field(default_factory=list)


class ManagedImageRef(WireModel):
    image_id: str
    operation_url: str | None = None  # of a delete started earlier (ManagedImageDeletion.operation_url)


class ManagedImageDeletion(WireModel):
    """``delete_managed_image``: gone, or its delete accepted and still running (follow ``operation_url``)."""

    image_id: str
    gone: bool
    operation_url: str | None = None


class ImageEntry(WireModel):
    """One image of a migration: where it goes, how far it got, and what became of its source."""

    image_id: str
    name: str
    resource_group: str
    definition: str
    capture_id: str | None = None
    size_gib: int = 0  # the largest images start first: they take longest
    state: ImageState = "pending"
    version: str | None = None
    version_id: str | None = None
    regions: dict[str, str] = Field(default_factory=dict)  # region -> replication state, from the capture
    boot_test: str | None = None  # the capture's boot-test verdict, when it ran one
    error: ErrorInfo | None = None
    source_deleted: bool = False
    source_note: str | None = None  # why the source was kept (deleteSourceAfter "verified") or how it went
    earlier_run: str | None = None  # the migration run that completed it, when not this one
    batch: int | None = None

    def short(self) -> ImageEntry:
        """The entry with its texts cut for a custom status (the full entry is in the batch's output)."""
        if self.error is None:
            return self
        e = self.error
        cut = e.model_copy(
            update={
                "message": e.message[:SHORT_TEXT],
                "advice": e.advice[:SHORT_TEXT] if e.advice else None,
                "resource": None,
            }
        )
        return self.model_copy(update={"error": cut})


class MigrationInput(WireModel):
    """The root's input. ``plan`` is empty in its first execution, which lists the images, plans them and
    continues as new with the plan (so the listing is not replayed with every batch)."""

    migration_id: str
    run_id: str
    request: MigrationRequest
    policy: CapturePolicy = Field(default_factory=CapturePolicy)
    max_parallel: int = 8
    start_spacing_seconds: float = 0.0  # between the first captures the migration starts
    earlier: list[ImageEntry] = Field(default_factory=list)  # completed by earlier runs (not captured again)
    planned: bool = False
    plan: list[ImageEntry] = Field(default_factory=list)
    error: ErrorInfo | None = None  # the listing failed: the second execution reports it


class BatchInput(WireModel):
    migration_id: str
    run_id: str
    index: int
    request: MigrationRequest
    policy: CapturePolicy = Field(default_factory=CapturePolicy)
    parallel: int = 1
    # The batch's first captures start ``spacing_seconds`` apart, the first after ``offset_seconds``.
    spacing_seconds: float = 0.0
    offset_seconds: float = 0.0
    entries: list[ImageEntry]


class BatchProgress(WireModel):
    """A batch's custom status (entries cut short) and output (entries in full)."""

    migration_id: str
    index: int
    state: Literal["running", "done"] = "running"
    cancel_requested: bool = False
    entries: list[ImageEntry]


MigrationState = Literal["listing", "running", "succeeded", "completedWithFailures", "failed", "canceled"]


class MigrationProgress(WireModel):
    """The root's custom status: its state and the batches started (their entries are in their statuses)."""

    migration_id: str
    run_id: str
    scope: str
    state: MigrationState = "listing"
    total: int = 0
    batches: list[str] = Field(default_factory=list)
    cancel_requested: bool = False
    cancel_reason: str | None = None
    error: ErrorInfo | None = None
    started: str | None = None
    ended: str | None = None


class MigrationCounts(WireModel):
    total: int = 0
    done: int = 0  # completed (this run or an earlier one)
    failed: int = 0
    running: int = 0
    pending: int = 0
    canceled: int = 0
    sources_deleted: int = 0


class MigrationView(WireModel):
    """``GET /api/migrations/{id}``."""

    id: str
    run_id: str | None = None
    runtime_status: str
    state: str
    scope: str | None = None
    gallery: dict[str, Any] | None = None
    delete_source_after: str | None = None
    counts: MigrationCounts
    images: list[ImageEntry] = Field(default_factory=list)
    cancel_requested: bool = False
    error: ErrorInfo | None = None
    started: str | None = None
    ended: str | None = None
    migration_status_uri: str | None = None
    cancel_post_uri: str | None = None


def count(entries: list[ImageEntry]) -> MigrationCounts:
    c = MigrationCounts(total=len(entries))
    for e in entries:
        if e.state == "completed":
            c.done += 1
        elif e.state == "failed":
            c.failed += 1
        elif e.state == "running":
            c.running += 1
        elif e.state == "canceled":
            c.canceled += 1
        else:
            c.pending += 1
        c.sources_deleted += int(e.source_deleted)
    return c


def merge_entries(plan: list[ImageEntry], reported: list[ImageEntry]) -> list[ImageEntry]:
    """The plan, each entry replaced by the newest report of its image (from a batch's status)."""
    by_id = {e.image_id.lower(): e for e in reported}
    return [by_id.get(p.image_id.lower(), p) for p in plan]


def final_state(entries: list[ImageEntry], canceled: bool) -> MigrationState:
    counts = count(entries)
    if canceled and counts.done < counts.total:
        return "canceled"
    return "succeeded" if counts.done == counts.total else "completedWithFailures"
