"""The HTTP API's answer bodies (and the bodies it reads besides a capture request), as wire models.

The triggers build these bodies as dicts (``triggers.http_helpers``, ``triggers.http_captures``,
``triggers.http_cancel``, ``triggers.eventgrid_captures``); the models here describe them for the OpenAPI
document (``shared.openapi``), and the schemathesis run against devhost checks every answer against that
document. The capture request and the status view are ``shared.requests.CaptureRequest`` and
``shared.status.CaptureStatusView``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from shared.model_base import WireModel
from shared.requests import FieldError


class ErrorDetail(WireModel):
    code: str = Field(description="What went wrong, e.g. CaptureNotFound, CaptureAlreadyRunning.")
    message: str = Field(description="What happened and what to do about it.")


class ErrorBody(WireModel):
    """One error: what went wrong and what to do."""

    error: ErrorDetail


class FieldErrors(WireModel):
    """A refused request: every invalid field and why, so it can be fixed in one round trip.

    ``field`` is the JSON path of the field (``gallery.name``, ``targetRegions[1].name``) or ``(body)`` for
    the body as a whole (too large, too deep, not JSON, not an object). At most 50 errors are listed; a
    last ``(body)`` entry counts the rest.
    """

    errors: list[FieldError]


class CaptureAccepted(WireModel):
    """A capture was started (202): follow ``captureStatusUri`` (also in ``Location``)."""

    id: str = Field(description="The capture id: one per VM, the same for every capture of that VM.")
    run_id: str = Field(description="This capture run's id (names its snapshots and export blobs).")
    capture_status_uri: str = Field(description="GET it for the capture's status.")
    cancel_post_uri: str = Field(description="POST to it to cancel the capture.")


class CaptureAlreadyRunning(WireModel):
    """409: a capture of this VM is active; nothing was started."""

    error: ErrorDetail
    id: str
    runtime_status: str = Field(description="The active capture's Durable runtime status.")
    capture_status_uri: str
    cancel_post_uri: str


class VersionAlreadyTargeted(WireModel):
    """409: another active capture targets the same explicit image version; nothing was started."""

    error: ErrorDetail
    id: str = Field(description="The id of the capture that targets that version.")
    capture_status_uri: str


class CancelRequest(WireModel):
    """The optional body of a cancel: a reason recorded with the cancellation (cut at 500 characters).

    Any other body (not JSON, not an object, other fields) is ignored: the cancel goes ahead without a reason.
    """

    model_config = ConfigDict(extra="allow")

    reason: str | None = None


class CancelAccepted(WireModel):
    """202: the cancel was raised; the capture stops at its next safe point and cleans up."""

    id: str
    runtime_status: str
    message: str
    capture_status_uri: str


class CaptureAlreadyFinished(WireModel):
    """409: the capture already ended (Completed, Failed, Terminated, Canceled): nothing to cancel."""

    error: ErrorDetail
    id: str
    runtime_status: str
    capture_status_uri: str


class EventGridEvent(WireModel):
    """An event in the Event Grid schema (a delivery is an array of them)."""

    model_config = ConfigDict(extra="allow")

    id: str
    topic: str | None = None
    subject: str
    event_type: str
    event_time: str = Field(description="RFC 3339 with an offset.")
    data: dict[str, Any] = Field(default_factory=dict)
    data_version: str | None = None


class CloudEvent(WireModel):
    """A CloudEvents 1.0 event (delivered alone, or in a batch array)."""

    model_config = ConfigDict(extra="allow")

    specversion: str
    id: str
    source: str
    type: str
    subject: str | None = None
    time: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class DeliverySummary(WireModel):
    """A delivery was handled (200), or one event hit a transient failure (503: Event Grid redelivers)."""

    received: int = Field(description="How many events the delivery held.")
    outcomes: dict[str, int] = Field(
        description="How many events ended how: started, ignored, refused, duplicate, untagged, disabled, "
        "invalid-tags, stale, vm-gone, version-taken, failed, retry."
    )


class ValidationResponse(WireModel):
    """The answer to Event Grid's subscription validation handshake."""

    validation_response: str = Field(description="The delivery's data.validationCode, echoed.")


class CaptureListEntry(WireModel):
    """One capture in ``GET /api/captures``: what its status view shows at the top."""

    id: str
    run_id: str | None = Field(default=None, description="The latest run's id.")
    runtime_status: str = Field(description="As in the status view (Canceled for a canceled capture).")
    source_vm_id: str | None = None
    source_kind: str | None = Field(default=None, description="vm, managedImage, snapshots or vhds.")
    source_id: str | None = Field(default=None, description="The VM, image, OS snapshot or OS VHD URI.")
    stage: str | None = Field(default=None, description="The stage the capture is in, or ended in.")
    created_time: str | None = None
    last_updated_time: str | None = None
    capture_status_uri: str


class CaptureList(WireModel):
    """``GET /api/captures``: captures newest first (sub-orchestrations left out)."""

    captures: list[CaptureListEntry]
