"""What a failure after generalize says it left behind: only what is really there, and the right advice."""

from __future__ import annotations

from orchestrators.capture.endings import with_leftovers
from orchestrators.capture.snapshots import mark_deleted as _mark_deleted
from orchestrators.capture.snapshots import snapshots_left
from shared.errors import ErrorInfo
from shared.status import CaptureProgress, DiskProgress

OS = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/snapshots/run-os"
LUN0 = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/snapshots/run-lun0"
VERSION = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/d/versions/1.0.0"


def _progress() -> CaptureProgress:
    return CaptureProgress(
        capture_id="capture-vm-x",
        source_vm_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-x",
        generalized=True,
        image_version_id=VERSION,
        image_version_state="completed",
        disks=[
            DiskProgress(key="os", name="os", snapshot_id=OS),
            DiskProgress(key="lun0", name="d0", snapshot_id=LUN0),
        ],
    )


def test_a_half_done_cleanup_names_only_the_snapshot_still_there() -> None:
    progress = _progress()
    _mark_deleted(progress, [OS.upper()])  # ARM ids compare without case
    assert snapshots_left(progress, [OS, LUN0]) == [LUN0]
    info = ErrorInfo.timed_out(
        "cleanup", "SnapshotDeleteTimedOut", "run-lun0 still existed", resource=LUN0, advice="Delete it."
    )
    text = with_leftovers(info, progress, "vm-x", snapshots_left(progress, [OS, LUN0]))
    assert LUN0 in text.message and OS not in text.message
    assert text.advice is not None and text.advice.startswith("Only the cleanup step failed")
    assert "VHD" not in text.advice  # the export did not fail: no advice about exporting


def test_an_export_failure_after_a_completed_version_says_only_the_export_failed() -> None:
    info = ErrorInfo.terminal(
        "export", "VhdExportFailed", "the copy failed", resource=OS, advice="Check the account."
    )
    text = with_leftovers(info, _progress(), "vm-x", [])
    assert text.advice is not None and text.advice.startswith("Only the VHD export failed")
    assert "No snapshot was left behind." in text.message and "is Completed and usable" in text.message
