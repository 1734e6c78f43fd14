"""``shared.status.aggregate_status``: the readable status folded from the main instance and its branches."""

from __future__ import annotations

import json

from orchestrators.retrying import StepFailed
from shared.errors import ErrorInfo
from shared.instances import InstanceSnapshot
from shared.redaction import contains_secret
from shared.status import (
    CaptureProgress,
    CaptureResult,
    DiskProgress,
    ExportProgress,
    RegionProgress,
    Stage,
    VersionProgress,
)
from shared.status_view import aggregate_status

CID = "capture-vm-web-0123456789"
VM = "/subscriptions/s/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/vm-web"


def _main_progress() -> CaptureProgress:
    p = CaptureProgress(capture_id=CID, source_vm_id=VM, export=True, stage=Stage.PUBLISH, generalized=True)
    p.disks = [
        DiskProgress(key="os", name="osd", size_gb=30),
        DiskProgress(key="lun0", name="d0", lun=0, size_gb=64),
    ]
    p.regions = [RegionProgress(region="westeurope"), RegionProgress(region="eastus2")]
    for name in ("preflight", "prepare", "deallocate", "generalize", "snapshot"):
        s = p.stage_of(Stage(name))
        s.state, s.started, s.ended = (
            "succeeded",
            "2024-01-01T00:00:00.000000Z",
            "2024-01-01T00:01:00.000000Z",
        )
    p.stage_of(Stage.PUBLISH).state = "running"
    p.stage_of(Stage.EXPORT).state = "running"
    return p


def test_running_capture_merges_branch_progress():
    main = InstanceSnapshot("Running", custom_status=json.dumps(_main_progress().to_wire()))
    version = InstanceSnapshot(
        "Running",
        custom_status=VersionProgress(
            state="replicating",
            version_id="/x/versions/1.0.0",
            started="2024-01-01T00:01:00.000000Z",
            regions=[
                RegionProgress(region="westeurope", state="Completed", progress=100),
                RegionProgress(region="eastus2", state="Replicating", progress=40),
            ],
        ).to_wire(),
    )
    exports = {
        "os": InstanceSnapshot(
            "Running",
            custom_status=ExportProgress(
                disk_key="os",
                state="copying",
                copy_state="pending",
                blob_url="https://st/vhds/c/osd.vhd?sv=1&sig=abcdefghijklmnop",
                bytes_copied=250,
                bytes_total=1000,
                started="2024-01-01T00:01:00.000000Z",
            ).to_wire(),
        ),
        "lun0": InstanceSnapshot(
            "Completed",
            custom_status=ExportProgress(
                disk_key="lun0",
                state="succeeded",
                copy_state="success",
                blob_url="https://st/vhds/c/d0.vhd",
                bytes_copied=10,
                bytes_total=10,
                access_revoked=True,
                started="2024-01-01T00:01:00.000000Z",
                ended="2024-01-01T00:02:00.000000Z",
            ).to_wire(),
        ),
    }
    view = aggregate_status(CID, main, version, exports)
    body = view.to_wire()
    assert body["runtimeStatus"] == "Running"
    assert body["stage"] == "publish"
    assert body["generalized"] is True
    assert [r["progress"] for r in body["regions"]] == [100, 40]
    os_disk, data = body["disks"]
    assert os_disk["copyPercent"] == 25.0 and os_disk["bytesCopied"] == 250
    assert os_disk["blobUrl"] == "https://st/vhds/c/osd.vhd"  # query stripped
    assert data["copyPercent"] == 100.0 and data["accessRevoked"] is True
    stages = {s["name"]: s for s in body["stages"]}
    assert stages["export"]["state"] == "running"
    assert stages["publish"]["started"] == "2024-01-01T00:01:00.000000Z"
    assert stages["snapshot"]["state"] == "succeeded"
    assert not contains_secret(json.dumps(body))


def test_completed_capture_shows_the_result():
    p = _main_progress()
    p.stage, p.state = Stage.DONE, "succeeded"
    result = CaptureResult(
        capture_id=CID,
        source_vm_id=VM,
        image_version_id="/x/versions/1.0.0",
        image_version="1.0.0",
        regions=[RegionProgress(region="westeurope", state="Completed", progress=100)],
        exported_blobs=["https://st/vhds/c/osd.vhd"],
        timings={"preflight": 1.0},
    )
    view = aggregate_status(
        CID, InstanceSnapshot("Completed", custom_status=p.to_wire(), output=result.to_wire())
    )
    assert view.result is not None and view.result.image_version == "1.0.0"
    assert view.error is None


def test_failed_capture_error_comes_from_the_envelope_when_no_custom_status_error():
    exc = StepFailed(
        ErrorInfo(
            kind="terminal",
            step="preflight",
            code="PreflightFailed",
            message="bad V1 definition",
            advice="use a V2 definition",
        )
    )
    output = f"Orchestrator function 'capture_image' failed: {exc}"
    view = aggregate_status(CID, InstanceSnapshot("Failed", output=output))
    assert view.error is not None
    assert (view.error.step, view.error.code) == ("preflight", "PreflightFailed")
    assert view.error.advice == "use a V2 definition"


def test_failed_capture_without_envelope_is_still_readable_and_redacted():
    view = aggregate_status(
        CID, InstanceSnapshot("Failed", output="boom at https://a/b?sig=secretsecretsecret")
    )
    assert view.error is not None and "secretsecret" not in view.error.message


def test_garbage_custom_status_does_not_break_the_view():
    view = aggregate_status(CID, InstanceSnapshot("Running", custom_status="not json"), None, {})
    assert view.runtime_status == "Running" and view.stage is None
