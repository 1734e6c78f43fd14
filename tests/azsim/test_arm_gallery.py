"""Compute Gallery through azure-mgmt-compute: galleries, image definitions, image versions from a VM
or from snapshots, replication status over time, PATCH of the publishing profile, Azure's rules."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.compute.models import (
    CreationData,
    Gallery,
    GalleryArtifactVersionFullSource,
    GalleryDataDiskImage,
    GalleryDiskImageSource,
    GalleryImage,
    GalleryImageFeature,
    GalleryImageIdentifier,
    GalleryImageVersion,
    GalleryImageVersionPublishingProfile,
    GalleryImageVersionStorageProfile,
    GalleryImageVersionUpdate,
    GalleryOSDiskImage,
    Snapshot,
    TargetRegion,
)

from azsim.core.latency import LatencyProfile
from tests.azsim.arm_fakes import SimHandle, disk_id, running_sim, vm_id, wait_until

RG = "rg-images"


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory):
    with running_sim(tmp_path_factory.mktemp("arm-gallery"), time_scale=0.0002) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _fresh(arm: SimHandle) -> None:
    arm.sim.reset()


def make_definition(arm: SimHandle, name: str = "web", **props: object) -> None:
    c = arm.compute()
    c.galleries.begin_create_or_update(RG, "gal", Gallery(location="westeurope", description="test")).result()
    defaults: dict[str, object] = {"os_type": "Linux", "os_state": "Generalized", "hyper_v_generation": "V2"}
    defaults.update(props)
    image = GalleryImage(
        location="westeurope",
        identifier=GalleryImageIdentifier(publisher="contoso", offer="base", sku=name),
        **defaults,
    )
    created = c.gallery_images.begin_create_or_update(RG, "gal", name, image).result()
    assert created.provisioning_state == "Succeeded"


def regions(*names: str) -> GalleryImageVersionPublishingProfile:
    return GalleryImageVersionPublishingProfile(target_regions=[TargetRegion(name=n) for n in names])


def from_vm(vm: str, *region_names: str) -> GalleryImageVersion:
    return GalleryImageVersion(
        location="westeurope",
        publishing_profile=regions(*(region_names or ("westeurope",))),
        storage_profile=GalleryImageVersionStorageProfile(
            source=GalleryArtifactVersionFullSource(virtual_machine_id=vm_id(vm))
        ),
    )


def snapshot(arm: SimHandle, disk: str, name: str) -> str:
    return (
        arm.compute()
        .snapshots.begin_create_or_update(
            "rg-build",
            name,
            Snapshot(
                location="westeurope",
                creation_data=CreationData(create_option="Copy", source_resource_id=disk_id(disk)),
            ),
        )
        .result()
        .id
    )


def generalized_vm(arm: SimHandle, vm: str = "vm-web") -> None:
    c = arm.compute()
    c.virtual_machines.begin_deallocate("rg-build", vm).result()
    c.virtual_machines.generalize("rg-build", vm)


def test_gallery_and_definition_crud(arm: SimHandle) -> None:
    make_definition(
        arm, "web", features=[GalleryImageFeature(name="SecurityType", value="TrustedLaunchSupported")]
    )
    c = arm.compute()
    assert c.galleries.get(RG, "gal").identifier.unique_name
    # The example world's galLegacy shares the group.
    assert [g.name for g in c.galleries.list_by_resource_group(RG)] == ["galLegacy", "gal"]
    image = c.gallery_images.get(RG, "gal", "web")
    assert (image.os_state, image.hyper_v_generation, image.architecture) == ("Generalized", "V2", "x64")
    assert [i.name for i in c.gallery_images.list_by_gallery(RG, "gal")] == ["web"]
    with pytest.raises(ResourceExistsError) as e:
        c.galleries.begin_delete(RG, "gal")
    assert e.value.error.code == "CannotDeleteResource"
    c.gallery_images.begin_delete(RG, "gal", "web").result()
    c.galleries.begin_delete(RG, "gal").result()
    with pytest.raises(ResourceNotFoundError):
        c.galleries.get(RG, "gal")


def test_definition__required_fields_and_immutable_properties(arm: SimHandle) -> None:
    make_definition(arm)
    c = arm.compute()
    with pytest.raises(HttpResponseError) as e:
        c.gallery_images.begin_create_or_update(
            RG, "gal", "x", GalleryImage(location="westeurope", os_type="Linux", os_state="Generalized")
        )
    assert e.value.error.code == "InvalidParameter" and "identifier" in e.value.error.target
    changed = GalleryImage(
        location="westeurope",
        os_type="Linux",
        os_state="Specialized",
        hyper_v_generation="V2",
        identifier=GalleryImageIdentifier(publisher="contoso", offer="base", sku="web"),
    )
    with pytest.raises(ResourceExistsError) as e:
        c.gallery_images.begin_create_or_update(RG, "gal", "web", changed)
    assert e.value.error.code == "PropertyChangeNotAllowed"


def test_version_from_vm__three_regions_completed(arm: SimHandle) -> None:
    make_definition(arm)
    generalized_vm(arm)
    c = arm.compute()
    version = c.gallery_image_versions.begin_create_or_update(
        RG, "gal", "web", "1.0.0", from_vm("vm-web", "westeurope", "northeurope", "eastus")
    ).result()
    assert version.provisioning_state == "Succeeded"
    assert version.storage_profile.source.virtual_machine_id == vm_id("vm-web")
    assert [d.lun for d in version.storage_profile.data_disk_images] == [0]
    assert version.replication_status is None  # only with $expand
    expanded = c.gallery_image_versions.get(RG, "gal", "web", "1.0.0", expand="ReplicationStatus")
    assert expanded.replication_status.aggregated_state == "Completed"
    assert {(s.region, s.state, s.progress) for s in expanded.replication_status.summary} == {
        ("West Europe", "Completed", 100),
        ("North Europe", "Completed", 100),
        ("East US", "Completed", 100),
    }
    assert [v.name for v in c.gallery_image_versions.list_by_gallery_image(RG, "gal", "web")] == ["1.0.0"]


def test_version_from_snapshots__os_and_data_luns(arm: SimHandle) -> None:
    make_definition(
        arm,
        "win",
        os_type="Windows",
        features=[GalleryImageFeature(name="SecurityType", value="TrustedLaunch")],
    )
    os_snap = snapshot(arm, "vm-win_OsDisk", "win-os")
    d0, d1 = snapshot(arm, "vm-win_data0", "win-d0"), snapshot(arm, "vm-win_data1", "win-d1")
    body = GalleryImageVersion(
        location="westeurope",
        publishing_profile=regions("westeurope", "uksouth"),
        storage_profile=GalleryImageVersionStorageProfile(
            os_disk_image=GalleryOSDiskImage(source=GalleryDiskImageSource(id=os_snap)),
            data_disk_images=[
                GalleryDataDiskImage(lun=0, source=GalleryDiskImageSource(id=d0)),
                GalleryDataDiskImage(lun=1, source=GalleryDiskImageSource(id=d1)),
            ],
        ),
    )
    version = (
        arm.compute().gallery_image_versions.begin_create_or_update(RG, "gal", "win", "2.0.1", body).result()
    )
    assert version.storage_profile.os_disk_image.size_in_gb == 127
    assert [(d.lun, d.size_in_gb) for d in version.storage_profile.data_disk_images] == [(0, 128), (1, 256)]


def test_replication_progress_advances_with_time(tmp_path_factory: pytest.TempPathFactory) -> None:
    latency = LatencyProfile(
        replication_base_s=100, replication_mb_per_s=1e12, gallery_image_s=0, gallery_s=0
    )
    with running_sim(tmp_path_factory.mktemp("arm-repl"), time_scale=0.01, latency=latency) as arm:
        make_definition(arm, os_state="Specialized")
        c = arm.compute()
        poller = c.gallery_image_versions.begin_create_or_update(
            RG, "gal", "web", "1.0.0", from_vm("vm-web", "westeurope", "eastus")
        )

        def status() -> dict[str, tuple[str, int]]:
            v = c.gallery_image_versions.get(RG, "gal", "web", "1.0.0", expand="ReplicationStatus")
            return {s.region: (s.state, s.progress) for s in v.replication_status.summary}

        # Source region first (50 s at scale 0.01 = 0.5 s), then the others.
        mid = wait_until(
            lambda: (s := status())["West Europe"][0] == "Replicating" and 0 < s["West Europe"][1] < 100 and s
        )
        assert mid["East US"] == ("Replicating", 0)
        wait_until(lambda: status()["West Europe"] == ("Completed", 100))
        wait_until(lambda: 0 < status()["East US"][1] < 100)
        assert poller.result().provisioning_state == "Succeeded"
        assert status() == {"West Europe": ("Completed", 100), "East US": ("Completed", 100)}


def test_version_rules__name_location_duplicates(arm: SimHandle) -> None:
    make_definition(arm)
    generalized_vm(arm)
    c = arm.compute()
    for bad_name in ("1.0", "v1.0.0", "1.0.4294967296"):
        with pytest.raises(HttpResponseError) as e:
            c.gallery_image_versions.begin_create_or_update(RG, "gal", "web", bad_name, from_vm("vm-web"))
        assert e.value.error.code == "InvalidParameter"
    with pytest.raises(HttpResponseError) as e:
        c.gallery_image_versions.begin_create_or_update(
            RG, "gal", "web", "1.0.0", from_vm("vm-web", "eastus")
        )
    assert "must contain the location of image version 'westeurope'" in str(e.value)
    with pytest.raises(HttpResponseError) as e:
        c.gallery_image_versions.begin_create_or_update(
            RG, "gal", "web", "1.0.0", from_vm("vm-web", "westeurope", "West Europe")
        )
    assert "Duplicate regions are not allowed in target publishing regions." in str(e.value)


def test_version_mismatch__hyper_v_generation_fails_as_lro_conflict(arm: SimHandle) -> None:
    make_definition(arm, hyper_v_generation="V1")
    generalized_vm(arm)
    poller = arm.compute().gallery_image_versions.begin_create_or_update(
        RG, "gal", "web", "1.0.0", from_vm("vm-web")
    )
    with pytest.raises(HttpResponseError) as e:
        poller.result()
    assert e.value.error.code == "Conflict"
    assert (
        "has a different Hypervisor generation ['V2'] than the parent gallery image Hypervisor generation ['V1']."
        in str(e.value)
    )
    assert arm.compute().gallery_image_versions.get(RG, "gal", "web", "1.0.0").provisioning_state == "Failed"


def test_version_mismatch__os_state_is_bad_request(arm: SimHandle) -> None:
    make_definition(arm)  # Generalized definition, VM not generalized by the platform
    with pytest.raises(HttpResponseError) as e:
        arm.compute().gallery_image_versions.begin_create_or_update(
            RG, "gal", "web", "1.0.0", from_vm("vm-web-2")
        )
    assert e.value.status_code == 400 and e.value.error.code == "BadRequest"
    assert (
        "has a different OS state ['Specialized'] than the parent gallery image OS state ['Generalized']."
        in str(e.value)
    )


def test_version_mismatch__architecture_and_security(arm: SimHandle) -> None:
    make_definition(arm, os_state="Specialized")
    c = arm.compute()
    with pytest.raises(HttpResponseError) as e:
        c.gallery_image_versions.begin_create_or_update(RG, "gal", "web", "1.0.0", from_vm("vm-arm"))
    assert "architecture" in str(e.value)
    make_definition(arm, "win", os_type="Windows", os_state="Specialized")  # no SecurityType feature
    with pytest.raises(HttpResponseError) as e:
        c.gallery_image_versions.begin_create_or_update(RG, "gal", "win", "1.0.0", from_vm("vm-win"))
    assert "security type 'TrustedLaunch'" in str(e.value)


def test_version_re_put__source_change_refused_identical_accepted(arm: SimHandle) -> None:
    make_definition(arm, os_state="Specialized")
    c = arm.compute()
    c.gallery_image_versions.begin_create_or_update(RG, "gal", "web", "1.0.0", from_vm("vm-web")).result()
    again = c.gallery_image_versions.begin_create_or_update(
        RG, "gal", "web", "1.0.0", from_vm("vm-web")
    ).result()
    assert again.provisioning_state == "Succeeded"
    with pytest.raises(ResourceExistsError) as e:
        c.gallery_image_versions.begin_create_or_update(RG, "gal", "web", "1.0.0", from_vm("vm-web-2"))
    assert e.value.error.code == "PropertyChangeNotAllowed"
    assert (
        "Changing property 'galleryImageVersion.properties.storageProfile.source.virtualMachineId' is not allowed."
        in str(e.value)
    )


def test_version_patch__add_remove_regions_and_exclude_from_latest(arm: SimHandle) -> None:
    make_definition(arm, os_state="Specialized")
    c = arm.compute()
    c.gallery_image_versions.begin_create_or_update(
        RG, "gal", "web", "1.0.0", from_vm("vm-web", "westeurope", "eastus")
    ).result()
    update = GalleryImageVersionUpdate(
        publishing_profile=GalleryImageVersionPublishingProfile(
            target_regions=[TargetRegion(name="westeurope"), TargetRegion(name="northeurope")],
            exclude_from_latest=True,
        )
    )
    updated = c.gallery_image_versions.begin_update(RG, "gal", "web", "1.0.0", update).result()
    assert updated.publishing_profile.exclude_from_latest is True
    status = c.gallery_image_versions.get(
        RG, "gal", "web", "1.0.0", expand="ReplicationStatus"
    ).replication_status
    assert {s.region: s.state for s in status.summary} == {
        "West Europe": "Completed",
        "North Europe": "Completed",
    }
    c.gallery_image_versions.begin_delete(RG, "gal", "web", "1.0.0").result()
    with pytest.raises(ResourceNotFoundError):
        c.gallery_image_versions.get(RG, "gal", "web", "1.0.0")
