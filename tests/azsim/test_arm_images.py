"""Managed images (Microsoft.Compute/images) and the image versions made from them or from VHD blobs,
through azure-mgmt-compute against azsim (VHD blobs in memory here; in Azurite in
test_arm_images_azurite.py): Azure's rules, codes and texts."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute.models import (
    CreationData,
    Gallery,
    GalleryArtifactVersionFullSource,
    GalleryDataDiskImage,
    GalleryDiskImageSource,
    GalleryImage,
    GalleryImageIdentifier,
    GalleryImageVersion,
    GalleryImageVersionPublishingProfile,
    GalleryImageVersionStorageProfile,
    GalleryOSDiskImage,
    Image,
    ImageDataDisk,
    ImageOSDisk,
    ImageStorageProfile,
    Snapshot,
    SubResource,
    TargetRegion,
)

from azsim.storage.vhdblobs import MemoryVhdBlobs, vhd_image
from azsim.world import WorldError, parse_world
from tests.azsim.arm_fakes import SUB, WORLD_FILE, SimHandle, disk_id, running_sim, vm_id

LEGACY = "rg-legacy-images"
IMAGES = "rg-images"
ACCOUNT_ID = (
    f"/subscriptions/{SUB}/resourceGroups/{LEGACY}/providers/Microsoft.Storage/storageAccounts/stlegacyvhds"
)
VHDS = "https://stlegacyvhds.blob.core.windows.net/vhds"
THREE = ("westeurope", "northeurope", "uksouth")


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    with running_sim(tmp_path_factory.mktemp("arm-images"), time_scale=0.0002) as handle:
        handle.sim.backend.attach_vhd_blobs(MemoryVhdBlobs())
        yield handle


@pytest.fixture(autouse=True)
def _fresh(arm: SimHandle) -> None:
    arm.sim.reset()


def image_id(name: str, rg: str = LEGACY) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/images/{name}"


def definition(
    arm: SimHandle, name: str, os_type: str = "Linux", gen: str = "V2", state: str = "Generalized"
) -> None:
    c = arm.compute()
    c.galleries.begin_create_or_update(IMAGES, "gal", Gallery(location="westeurope")).result()
    c.gallery_images.begin_create_or_update(
        IMAGES,
        "gal",
        name,
        GalleryImage(
            location="westeurope",
            os_type=os_type,
            os_state=state,
            hyper_v_generation=gen,
            identifier=GalleryImageIdentifier(publisher="contoso", offer="legacy", sku=name),
        ),
    ).result()


def publishing(*regions: str) -> GalleryImageVersionPublishingProfile:
    return GalleryImageVersionPublishingProfile(target_regions=[TargetRegion(name=r) for r in regions])


def from_image(image: str) -> GalleryImageVersion:
    return GalleryImageVersion(
        location="westeurope",
        publishing_profile=publishing(*THREE),
        storage_profile=GalleryImageVersionStorageProfile(source=GalleryArtifactVersionFullSource(id=image)),
    )


def from_vhds(
    os_blob: str, data_blobs: tuple[str, ...] = (), account: str = ACCOUNT_ID
) -> GalleryImageVersion:
    return GalleryImageVersion(
        location="westeurope",
        publishing_profile=publishing(*THREE),
        storage_profile=GalleryImageVersionStorageProfile(
            os_disk_image=GalleryOSDiskImage(
                source=GalleryDiskImageSource(storage_account_id=account, uri=f"{VHDS}/{os_blob}")
            ),
            data_disk_images=[
                GalleryDataDiskImage(
                    lun=lun, source=GalleryDiskImageSource(storage_account_id=account, uri=f"{VHDS}/{blob}")
                )
                for lun, blob in enumerate(data_blobs)
            ],
        ),
    )


def error_of(call: object) -> HttpResponseError:
    assert callable(call)
    with pytest.raises(HttpResponseError) as e:
        call()
    return e.value


# --- managed images --------------------------------------------------------------------------


def test_world_images__listed_by_group_and_subscription_with_their_disks(arm: SimHandle) -> None:
    c = arm.compute()
    names = {"img-linux-gen2", "img-windows-gen1", "legacy-web"}
    assert {i.name for i in c.images.list_by_resource_group(LEGACY)} == names
    assert {i.name for i in c.images.list()} == names
    assert list(arm.compute("00000000-0000-0000-0000-000000000001").images.list()) == []
    linux = c.images.get(LEGACY, "img-linux-gen2")
    assert linux.type == "Microsoft.Compute/images" and linux.hyper_v_generation == "V2"
    assert linux.storage_profile.os_disk.os_state == "Generalized"
    assert [(d.lun, d.disk_size_gb) for d in linux.storage_profile.data_disks] == [(0, 64)]
    assert c.images.get(LEGACY, "img-windows-gen1").hyper_v_generation == "V1"
    with pytest.raises(ResourceNotFoundError):
        c.images.get(LEGACY, "nope")


def test_image_from_vm__generalized_and_deallocated_then_deleted(arm: SimHandle) -> None:
    c = arm.compute()
    body = Image(location="westeurope", source_virtual_machine=SubResource(id=vm_id("vm-web-4")))
    e = error_of(lambda: c.images.begin_create_or_update(IMAGES, "img", body))
    assert e.status_code == 409 and e.error.code == "OperationNotAllowed"
    assert (
        "The operation 'Create Image' requires the Virtual Machine 'vm-web-4' to be Generalized." in e.message
    )
    c.virtual_machines.generalize("rg-build", "vm-web-4")
    poller = c.images.begin_create_or_update(IMAGES, "img", body)
    image = poller.result()
    assert image.provisioning_state == "Succeeded" and image.source_virtual_machine.id == vm_id("vm-web-4")
    assert image.storage_profile.os_disk.os_type == "Linux" and image.hyper_v_generation == "V2"
    assert image.storage_profile.os_disk.managed_disk.id == disk_id("vm-web-4_OsDisk")
    assert "img" in {i.name for i in c.images.list_by_resource_group(IMAGES)}
    c.images.begin_delete(IMAGES, "img").result()
    with pytest.raises(ResourceNotFoundError):
        c.images.get(IMAGES, "img")


def test_image_from_vm__stopped_trusted_launch_arm64_and_other_region_refused(arm: SimHandle) -> None:
    c = arm.compute()
    c.virtual_machines.generalize("rg-build", "vm-legacy")  # stopped, not deallocated

    def put(vm: str, location: str = "westeurope") -> HttpResponseError:
        body = Image(location=location, source_virtual_machine=SubResource(id=vm_id(vm)))
        return error_of(lambda: c.images.begin_create_or_update(IMAGES, "img", body))

    assert "to be deallocated" in put("vm-legacy").message
    tl = put("vm-win")
    assert tl.error.code == "OperationNotAllowed"
    assert tl.message.endswith(
        "Creation of managed images are not supported for virtual machine with TrustedLaunch security type."
    )
    assert "CPU Architecture 'Arm64' is not supported" in put("vm-arm").message
    elsewhere = put("vm-legacy", "northeurope")
    assert elsewhere.error.code == "InvalidParameter"
    assert "specified in the request does not exist in this Azure location." in elsewhere.message


def test_image_from_snapshot_and_blob__os_type_state_required_generation_deduced(arm: SimHandle) -> None:
    c = arm.compute()
    snap = Snapshot(
        location="westeurope",
        creation_data=CreationData(create_option="Copy", source_resource_id=disk_id("vm-web_OsDisk")),
    )
    snapshot = c.snapshots.begin_create_or_update("rg-build", "snap-os", snap).result()
    os_disk = ImageOSDisk(os_type="Linux", os_state="Generalized", snapshot=SubResource(id=snapshot.id))
    data = [ImageDataDisk(lun=1, blob_uri=f"{VHDS}/app-data0.vhd")]
    body = Image(location="westeurope", storage_profile=ImageStorageProfile(os_disk=os_disk, data_disks=data))
    image = c.images.begin_create_or_update(IMAGES, "from-snap", body).result()
    assert image.hyper_v_generation == "V2"  # the snapshot's, from vm-web
    assert image.storage_profile.os_disk.snapshot.id == snapshot.id
    assert [(d.lun, d.blob_uri, d.disk_size_gb) for d in image.storage_profile.data_disks] == [
        (1, f"{VHDS}/app-data0.vhd", 1)
    ]
    blob_only = Image(
        location="westeurope",
        storage_profile=ImageStorageProfile(
            os_disk=ImageOSDisk(os_type="Windows", os_state="Generalized", blob_uri=f"{VHDS}/app-os.vhd")
        ),
    )
    assert c.images.begin_create_or_update(IMAGES, "from-blob", blob_only).result().hyper_v_generation == "V1"
    missing = {
        "location": "westeurope",
        "properties": {"storageProfile": {"osDisk": {"osState": "Generalized"}}},
    }
    e = error_of(lambda: c.images.begin_create_or_update(IMAGES, "bad", missing))
    assert (
        e.error.code == "InvalidParameter" and "Required parameter 'osType' is missing (null)." in e.message
    )
    dynamic = Image(
        location="westeurope",
        storage_profile=ImageStorageProfile(
            os_disk=ImageOSDisk(os_type="Linux", os_state="Generalized", blob_uri=f"{VHDS}/dynamic-os.vhd")
        ),
    )
    assert (
        error_of(lambda: c.images.begin_create_or_update(IMAGES, "dyn", dynamic)).error.code == "InvalidVhd"
    )
    elsewhere = {
        "location": "westeurope",
        "properties": {
            "storageProfile": {
                "osDisk": {
                    "osType": "Linux",
                    "osState": "Generalized",
                    "blobUri": "https://stnowhere.blob.core.windows.net/vhds/a.vhd",
                }
            }
        },
    }
    outside = error_of(lambda: c.images.begin_create_or_update(IMAGES, "out", elsewhere))
    assert outside.error.code == "InvalidParameter" and "is not in a storage account" in outside.message


# --- image versions from a managed image ------------------------------------------------------


def _states(arm: SimHandle, image: str, version: str) -> dict[str, str]:
    v = arm.compute().gallery_image_versions.get(IMAGES, "gal", image, version, expand="ReplicationStatus")
    return {s.region: s.state for s in v.replication_status.summary}


def test_version_from_managed_image__replicates_to_three_regions(arm: SimHandle) -> None:
    definition(arm, "linux-gen2")
    c = arm.compute()
    version = c.gallery_image_versions.begin_create_or_update(
        IMAGES, "gal", "linux-gen2", "1.0.0", from_image(image_id("img-linux-gen2"))
    ).result()
    assert version.provisioning_state == "Succeeded"
    assert version.storage_profile.source.id == image_id("img-linux-gen2")
    assert [d.lun for d in version.storage_profile.data_disk_images] == [0]
    assert set(_states(arm, "linux-gen2", "1.0.0").values()) == {"Completed"}
    assert len(_states(arm, "linux-gen2", "1.0.0")) == 3


def test_version_from_managed_image__generation_clash_fails_with_azures_conflict(arm: SimHandle) -> None:
    c = arm.compute()
    poller = c.gallery_image_versions.begin_create_or_update(
        IMAGES, "galLegacy", "legacy-web", "1.0.0", from_image(image_id("legacy-web"))
    )
    with pytest.raises(HttpResponseError) as e:
        poller.result()
    assert e.value.error.code == "Conflict"
    assert (
        f"The resource with id '{image_id('legacy-web')}' has a different Hypervisor generation ['V2'] than the "
        "parent gallery image Hypervisor generation ['V1']."
    ) in e.value.message


def test_version_from_managed_image__specialized_definition_and_missing_image_refused(arm: SimHandle) -> None:
    definition(arm, "win-spec", os_type="Windows", gen="V1", state="Specialized")
    c = arm.compute()
    e = error_of(
        lambda: c.gallery_image_versions.begin_create_or_update(
            IMAGES, "gal", "win-spec", "1.0.0", from_image(image_id("img-windows-gen1"))
        )
    )
    assert e.error.code == "BadRequest"
    assert (
        f"Cannot create Gallery Image Version from: {image_id('img-windows-gen1')} since the OS State in the "
        "parent gallery image ('Specialized') is not 'Generalized'."
    ) in e.message
    definition(arm, "win", os_type="Windows", gen="V1")
    gone = error_of(
        lambda: c.gallery_image_versions.begin_create_or_update(
            IMAGES, "gal", "win", "1.0.0", from_image(image_id("nope"))
        )
    )
    assert gone.error.code == "InvalidParameter"
    assert f"Source {image_id('nope')} is not found. Please check source exists" in gone.message


def test_version_from_managed_image__data_disk_over_the_limit_fails_replication(arm: SimHandle) -> None:
    definition(arm, "linux-gen2")
    big = {
        "location": "westeurope",
        "properties": {
            "hyperVGeneration": "V2",
            "storageProfile": {
                "osDisk": {"osType": "Linux", "osState": "Generalized", "blobUri": f"{VHDS}/app-os.vhd"},
                "dataDisks": [{"lun": 0, "blobUri": f"{VHDS}/app-data0.vhd"}],
            },
        },
    }
    c = arm.compute()
    c.images.begin_create_or_update(IMAGES, "big", big).result()
    arm.sim.backend.managed_images[image_id("big", IMAGES).lower()].data_disks[0].size_gib = 2048
    poller = c.gallery_image_versions.begin_create_or_update(
        IMAGES, "gal", "linux-gen2", "1.0.0", from_image(image_id("big", IMAGES))
    )
    with pytest.raises(HttpResponseError) as e:
        poller.result()
    assert e.value.error.code == "ReplicationFailed"
    v = c.gallery_image_versions.get(IMAGES, "gal", "linux-gen2", "1.0.0", expand="ReplicationStatus")
    details = {s.details for s in v.replication_status.summary}
    assert details == {
        "Replication failed in this region due to 'The GalleryImageVersion source resource size 2048 exceeds the "
        "max size 1024 supported.'"
    }


# --- image versions from VHD blobs -------------------------------------------------------------


def test_version_from_vhds__fixed_vhds_replicate_by_their_size(arm: SimHandle) -> None:
    definition(arm, "linux-gen2")
    c = arm.compute()
    version = c.gallery_image_versions.begin_create_or_update(
        IMAGES, "gal", "linux-gen2", "2.0.0", from_vhds("app-os.vhd", ("app-data0.vhd",))
    ).result()
    assert version.provisioning_state == "Succeeded"
    os_source = version.storage_profile.os_disk_image.source
    assert (os_source.storage_account_id, os_source.uri) == (ACCOUNT_ID, f"{VHDS}/app-os.vhd")
    assert version.storage_profile.data_disk_images[0].source.uri == f"{VHDS}/app-data0.vhd"
    assert len(_states(arm, "linux-gen2", "2.0.0")) == 3
    assert set(_states(arm, "linux-gen2", "2.0.0").values()) == {"Completed"}
    stored = arm.sim.backend.versions[version.id.lower()]
    assert stored.total_bytes == 3 * 1024 * 1024  # 2 MiB + 1 MiB of VHD data, not whole GiB


def test_version_from_vhds__dynamic_misaligned_block_and_missing_blobs_refused(arm: SimHandle) -> None:
    definition(arm, "linux-gen2")
    c = arm.compute()
    blobs = arm.sim.backend.vhd_blobs
    assert isinstance(blobs, MemoryVhdBlobs)
    blobs.put("stlegacyvhds", "vhds", "block.vhd", vhd_image(1, 1), page=False)
    blobs.put("stlegacyvhds", "vhds", "cookie.vhd", b"\0" * (1024 * 1024 + 512), page=True)

    def refused(blob: str, account: str = ACCOUNT_ID) -> HttpResponseError:
        return error_of(
            lambda: c.gallery_image_versions.begin_create_or_update(
                IMAGES, "gal", "linux-gen2", "3.0.0", from_vhds(blob, account=account)
            )
        )

    dynamic = refused("dynamic-os.vhd")
    assert (
        dynamic.status_code == 400 and dynamic.error.code == "InvalidVhd" and "dynamic VHD" in dynamic.message
    )
    misaligned = refused("misaligned-os.vhd")
    assert misaligned.error.code == "InvalidVhd" and "not a whole number of MiB" in misaligned.message
    block = refused("block.vhd")
    assert block.error.code == "IncorrectImageBlobType"
    assert (
        f"Disk blobs can only be of type page blob. Blob {VHDS}/block.vhd is of type 'BlockBlob'."
        in block.message
    )
    cookie = refused("cookie.vhd")
    assert (
        cookie.error.code == "InvalidVhd"
        and "Disk is expected to have cookie value 'conectix'." in cookie.message
    )
    assert "is not found. Please check source exists" in refused("absent.vhd").message
    other = ACCOUNT_ID.replace("stlegacyvhds", "stexports").replace(LEGACY, "rg-storage")
    assert "does not belong to the storage account" in refused("app-os.vhd", other).message
    assert all(
        v.name != "3.0.0" for v in c.gallery_image_versions.list_by_gallery_image(IMAGES, "gal", "linux-gen2")
    )


def test_world_file__managed_images_and_vhd_blobs_are_checked() -> None:
    data = json.loads(WORLD_FILE.read_text(encoding="utf-8"))
    data["managedImages"].append({**data["managedImages"][0], "dataDisks": [{"lun": 0}, {"lun": 0}]})
    data["managedImages"].append({**data["managedImages"][1], "resourceGroup": "rg-nowhere"})
    blobs = data["storageAccounts"][1]["blobs"]
    blobs.append(dict(blobs[0]))
    with pytest.raises(WorldError) as e:
        parse_world(data, source="w.json")
    text = str(e.value)
    assert "w.json: $.managedImages[3].name: duplicate managed image 'img-linux-gen2'" in text
    assert "$.managedImages[3].dataDisks: duplicate LUN" in text
    assert "$.managedImages[4].resourceGroup: expected the name of a resource group" in text
    assert "$.storageAccounts[1].blobs: duplicate container/name pair" in text
