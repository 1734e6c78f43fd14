"""Captures from sources that are not VMs, end to end (devhost + azsim + Azurite, real SDKs): a managed
image, snapshots, VHD blobs; the VHDs and the image preflight refuses; and the round trip (a VM's VHDs
exported by a capture, then imported as a VHD source into another gallery).

Each test ends with the secret scan of the ``make_stack``/``stack`` fixtures (tests/e2e/conftest.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.mgmt.compute.models import CreationData, Snapshot, SnapshotProperties

from tests.support.stack import Stack
from tests.support.worlds import RELEASE_STAGES

pytestmark = pytest.mark.e2e

REGIONS = [{"name": "westeurope"}, {"name": "eastus2"}, {"name": "northeurope"}]
FAST_REPLICATION = {"replication_mb_per_s": 400}
LEGACY = "rg-legacy-images"


def _sub(stack: Stack) -> str:
    return f"/subscriptions/{stack.cloud.subscription_id}"


def _image_id(stack: Stack, name: str) -> str:
    return f"{_sub(stack)}/resourceGroups/{LEGACY}/providers/Microsoft.Compute/images/{name}"


def _account_id(stack: Stack, name: str, rg: str = LEGACY) -> str:
    return f"{_sub(stack)}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{name}"


def _blob(stack: Stack, account: str, path: str) -> str:
    return f"{stack.cloud.storage_account_url(account)}/{path}"


def source_request(
    stack: Stack, source: dict[str, Any], definition: str, *, gallery: str = "galContoso", **overrides: Any
) -> dict[str, Any]:
    """A capture request from ``source`` into ``gallery/definition`` (created if missing), three regions."""
    body: dict[str, Any] = {
        "source": source,
        "gallery": {"resourceGroup": "rg-images", "name": gallery, "createIfMissing": True},
        "imageDefinition": {
            "name": definition,
            "publisher": "contoso",
            "offer": "imported",
            "sku": definition,
            "createIfMissing": True,
        },
        "version": "1.0.0",
        "targetRegions": REGIONS,
        "tags": {"ci-run": "e2e"},
    }
    body.update(overrides)
    return body


def _writes_since(stack: Stack, before: int) -> list[str]:
    return [
        f"{r['method']} {r['path']}"
        for r in stack.sim("requests")["value"][before:]
        if r["method"] not in ("GET", "HEAD")
    ]


def _version(stack: Stack, definition: str, gallery: str = "galContoso") -> Any:
    return stack.compute().gallery_image_versions.get(
        "rg-images", gallery, definition, "1.0.0", expand="ReplicationStatus"
    )


def _assert_completed(status: dict[str, Any], kind: str, source_id: str) -> None:
    assert status["runtimeStatus"] == "Completed", status.get("error")
    result = status["result"]
    assert (status["sourceKind"], status["sourceId"]) == (kind, source_id)
    assert (result["sourceKind"], result["sourceId"]) == (kind, source_id)
    assert "sourceVmId" not in result and result["captureMode"] == "none"
    assert {r["region"]: r["state"] for r in result["regions"]} == {
        "westeurope": "Completed",
        "eastus2": "Completed",
        "northeurope": "Completed",
    }
    stages = {s["name"]: s["state"] for s in status["stages"]}
    assert stages == {
        "preflight": "succeeded",
        "publish": "succeeded",
        "export": "skipped",
        **dict.fromkeys(RELEASE_STAGES, "skipped"),
        "cleanup": "skipped",
    }, stages


def _regions(version: Any) -> dict[str, str]:
    return {s.region.replace(" ", "").lower(): s.state for s in version.replication_status.summary or []}


def test_a_managed_image_with_a_data_disk_becomes_a_version_in_three_regions(make_stack: Any) -> None:
    stack = make_stack(latency=FAST_REPLICATION)
    image = _image_id(stack, "img-linux-gen2")
    status = stack.run(source_request(stack, {"managedImageId": image}, "linux-gen2"))
    _assert_completed(status, "managedImage", image)
    assert [(d["key"], d.get("lun")) for d in status["disks"]] == [("os", None), ("lun0", 0)]
    # The definition follows the image: Linux, Generalized, V2.
    definition = stack.compute().gallery_images.get("rg-images", "galContoso", "linux-gen2")
    traits = [str(getattr(v, "value", v)) for v in (definition.os_type, definition.os_state)]
    assert [*traits, str(getattr(definition.hyper_v_generation, "value", ""))] == [
        "Linux",
        "Generalized",
        "V2",
    ]
    version = _version(stack, "linux-gen2")
    assert version.storage_profile.source.id.lower() == image.lower()
    assert [d.lun for d in version.storage_profile.data_disk_images or []] == [0]
    assert _regions(version) == {
        "westeurope": "Completed",
        "eastus2": "Completed",
        "northeurope": "Completed",
    }
    # The image is kept: nothing deletes a source (the migration's deleteSourceAfter decides that).
    assert stack.compute().images.get(LEGACY, "img-linux-gen2").name == "img-linux-gen2"


def test_the_managed_image_whose_generation_clashes_with_the_definition_is_refused(stack: Stack) -> None:
    before = len(stack.sim("requests")["value"])
    body = source_request(
        stack,
        {"managedImageId": _image_id(stack, "legacy-web")},
        "legacy-web",
        gallery="galLegacy",
        imageDefinition={"name": "legacy-web", "createIfMissing": False},
    )
    status = stack.run(body)
    assert status["runtimeStatus"] == "Failed", status
    err = status["error"]
    assert (err["step"], err["code"]) == ("preflight", "PreflightFailed"), err
    assert "managed image legacy-web is Gen2 (V2) but definition galLegacy/legacy-web is V1" in err["message"]
    assert "choose another definition name" in err["message"]
    assert "legacy-web is untouched" in err["advice"]
    assert _writes_since(stack, before) == []


def _snapshot_of(stack: Stack, disk: str, name: str) -> str:
    compute = stack.compute()
    source = compute.disks.get("rg-build", disk)
    snap = compute.snapshots.begin_create_or_update(
        "rg-build",
        name,
        Snapshot(
            location=source.location,
            properties=SnapshotProperties(
                creation_data=CreationData(create_option="Copy", source_resource_id=source.id)
            ),
        ),
    ).result()
    return str(snap.id)


def test_snapshots_become_a_version_in_three_regions(make_stack: Any) -> None:
    stack = make_stack(latency=FAST_REPLICATION)
    vm = stack.compute().virtual_machines.get("rg-build", "vm-web")
    os_disk = vm.storage_profile.os_disk.name
    data = vm.storage_profile.data_disks[0]
    os_snap = _snapshot_of(stack, os_disk, "imported-os")
    data_snap = _snapshot_of(stack, data.managed_disk.id.rsplit("/", 1)[1], "imported-lun0")
    source = {
        "snapshots": {"os": os_snap, "data": [{"lun": data.lun, "id": data_snap}]},
        "osState": "Specialized",
    }
    status = stack.run(source_request(stack, source, "from-snapshots"))
    _assert_completed(status, "snapshots", os_snap)
    version = _version(stack, "from-snapshots")
    assert version.storage_profile.os_disk_image.source.id.lower() == os_snap.lower()
    assert [d.source.id.lower() for d in version.storage_profile.data_disk_images] == [data_snap.lower()]
    definition = stack.compute().gallery_images.get("rg-images", "galContoso", "from-snapshots")
    assert str(getattr(definition.os_state, "value", definition.os_state)) == "Specialized"
    # The snapshots are the caller's: used as they are, neither copied nor deleted.
    names = {s.name for s in stack.compute().snapshots.list_by_resource_group("rg-build")}
    assert {"imported-os", "imported-lun0"} <= names


def _vhd_source(
    stack: Stack, os_blob: str, data: list[tuple[int, str]] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "vhds": {
            "storageAccountId": _account_id(stack, "stlegacyvhds"),
            "os": {"uri": _blob(stack, "stlegacyvhds", os_blob)},
            "data": [{"lun": lun, "uri": _blob(stack, "stlegacyvhds", b)} for lun, b in data or []],
        },
        "osType": "Linux",
        "hyperVGeneration": "V2",
        **extra,
    }


def test_fixed_vhds_become_a_version_in_three_regions(make_stack: Any) -> None:
    stack = make_stack(latency=FAST_REPLICATION)
    source = _vhd_source(stack, "vhds/app-os.vhd", [(0, "vhds/app-data0.vhd")])
    status = stack.run(source_request(stack, source, "from-vhds"))
    _assert_completed(status, "vhds", source["vhds"]["os"]["uri"])
    version = _version(stack, "from-vhds")
    os_src = version.storage_profile.os_disk_image.source
    assert (os_src.uri, os_src.storage_account_id.lower()) == (
        source["vhds"]["os"]["uri"],
        _account_id(stack, "stlegacyvhds").lower(),
    )
    assert [d.lun for d in version.storage_profile.data_disk_images] == [0]
    definition = stack.compute().gallery_images.get("rg-images", "galContoso", "from-vhds")
    assert str(getattr(definition.hyper_v_generation, "value", "")) == "V2"


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        ("vhds/dynamic-os.vhd", "is a dynamic VHD (footer disk type 3); Azure takes fixed VHDs only"),
        (
            "vhds/misaligned-os.vhd",
            "not a whole number of MiB: Azure requires a VHD's virtual size aligned to 1 MiB",
        ),
    ],
)
def test_a_vhd_that_is_not_fixed_and_whole_mib_is_refused_in_preflight(
    stack: Stack, blob: str, reason: str
) -> None:
    before = len(stack.sim("requests")["value"])
    status = stack.run(source_request(stack, _vhd_source(stack, blob), "refused-vhd"))
    assert status["runtimeStatus"] == "Failed", status
    err = status["error"]
    assert (err["step"], err["code"]) == ("preflight", "PreflightFailed"), err
    assert f"blob {blob} " in err["message"] and reason in err["message"], err["message"]
    assert "qemu-img convert -O vpc -o subformat=fixed,force_size" in err["message"]
    # Nothing created: no gallery, definition or version.
    assert _writes_since(stack, before) == []


def _world_with_key_reader_on_exports(tmp: Any) -> Any:
    """The example world, plus what an operator grants to import from the export account: listKeys on it
    (the gallery reads the blobs; the app's identity reads them already, as their exporter)."""
    from tests.support.worlds import WORLD

    world = json.loads(WORLD.read_text(encoding="utf-8"))
    sub = world["subscriptions"][0]["id"]
    world["roleAssignments"].append(
        {
            "principal": "id-image-pipeline",
            "roleDefinitionName": "VHD Source Key Reader",
            "scope": f"/subscriptions/{sub}/resourceGroups/rg-storage/providers/Microsoft.Storage/storageAccounts/stexports",
        }
    )
    path = tmp / "world.json"
    path.write_text(json.dumps(world), encoding="utf-8")
    return path


def test_the_vhds_a_capture_exported_import_into_another_gallery(make_stack: Any, tmp_path: Any) -> None:
    stack = make_stack(latency=FAST_REPLICATION, world=_world_with_key_reader_on_exports(tmp_path))
    # 1. Export: a specialized capture of vm-web with vhdExport (the VM keeps running).
    body = stack.request("vm-web", targetRegions=[{"name": "westeurope"}], captureMode="specialized")
    del body["prepare"]
    exported = stack.run(body)
    assert exported["runtimeStatus"] == "Completed", exported.get("error")
    blobs = {d["key"]: d["blobUrl"] for d in exported["disks"]}
    assert set(blobs) == {"os", "lun0"} and all(u.endswith(".vhd") for u in blobs.values()), blobs
    generation = (
        stack.compute().gallery_images.get("rg-images", "galContoso", "vm-web-def").hyper_v_generation
    )
    # 2. Import the exported VHDs as a VHD source into another gallery (preflight reads their footers).
    source = {
        "vhds": {
            "storageAccountId": _account_id(stack, "stexports", rg="rg-storage"),
            "os": {"uri": blobs["os"]},
            "data": [{"lun": 0, "uri": blobs["lun0"]}],
        },
        "osType": "Linux",
        "hyperVGeneration": str(getattr(generation, "value", generation)),
        "osState": "Specialized",
    }
    imported = stack.run(source_request(stack, source, "web-imported", gallery="galImported"))
    _assert_completed(imported, "vhds", blobs["os"])
    version = _version(stack, "web-imported", gallery="galImported")
    assert version.storage_profile.os_disk_image.source.uri == blobs["os"]
    assert [d.source.uri for d in version.storage_profile.data_disk_images] == [blobs["lun0"]]
    assert _regions(version) == {
        "westeurope": "Completed",
        "eastus2": "Completed",
        "northeurope": "Completed",
    }
    definition = stack.compute().gallery_images.get("rg-images", "galImported", "web-imported")
    assert str(getattr(definition.os_state, "value", definition.os_state)) == "Specialized"


def test_exported_vhds_without_the_vhd_source_role_are_refused_naming_it(make_stack: Any) -> None:
    """The example world gives the app no listKeys on stexports: preflight names the action and the role."""
    stack = make_stack(latency=FAST_REPLICATION)
    body = stack.request("vm-web-2", targetRegions=[{"name": "westeurope"}], captureMode="specialized")
    del body["prepare"]
    exported = stack.run(body)
    assert exported["runtimeStatus"] == "Completed", exported.get("error")
    blobs = {d["key"]: d["blobUrl"] for d in exported["disks"]}
    source = {
        "vhds": {
            "storageAccountId": _account_id(stack, "stexports", rg="rg-storage"),
            "os": {"uri": blobs["os"]},
            "data": [{"lun": 0, "uri": blobs["lun0"]}],
        },
        "osType": "Linux",
        "hyperVGeneration": "V2",
    }
    before = len(stack.sim("requests")["value"])
    status = stack.run(source_request(stack, source, "web-no-keys", gallery="galImported"))
    assert status["runtimeStatus"] == "Failed", status
    err = status["error"]
    assert (err["step"], err["code"]) == ("preflight", "MissingPermissions"), err
    assert "Microsoft.Storage/storageAccounts/listKeys/action" in err["message"]
    assert 'role "Image Pipeline VHD Source"' in err["message"], err["message"]
    assert _writes_since(stack, before) == []


def test_vhds_in_another_region_than_the_gallery_are_refused_in_preflight(stack: Stack) -> None:
    from azure.mgmt.compute.models import Gallery

    stack.compute().galleries.begin_create_or_update(
        "rg-images", "galEast", Gallery(location="eastus")
    ).result()
    before = len(stack.sim("requests")["value"])
    status = stack.run(
        source_request(stack, _vhd_source(stack, "vhds/app-os.vhd"), "east-vhd", gallery="galEast")
    )
    assert status["runtimeStatus"] == "Failed", status
    err = status["error"]
    assert (err["step"], err["code"]) == ("preflight", "PreflightFailed"), err
    assert "VHD vhds/app-os.vhd is in westeurope but gallery galEast is in eastus" in err["message"], err
    assert _writes_since(stack, before) == []


def test_a_canceled_managed_image_capture_deletes_its_half_made_version_and_keeps_the_image(
    stack: Stack,
) -> None:
    image = _image_id(stack, "img-windows-gen1")
    code, answer, _ = stack.post(source_request(stack, {"managedImageId": image}, "win-gen1"))
    assert code == 202, answer
    # Cancel while the version replicates (its sub-orchestration reports the regions).
    stack.wait(answer["id"], until=lambda st: any(r["state"] == "Replicating" for r in st["regions"]))
    code, body = stack.cancel(answer["id"], {"reason": "changed my mind"})
    assert code == 202, body
    status = stack.wait(answer["id"])
    assert status["runtimeStatus"] == "Canceled", status
    assert any(c.endswith("/images/win-gen1/versions/1.0.0 deleted") for c in status["cleaned"]), status
    versions = stack.compute().gallery_image_versions.list_by_gallery_image(
        "rg-images", "galContoso", "win-gen1"
    )
    assert [v.name for v in versions] == []
    assert stack.compute().images.get(LEGACY, "img-windows-gen1").name == "img-windows-gen1"
