"""End-to-end captures through devhost + azsim + Azurite, with the real Azure SDKs and function_app.py.

Each test gets a fresh local cloud and devhost (fixture ``stack``) and ends by checking that no
SAS signature or token reached devhost's history store, its logs, or any status the API answered.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from e2e_harness import Stack

pytestmark = pytest.mark.e2e


def _generalized(stack: Stack, vm: str) -> bool:
    view = stack.compute().virtual_machines.instance_view("rg-build", vm)
    return any((s.code or "").lower() == "osstate/generalized" for s in view.statuses or [])


def _power(stack: Stack, vm: str) -> str:
    view = stack.compute().virtual_machines.instance_view("rg-build", vm)
    codes = [s.code or "" for s in view.statuses or [] if (s.code or "").startswith("PowerState/")]
    return codes[0].split("/", 1)[1] if codes else "unknown"


def _capture_snapshots(stack: Stack, capture_id: str) -> list[str]:
    return [
        s.name
        for s in stack.compute().snapshots.list_by_resource_group("rg-build")
        if (s.tags or {}).get("image-pipeline:capture-id") == capture_id
    ]


def test_linux_gen2_with_data_disk_to_three_regions_with_export(stack: Stack) -> None:
    body = stack.request("vm-web")
    code, answer, headers = stack.post(body)
    assert code == 202, answer
    cid = answer["id"]
    assert cid.startswith("capture-vm-web-")
    assert answer["statusQueryGetUri"] and headers.get("Location")
    assert answer["captureStatusUri"].endswith(f"/api/captures/{cid}")

    status = stack.wait(cid)
    assert status["runtimeStatus"] == "Completed", status
    result = status["result"]
    assert result["imageVersion"] == "1.0.0"
    assert result["imageVersionId"].endswith("/galleries/galContoso/images/vm-web-def/versions/1.0.0")
    assert {r["region"]: r["state"] for r in result["regions"]} == {
        "westeurope": "Completed",
        "eastus2": "Completed",
        "northeurope": "Completed",
    }
    stages = {s["name"]: s for s in status["stages"]}
    assert all(stages[n]["state"] == "succeeded" for n in stages), stages
    assert set(result["timings"]) == set(stages)
    assert status["generalized"] is True and "can no longer be started" in status["irreversibleNote"]
    disks = {d["key"]: d for d in status["disks"]}
    assert set(disks) == {"os", "lun0"}
    for d in disks.values():
        assert d["copyPercent"] == 100.0 and d["bytesCopied"] == d["bytesTotal"] > 0
        assert d["accessRevoked"] is True
        assert "?" not in d["blobUrl"]

    # Azure's side, through the real SDKs.
    version = stack.compute().gallery_image_versions.get(
        "rg-images", "galContoso", "vm-web-def", "1.0.0", expand="ReplicationStatus"
    )
    targets = {r.name.replace(" ", "").lower(): r for r in version.publishing_profile.target_regions}
    assert set(targets) == {"westeurope", "eastus2", "northeurope"}
    assert targets["westeurope"].regional_replica_count == 2
    assert version.tags["image-pipeline:capture-id"] == cid
    assert [d.lun for d in version.storage_profile.data_disk_images] == [0]
    assert _generalized(stack, "vm-web")
    assert _capture_snapshots(stack, cid) == []  # deleteSnapshots: nothing left behind
    blobs = stack.cloud.blob_service("stexports").get_container_client("vhds")
    names = sorted(b.name for b in blobs.list_blobs(name_starts_with=f"{cid}/"))
    assert names == sorted(urlsplit(u).path.split("/vhds/", 1)[1] for u in result["exportedBlobs"])
    assert len(names) == 2
    props = blobs.get_blob_client(names[0]).get_blob_properties()
    assert props.copy.status == "success"
