"""The completion notice: one message per finished capture, on the results queue and to an optional webhook.

Published once when a capture ends, whatever the outcome, by the activity ``publish_notice``
(``activities/notices.py``). The message is JSON (camelCase), base64-encoded on the queue like every
message the Functions host writes (a queue-triggered function reads it as is)::

    {
      "schemaVersion": "1",
      "type": "ImagePipeline.CaptureFinished",
      "noticeId": "capture-vm-web-1a2b3c4d5e@2025-05-01T10:00:00.000000Z",
      "captureId": "capture-vm-web-1a2b3c4d5e",
      "runId": "capture-vm-web-1a2b3c4d5e-20250501100000",
      "sourceVmId": "/subscriptions/…/virtualMachines/vm-web",
      "trigger": "http | queue | eventgrid",
      "outcome": "completed | failed | canceled",
      "imageVersion": "1.4.0",
      "imageVersionId": "/subscriptions/…/galleries/galContoso/images/web-ubuntu/versions/1.4.0",
      "regions": [{"region": "westeurope", "state": "Completed", "progress": 100}],
      "exportedBlobs": ["https://stexports.blob.core.windows.net/vhds/<runId>/vm-web_OsDisk.vhd"],
      "snapshotsKept": [], "snapshotsDeleted": ["/subscriptions/…/snapshots/<runId>-os"],
      "generalized": true,
      "cleaned": ["copy of lun0 aborted", "read access on capture-…-os revoked"],
      "error": {"step": "export", "code": "VhdExportFailed", "message": "…", "advice": "…"},
      "started": "2025-05-01T10:00:00.000000Z", "ended": "2025-05-01T10:42:13.000000Z",
      "timings": {"preflight": 2.1, "snapshot": 35.0, "publish": 2400.5}
    }

Size: a notice always fits one storage-queue message (64 KiB after base64): past ``NOTICE_MAX_BYTES`` of
JSON, long texts are shortened (ending in "…") and long lists keep their first items plus a last entry
"… (N more)" (in ``regions``, an entry whose ``region`` is that marker), until it fits.

Fields that do not apply are omitted (``error`` on success, ``imageVersionId`` when the capture failed
before creating one). Never a SAS: blob URLs are stored without their query string and free text is
redacted. Delivery is at-least-once (an activity may run again after a host crash): consumers dedupe
on ``noticeId``, which is unique per capture run (capture id + start time). ``captureId`` is the same for
every capture of a VM (the status id); ``runId`` names this run (its snapshots ``<runId>-<disk>`` and its
export blobs ``<container>/<runId>/<disk>.vhd``).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from shared.model_base import WireModel
from shared.redaction import redact, strip_query
from shared.status import CaptureProgress, CaptureResult, ErrorView, RegionProgress

NOTICE_TYPE: Literal["ImagePipeline.CaptureFinished"] = "ImagePipeline.CaptureFinished"
Outcome = Literal["completed", "failed", "canceled"]
# A queue message is at most 64 KiB and is base64 (4 bytes per 3): 45 KiB of JSON leaves room to spare.
NOTICE_MAX_BYTES = 45 * 1024
# Successive (text length, list length) bounds tried until the notice fits.
_SHRINK_STEPS = ((4000, 100), (1000, 20), (300, 5), (80, 1), (20, 0))


def _clip(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + "…"


_MORE = re.compile(r"… \(([0-9]+) more\)")


def _more(count: int) -> str:
    return f"… ({count} more)"


def _hidden(marker: str) -> int | None:
    m = _MORE.fullmatch(marker)
    return int(m.group(1)) if m else None


def _clip_list(items: list[str], texts: int, items_max: int) -> list[str]:
    extra = _hidden(items[-1]) if items else None
    if extra is not None:  # shortened before: its marker counts what was left out then
        items = items[:-1]
    hidden = (extra or 0) + max(0, len(items) - items_max)
    kept = [_clip(i, texts) or "" for i in items[:items_max]]
    return [*kept, _more(hidden)] if hidden else kept


def _clip_regions(regions: list[RegionProgress], texts: int, items_max: int) -> list[RegionProgress]:
    extra = _hidden(regions[-1].region) if regions else None
    if extra is not None:
        regions = regions[:-1]
    hidden = (extra or 0) + max(0, len(regions) - items_max)
    kept = [
        r.model_copy(update={"region": _clip(r.region, texts) or "", "details": _clip(r.details, texts)})
        for r in regions[:items_max]
    ]
    return [*kept, RegionProgress(region=_more(hidden))] if hidden else kept


class CaptureNotice(WireModel):
    """The completion notice (see the module docstring for the wire format)."""

    schema_version: Literal["1"] = "1"
    type: Literal["ImagePipeline.CaptureFinished"] = NOTICE_TYPE
    notice_id: str
    capture_id: str
    run_id: str | None = None
    source_vm_id: str | None = None  # a VM source's id (None for the other sources)
    source_kind: str = "vm"  # "vm", "managedImage", "snapshots", "vhds"
    source_id: str | None = None
    trigger: str = "http"
    outcome: Outcome
    image_version: str | None = None
    image_version_id: str | None = None
    regions: list[RegionProgress] = Field(default_factory=list)
    exported_blobs: list[str] = Field(default_factory=list)
    snapshots_kept: list[str] = Field(default_factory=list)
    snapshots_deleted: list[str] = Field(default_factory=list)
    generalized: bool = False
    cleaned: list[str] = Field(default_factory=list)
    error: ErrorView | None = None
    started: str | None = None
    ended: str | None = None
    timings: dict[str, float] = Field(default_factory=dict)

    @field_validator("exported_blobs")
    @classmethod
    def _no_sas(cls, v: list[str]) -> list[str]:
        return [strip_query(u) for u in v]

    @field_validator("cleaned")
    @classmethod
    def _redacted(cls, v: list[str]) -> list[str]:
        return [redact(s) for s in v]

    @field_validator("error")
    @classmethod
    def _redacted_error(cls, v: ErrorView | None) -> ErrorView | None:
        return ErrorView.from_info(v) if v is not None else None

    def wire_size(self) -> int:
        """Bytes of the notice's JSON as it is queued and posted (compact separators)."""
        return len(json.dumps(self.to_wire(), separators=(",", ":")))

    @model_validator(mode="after")
    def _fits_a_queue_message(self) -> CaptureNotice:
        for texts, items in _SHRINK_STEPS:
            if self.wire_size() <= NOTICE_MAX_BYTES:
                break
            self._shrink(texts, items)
        return self

    def _shrink(self, texts: int, items: int) -> None:
        for name in ("exported_blobs", "snapshots_kept", "snapshots_deleted", "cleaned"):
            setattr(self, name, _clip_list(getattr(self, name), texts, items))
        self.regions = _clip_regions(self.regions, texts, items)
        if len(self.timings) > max(items, 20):
            self.timings = dict(list(self.timings.items())[: max(items, 20)])
        if self.error is not None:
            update: dict[str, Any] = {
                "message": _clip(self.error.message, texts) or "",
                "advice": _clip(self.error.advice, texts),
                "resource": _clip(self.error.resource, texts),
                "code": _clip(self.error.code, max(texts, 100)) or "",
                "step": _clip(self.error.step, max(texts, 100)) or "",
            }
            self.error = self.error.model_copy(update=update)


def notice_id(capture_id: str, started: str | None) -> str:
    return f"{capture_id}@{started}" if started else capture_id


def notice_from_result(
    result: CaptureResult, *, trigger: str, started: str | None, ended: str | None, generalized: bool
) -> CaptureNotice:
    """The notice of a completed capture (pure: safe to call in an orchestrator)."""
    return CaptureNotice(
        notice_id=notice_id(result.capture_id, started),
        capture_id=result.capture_id,
        run_id=result.run_id or result.capture_id,
        source_vm_id=result.source_vm_id,
        source_kind=result.source_kind,
        source_id=result.source_id,
        trigger=trigger,
        outcome="completed",
        image_version=result.image_version,
        image_version_id=result.image_version_id or None,
        regions=result.regions,
        exported_blobs=result.exported_blobs,
        snapshots_kept=result.snapshots_kept,
        snapshots_deleted=result.snapshots_deleted,
        generalized=generalized,
        started=started,
        ended=ended,
        timings=result.timings,
    )


def notice_from_progress(
    progress: CaptureProgress,
    *,
    outcome: Outcome,
    trigger: str,
    started: str | None,
    ended: str | None,
    cleaned: list[str] | None = None,
    snapshots_kept: list[str] | None = None,
    snapshots_deleted: list[str] | None = None,
) -> CaptureNotice:
    """The notice of a failed or canceled capture, from the progress it had made (pure)."""
    return CaptureNotice(
        notice_id=notice_id(progress.capture_id, started),
        capture_id=progress.capture_id,
        run_id=progress.run_id or progress.capture_id,
        source_vm_id=progress.source_vm_id,
        source_kind=progress.source_kind,
        source_id=progress.source_id,
        trigger=trigger,
        outcome=outcome,
        image_version=progress.image_version,
        image_version_id=progress.image_version_id,
        regions=progress.regions if progress.image_version_id else [],
        exported_blobs=[d.blob_url for d in progress.disks if d.blob_url and d.copy_state == "success"],
        snapshots_kept=snapshots_kept or [],
        snapshots_deleted=snapshots_deleted or [],
        generalized=progress.generalized,
        cleaned=cleaned or [],
        error=progress.error,
        started=started,
        ended=ended,
        timings={s.name: s.seconds for s in progress.stages if s.seconds is not None},
    )


class NoticeInput(WireModel):
    """Input of the ``publish_notice`` activity (orchestration history: never a secret in it)."""

    notice: CaptureNotice
    webhook_url: str | None = None  # a URL without query string (validated at intake)
    # The app setting whose value is the webhook URL (notify.webhookSetting); the activity reads it.
    webhook_setting: str | None = None


class WebhookDelivery(WireModel):
    url: str  # without its query string
    setting: str | None = None  # the app setting the URL came from, if any
    delivered: bool
    attempts: int
    status_code: int | None = None
    error: str | None = None


class NoticeResult(WireModel):
    """Result of ``publish_notice``: what was delivered; failures are reported here, never raised."""

    queue: str
    queued: bool
    queue_error: str | None = None
    webhook: WebhookDelivery | None = None
