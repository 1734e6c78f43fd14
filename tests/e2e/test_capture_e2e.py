"""End-to-end captures through devhost + azsim + Azurite, with the real Azure SDKs and function_app.py.

Each test gets a fresh local cloud and devhost (fixture ``stack``) and ends by checking that no
SAS signature or token reached devhost's history store, its logs, or any status the API answered.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.support.stack import Stack
from tests.support.worlds import RELEASE_STAGES

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
    assert headers.get("Location") == answer["captureStatusUri"]
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
    # No verify, retention, share or marketplace part in the request: the release stages are skipped.
    assert {stages.pop(n)["state"] for n in RELEASE_STAGES} == {"skipped"}
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
    run_id = status["runId"]
    assert run_id.startswith(f"{cid}-") and result["runId"] == run_id
    assert version.tags["image-pipeline:run-id"] == run_id
    names = sorted(b.name for b in blobs.list_blobs(name_starts_with=f"{run_id}/"))
    assert names == sorted(urlsplit(u).path.split("/vhds/", 1)[1] for u in result["exportedBlobs"])
    assert len(names) == 2
    props = blobs.get_blob_client(names[0]).get_blob_properties()
    assert props.copy.status == "success"
    assert stack.active_access() == []  # every granted SAS was revoked
    assert stack.arm_requests() <= 100


def test_export_off_version_auto_definition_created_then_reused(stack: Stack) -> None:
    shared_def = {"name": "linux-gen2", "publisher": "contoso", "offer": "linux", "sku": "gen2"}
    first = stack.run(stack.request("vm-web-2", export=False, version="auto", imageDefinition=shared_def))
    assert first["runtimeStatus"] == "Completed", first.get("error")
    assert first["result"]["imageVersion"] == "1.0.0"
    stages = {s["name"]: s["state"] for s in first["stages"]}
    assert stages["export"] == "skipped"
    assert all("copyState" not in d for d in first["disks"])
    assert first["result"]["exportedBlobs"] == []

    # A second VM into the now existing, compatible definition: the next patch version.
    second = stack.run(stack.request("vm-web-3", export=False, version="auto", imageDefinition=shared_def))
    assert second["runtimeStatus"] == "Completed", second.get("error")
    assert second["result"]["imageVersion"] == "1.0.1"
    names = sorted(
        v.name
        for v in stack.compute().gallery_image_versions.list_by_gallery_image(
            "rg-images", "galContoso", "linux-gen2"
        )
    )
    assert names == ["1.0.0", "1.0.1"]
    # vm-web-3 has no data disk: a version with only an OS disk.
    v = stack.compute().gallery_image_versions.get("rg-images", "galContoso", "linux-gen2", "1.0.1")
    assert not v.storage_profile.data_disk_images


def test_incompatible_existing_definition_fails_in_preflight_and_leaves_vm_running(stack: Stack) -> None:
    from azure.mgmt.compute.models import Gallery, GalleryImage, GalleryImageIdentifier

    compute = stack.compute()
    compute.galleries.begin_create_or_update(
        "rg-images", "galContoso", Gallery(location="westeurope")
    ).result()
    compute.gallery_images.begin_create_or_update(
        "rg-images",
        "galContoso",
        "web-v1",
        GalleryImage(  # type: ignore[call-overload]  # flattened properties: accepted at runtime, not in the overloads
            location="westeurope",
            os_type="Linux",
            os_state="Generalized",
            hyper_v_generation="V1",
            identifier=GalleryImageIdentifier(publisher="contoso", offer="web", sku="v1"),
        ),
    ).result()
    status = stack.run(stack.request("vm-web", imageDefinition={"name": "web-v1", "createIfMissing": False}))
    assert status["runtimeStatus"] == "Failed"
    err = status["error"]
    assert err["step"] == "preflight"
    assert "V1" in err["message"] and "V2" in err["message"]
    assert "untouched" in err["advice"]
    assert status["generalized"] is False
    vm = stack.vm_state("vm-web")
    assert (vm["powerState"], vm["generalized"], vm["guestState"]) == ("running", False, "normal")
    assert _power(stack, "vm-web") == "running"
    assert _capture_snapshots(stack, status["id"]) == []


def test_unknown_target_region_fails_in_preflight_with_only_reads(stack: Stack) -> None:
    regions = [{"name": "westeuropa"}, {"name": "eastus2"}]
    status = stack.run(stack.request("vm-web", targetRegions=regions))
    assert status["runtimeStatus"] == "Failed"
    err = status["error"]
    assert (err["step"], err["code"]) == ("preflight", "PreflightFailed")
    sub = stack.cloud.subscription_id
    assert (
        f"target region westeuropa is not a region of subscription {sub} (did you mean westeurope?); "
        "choose one of: eastus, eastus2, northeurope, swedencentral, uksouth, westeurope, westus2"
    ) in err["message"]
    assert "eastus2 is not" not in err["message"]
    assert "untouched" in err["advice"]
    # Nothing irreversible: ARM saw reads only (the regions among them), and the VM still runs.
    arm = stack.sim("requests")["value"]
    assert arm and {r["method"] for r in arm} <= {"GET", "HEAD"}, [
        (r["method"], r["path"]) for r in arm if r["method"] not in ("GET", "HEAD")
    ]
    assert any(r["path"] == f"/subscriptions/{sub}/locations" and r["status"] == 200 for r in arm)
    vm = stack.vm_state("vm-web")
    assert (vm["powerState"], vm["generalized"], vm["guestState"]) == ("running", False, "normal")
    assert _power(stack, "vm-web") == "running"
    assert status["generalized"] is False
    assert _capture_snapshots(stack, status["id"]) == []
    # The app started clean (every binding resolved, queue listener included) and failed without an ERROR
    # log: a preflight problem is the caller's to fix, not the operator's.
    assert stack.log_errors() == [], stack.log_errors()
    assert "capture_from_queue: polling queue 'capture-requests'" in stack.devhost.log_text()


def test_windows_trusted_launch_two_data_disks_with_sysprep(make_stack) -> None:
    # 511 GiB of disks: replicate faster than Azure's ~40 MB/s so the test stays short.
    stack = make_stack(latency={"replication_mb_per_s": 400})
    status = stack.run(stack.request("vm-win", export=False, deleteSnapshots=False))
    assert status["runtimeStatus"] == "Completed", status.get("error")
    stages = {s["name"]: s["state"] for s in status["stages"]}
    assert stages["prepare"] == "succeeded" and stages["cleanup"] == "skipped"
    compute = stack.compute()
    definition = compute.gallery_images.get("rg-images", "galContoso", "vm-win-def")
    assert (definition.os_type, definition.hyper_v_generation) == ("Windows", "V2")
    features = {f.name: f.value for f in definition.features or []}
    assert features.get("SecurityType", "").startswith("TrustedLaunch")
    version = compute.gallery_image_versions.get("rg-images", "galContoso", "vm-win-def", "1.0.0")
    assert sorted(d.lun for d in version.storage_profile.data_disk_images) == [0, 1]
    kept = status["result"]["snapshotsKept"]
    assert len(kept) == 3 and sorted(_capture_snapshots(stack, status["id"])) == sorted(
        k.rsplit("/", 1)[1] for k in kept
    )
    assert stack.vm_state("vm-win")["generalized"] is True


def test_same_request_twice_starts_one_capture(stack: Stack) -> None:
    body = stack.request("vm-web-2", export=False)
    code1, first, _ = stack.post(body)
    code2, second, headers = stack.post(body)
    assert (code1, code2) == (202, 409)
    assert second["id"] == first["id"]
    assert second["error"]["code"] == "CaptureAlreadyRunning"
    assert second["captureStatusUri"].endswith(f"/api/captures/{first['id']}") and headers["Location"]
    status = stack.wait(first["id"])
    assert status["runtimeStatus"] == "Completed", status.get("error")
    versions = list(
        stack.compute().gallery_image_versions.list_by_gallery_image(
            "rg-images", "galContoso", "vm-web-2-def"
        )
    )
    assert len(versions) == 1


def test_bad_request_lists_every_invalid_field(stack: Stack) -> None:
    code, body, _ = stack.post(
        {
            "sourceVmId": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/st",
            "gallery": {"resourceGroup": "rg-images", "name": "-bad-"},
            "imageDefinition": {"name": "d"},
            "version": "1.2",
            "targetRegions": [{"name": "westeurope"}, {"name": "westeurope"}],
            "prepare": "sometimes",
            "vhdExport": {"accountUrl": "http://st.blob.core.windows.net?sv=1&sig=abc", "container": "VHDs"},
            "colour": "blue",
        }
    )
    assert code == 400
    fields = {e["field"] for e in body["errors"]}
    assert {
        "sourceVmId",
        "gallery.name",
        "imageDefinition",
        "version",
        "targetRegions",
        "prepare",
        "vhdExport.accountUrl",
        "vhdExport.container",
        "colour",
    } <= fields
    assert "Traceback" not in str(body)
    code, body, _ = stack.post(["not", "an", "object"])
    assert code == 400 and body["errors"][0]["field"] == "(body)"
    code, body = stack.status("capture-nope-0000000000")
    assert code == 404 and body["error"]["code"] == "CaptureNotFound"


def test_rbac_gap_fails_with_the_missing_action(stack: Stack) -> None:
    # The app's identity has no role on rg-storage: reading a gallery there is forbidden.
    body = stack.request("vm-web", export=False)
    body["gallery"] = {"resourceGroup": "rg-storage", "name": "galElsewhere"}
    status = stack.run(body)
    assert status["runtimeStatus"] == "Failed"
    err = status["error"]
    assert err["code"] == "AuthorizationFailed"
    assert "403" in err["message"] and "Microsoft.Compute/galleries/read" in err["message"]
    assert "role" in err["advice"]
    assert stack.vm_state("vm-web")["powerState"] == "running"


# --- faults injected into the local cloud -------------------------------------------------------


def test_region_whose_replication_fails_is_reported(make_stack) -> None:
    stack = make_stack(
        faults={
            "rules": [
                {
                    "match": {"action": "Microsoft.Compute/galleries/images/versions/write"},
                    "effect": {
                        "type": "replicationFailure",
                        "region": "eastus2",
                        "message": "Replication failed: the region has no capacity for Standard_LRS.",
                    },
                }
            ]
        }
    )
    status = stack.run(stack.request("vm-web"))
    assert status["runtimeStatus"] == "Failed"
    err = status["error"]
    assert (err["step"], err["code"]) == ("publish", "ReplicationFailed")
    assert "eastus2" in err["message"] and "no capacity" in err["message"]
    regions = {r["region"]: r["state"] for r in status["regions"]}
    assert regions["eastus2"] == "Failed"
    assert stack.active_access() == []
    assert all(d["accessRevoked"] is True for d in status["disks"])


@pytest.mark.parametrize("outcome", ["fail", "stall"])
def test_copy_that_fails_or_stalls_revokes_access(make_stack, outcome: str) -> None:
    stack = make_stack(
        faults={
            "rules": [
                {
                    "match": {"copy": {"account": "stexports", "blob": "OsDisk\\.vhd$"}},
                    "effect": {"type": "copy", "outcome": outcome},
                }
            ]
        }
    )
    status = stack.run(stack.request("vm-web", deleteSnapshots=False))
    assert status["runtimeStatus"] == "Failed"
    err = status["error"]
    assert err["step"] == "export"
    assert err["code"] == ("VhdExportFailed" if outcome == "fail" else "VhdExportStalled")
    assert "vm-web_OsDisk" in err["message"]
    disks = {d["key"]: d for d in status["disks"]}
    assert disks["os"]["copyState"] in (("failed", "aborted") if outcome == "fail" else ("stalled",))
    assert disks["lun0"]["copyState"] == "success"
    assert all(d["accessRevoked"] is True for d in disks.values())
    assert stack.active_access() == []  # the snapshots are kept, but nobody can read them any more
    assert len(_capture_snapshots(stack, status["id"])) == 2


def test_transient_429_and_500_storm_still_completes(make_stack) -> None:
    stack = make_stack(
        faults={
            "rules": [
                {
                    "match": {"method": "GET", "path": "/virtualMachines/"},
                    "effect": {"type": "status", "status": 429, "retryAfter": 0.1},
                    "probability": 0.4,
                },
                {
                    "match": {"action": "Microsoft.Compute/snapshots/*"},
                    "effect": {"type": "status", "status": 500},
                    "probability": 0.3,
                },
                {
                    "match": {"action": "Microsoft.Compute/galleries/*"},
                    "effect": {"type": "status", "status": 503},
                    "probability": 0.3,
                },
            ]
        }
    )
    status = stack.run(stack.request("vm-web"), timeout=240)
    assert status["runtimeStatus"] == "Completed", status.get("error")
    fired = stack.sim("state")["faults"]
    assert sum(int(f.get("fired", 0)) for f in fired) >= 5, fired
    assert stack.active_access() == []


def test_devhost_killed_mid_copy_and_restarted_completes_once(make_stack) -> None:
    # VHD copies of ~10 s (the disks hold ~2 MiB of real bytes): time to kill devhost mid-copy.
    stack = make_stack(latency={"copy_mb_per_s": 0.0006})
    code, answer, _ = stack.post(stack.request("vm-web"))
    assert code == 202
    cid = answer["id"]

    def copying(s) -> bool:
        return any(d.get("copyState") == "pending" and 0 <= d.get("copyPercent", 0) < 90 for d in s["disks"])

    mid = stack.wait(cid, until=copying, timeout=120)
    assert mid["runtimeStatus"] == "Running", mid.get("error")
    stack.devhost.kill()
    assert stack.active_access()  # a SAS is out while the copy runs
    stack.devhost.restart()
    status = stack.wait(cid, timeout=240)
    assert status["runtimeStatus"] == "Completed", status.get("error")
    assert (
        len(
            list(
                stack.compute().gallery_image_versions.list_by_gallery_image(
                    "rg-images", "galContoso", "vm-web-def"
                )
            )
        )
        == 1
    )
    assert stack.active_access() == []
    assert len(status["result"]["exportedBlobs"]) == 2


def test_the_secret_check_recognises_a_real_sas(stack: Stack) -> None:
    # Negative control for the leak check every e2e test ends with: a real SAS from the local cloud
    # planted in devhost's work dir must be found.
    from azure.mgmt.compute.models import GrantAccessData

    compute = stack.compute()
    access = compute.disks.begin_grant_access(
        "rg-build", "vm-web-4_OsDisk", GrantAccessData(access="Read", duration_in_seconds=600)
    ).result()
    planted = stack.devhost.workdir / "planted.log"
    planted.write_text(f"copy from {access.access_sas}\n")
    try:
        with pytest.raises(AssertionError, match=r"planted\.log"):
            stack.assert_no_secrets()
    finally:
        planted.unlink()  # the access itself ends with this test's local cloud
