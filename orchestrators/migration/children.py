"""One image's capture inside a batch: its input, how its ending reads, and whether its source may go.

The capture is ``capture_image`` with ``source: {"managedImageId": …}`` into the definition the plan
named (created if missing: osType, osState Generalized and Hyper-V generation come from the image). Its
run id is ``<capture id>-<the migration run's stamp>``, so every re-execution of the batch starts the
same run, and the next migration run of a failed image starts a new one.
"""

from __future__ import annotations

from typing import Any

from azure.durable_functions.models.Task import TaskState

from orchestrators.retrying import failure_info
from shared.contracts import CaptureInput
from shared.errors import ErrorInfo
from shared.migration_status import BatchInput, ImageEntry
from shared.migrations import MigrationRequest
from shared.requests import CaptureRequest
from shared.status import CaptureResult

TAG_MIGRATION_ID = "image-pipeline:migration-id"
_STAMP = 14  # yyyymmddHHMMSS at the end of a run id (shared.ids.new_run_id)


_BUSY = (
    "Another capture of this image is running (a direct capture or another migration), and Azure makes one "
    "image version from a managed image at a time: wait for it to end, then post the migration again."
)


_RENAME = (
    "In a migration: post it again with a definitionName rule that gives this image a definition of its "
    "own (e.g. 'migrated-{image}'); the images already completed are not captured again."
)


def child_request(req: MigrationRequest, entry: ImageEntry, migration_id: str) -> CaptureRequest:
    gallery = req.gallery.model_copy(update={"subscription_id": req.gallery_subscription_id})
    return CaptureRequest.from_wire(
        {
            "source": {"managedImageId": entry.image_id},
            "gallery": gallery.to_wire(),
            "imageDefinition": {
                "name": entry.definition,
                "publisher": req.publisher,
                "offer": req.offer,
                "sku": entry.definition,
                "createIfMissing": True,
            },
            "version": req.version,
            "targetRegions": [r.to_wire() for r in req.target_regions],
            "deleteSnapshots": True,
            "tags": {**req.tags, TAG_MIGRATION_ID: migration_id},
        }
    )


def child_input(inp: BatchInput, entry: ImageEntry) -> dict[str, Any]:
    """The ``capture_image`` input of one image (``entry.capture_id`` is its instance id)."""
    cid = entry.capture_id or ""
    return CaptureInput(
        capture_id=cid,
        run_id=f"{cid}-{inp.run_id[-_STAMP:]}",
        request=child_request(inp.request, entry, inp.migration_id),
        policy=inp.policy,
        trigger="http",
    ).to_wire()


def record(entry: ImageEntry, task: Any) -> ImageEntry:
    """The entry once its capture ended: completed (version, regions), canceled, or failed with its error."""
    if task.state == TaskState.FAILED:
        info = failure_info(task.result, step="capture")
        if info.code == "UnexpectedFailure" and "already exists" in info.message:
            info = info.model_copy(update={"code": "CaptureAlreadyRunning", "advice": _BUSY})
        elif info.step == "preflight" and "definition" in info.message:
            info = info.model_copy(update={"advice": f"{info.advice or ''} {_RENAME}".strip()})
        return entry.model_copy(update={"state": "failed", "error": ErrorInfo.from_info(info)})
    output = task.result if isinstance(task.result, dict) else {}
    if output.get("outcome") == "canceled":
        error = ErrorInfo.canceled("cancel", "The image's capture was canceled.", resource=entry.image_id)
        return entry.model_copy(update={"state": "canceled", "error": error})
    try:
        result = CaptureResult.from_wire(output)
    except ValueError:
        info = ErrorInfo.terminal(
            "capture", "UnexpectedFailure", "The image's capture ended without a readable result."
        )
        return entry.model_copy(update={"state": "failed", "error": info})
    return entry.model_copy(
        update={
            "state": "completed",
            "version": result.image_version,
            "version_id": result.image_version_id,
            "regions": {r.region: r.state for r in result.regions},
            "boot_test": _boot_verdict(result),
        }
    )


def _boot_verdict(result: CaptureResult) -> str | None:
    """The capture's boot-test verdict (``CaptureResult.boot_tests``, one per region), None without one."""
    if not result.boot_tests:
        return None
    return "passed" if all(b.state == "passed" for b in result.boot_tests) else "failed"


def why_kept(entry: ImageEntry, req: MigrationRequest) -> str | None:
    """Why the source of a completed image must stay (None: it may be deleted)."""
    wanted = {r.name for r in req.target_regions}
    missing = sorted(wanted - set(entry.regions))
    pending = sorted(r for r, state in entry.regions.items() if state.lower() != "completed")
    if not entry.regions or missing or pending:
        shown = ", ".join(missing + pending) or "every region"
        return f"source kept: the version is not Completed in {shown}"
    if entry.boot_test is not None and entry.boot_test not in ("passed", "succeeded"):
        return f"source kept: the version's boot test did not pass ({entry.boot_test})"
    return None
