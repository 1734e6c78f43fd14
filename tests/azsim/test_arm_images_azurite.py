"""Image versions from VHD page blobs that really sit in Azurite: the example world's stlegacyvhds
(written by ``python -m azsim up``) and VHDs a test uploads with azure-storage-blob; the app's identity
reads a footer with its blob-read role."""

from __future__ import annotations

import json

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import (
    Gallery,
    GalleryDiskImageSource,
    GalleryImage,
    GalleryImageIdentifier,
    GalleryImageVersion,
    GalleryImageVersionPublishingProfile,
    GalleryImageVersionStorageProfile,
    GalleryOSDiskImage,
    TargetRegion,
)
from azure.storage.blob import BlobServiceClient

from azsim.storage.vhdblobs import vhd_image
from azsim.testing import REPO_ROOT, CloudEnv

ACCOUNT = "stlegacyvhds"
THREE = ("westeurope", "northeurope", "uksouth")


def _key() -> str:
    world = json.loads((REPO_ROOT / "examples" / "world.json").read_text(encoding="utf-8"))
    return next(str(sa["azuriteKey"]) for sa in world["storageAccounts"] if sa["name"] == ACCOUNT)


def _account_id(env: CloudEnv) -> str:
    return (
        f"/subscriptions/{env.subscription_id}/resourceGroups/rg-legacy-images/providers/"
        f"Microsoft.Storage/storageAccounts/{ACCOUNT}"
    )


def _version(env: CloudEnv, uri: str) -> GalleryImageVersion:
    return GalleryImageVersion(
        location="westeurope",
        publishing_profile=GalleryImageVersionPublishingProfile(
            target_regions=[TargetRegion(name=r) for r in THREE]
        ),
        storage_profile=GalleryImageVersionStorageProfile(
            os_disk_image=GalleryOSDiskImage(
                source=GalleryDiskImageSource(storage_account_id=_account_id(env), uri=uri)
            )
        ),
    )


@pytest.fixture
def compute(cloud_env: CloudEnv) -> ComputeManagementClient:
    c = cloud_env.arm_client(ComputeManagementClient, polling_interval=0.01)
    c.galleries.begin_create_or_update("rg-images", "galVhd", Gallery(location="westeurope")).result()
    c.gallery_images.begin_create_or_update(
        "rg-images",
        "galVhd",
        "imported",
        GalleryImage(
            location="westeurope",
            os_type="Linux",
            os_state="Generalized",
            hyper_v_generation="V2",
            identifier=GalleryImageIdentifier(publisher="contoso", offer="imported", sku="imported"),
        ),
    ).result()
    return c


def test_world_vhd__the_app_reads_its_footer_and_a_version_replicates_to_three_regions(
    cloud_env: CloudEnv, compute: ComputeManagementClient
) -> None:
    blob = cloud_env.blob_service(ACCOUNT).get_blob_client("vhds", "app-os.vhd")
    props = blob.get_blob_properties()
    assert props.blob_type == "PageBlob" and props.size == 2 * 1024 * 1024 + 512
    footer = blob.download_blob(offset=props.size - 512, length=512).readall()
    assert footer[:8] == b"conectix"
    with pytest.raises(HttpResponseError) as denied:  # blob read only: no write
        cloud_env.blob_service(ACCOUNT).get_blob_client("vhds", "x.vhd").upload_blob(b"x")
    assert denied.value.status_code == 403
    version = compute.gallery_image_versions.begin_create_or_update(
        "rg-images", "galVhd", "imported", "1.0.0", _version(cloud_env, blob.url)
    ).result()
    assert version.provisioning_state == "Succeeded"
    status = compute.gallery_image_versions.get(
        "rg-images", "galVhd", "imported", "1.0.0", expand="ReplicationStatus"
    ).replication_status
    assert status.aggregated_state == "Completed" and len(status.summary) == 3


def test_uploaded_vhds__fixed_accepted_dynamic_and_misaligned_refused(
    cloud_env: CloudEnv, compute: ComputeManagementClient
) -> None:
    owner = BlobServiceClient(
        cloud_env.storage_account_url(ACCOUNT),
        credential={"account_name": ACCOUNT, "account_key": _key()},
        connection_verify=cloud_env.ca_bundle,
    )
    container = owner.get_container_client("uploads")
    if not container.exists():
        container.create_container()
    for name, fmt in (("fixed.vhd", "fixed"), ("dynamic.vhd", "dynamic"), ("misaligned.vhd", "misaligned")):
        data = vhd_image(1, 7, fmt)
        client = container.get_blob_client(name)
        client.create_page_blob(len(data))
        client.upload_page(data, offset=0, length=len(data))
    base = f"{cloud_env.storage_account_url(ACCOUNT)}/uploads"
    ok = compute.gallery_image_versions.begin_create_or_update(
        "rg-images", "galVhd", "imported", "2.0.0", _version(cloud_env, f"{base}/fixed.vhd")
    ).result()
    assert ok.storage_profile.os_disk_image.source.uri == f"{base}/fixed.vhd"
    for name, words in (("dynamic.vhd", "dynamic VHD"), ("misaligned.vhd", "not a whole number of MiB")):
        with pytest.raises(HttpResponseError) as e:
            compute.gallery_image_versions.begin_create_or_update(
                "rg-images", "galVhd", "imported", "3.0.0", _version(cloud_env, f"{base}/{name}")
            )
        assert e.value.status_code == 400 and e.value.error.code == "InvalidVhd" and words in e.value.message
