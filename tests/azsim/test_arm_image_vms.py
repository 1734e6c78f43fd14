"""VMs created from gallery image versions, through the real azure-mgmt-compute client on the simulated
clock: the replica must be Completed in the VM's region, osProfile rules per OS state, the security type
per definition, FromImage disks at the image's LUNs, and provisioning that follows the captured guest
(prepared: Succeeded and Ready; never deprovisioned: OSProvisioningTimedOut after the Linux timeout;
broken preparation: OSProvisioningClientError). Latest resolution honours excludeFromLatest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute.models import RunCommandInput

from azsim.core.clock import SimClock
from azsim.core.latency import LatencyProfile
from azsim.world import parse_world
from tests.azsim.arm_fakes import SUB, WORLD_FILE, SimHandle, disk_id, running_sim, vm_id
from tests.azsim.arm_spec import load_spec
from tests.azsim.test_arm_clone import BUILD, STANDARD, make_nic, vm_body

LATENCY = LatencyProfile(vm_create_s=60.0, vm_agent_ready_s=45.0, run_command_s=20.0, poll_interval_s=0.01)
GALLERY = f"/subscriptions/{SUB}/resourceGroups/rg-images/providers/Microsoft.Compute/galleries/galtest"
LINUX_KEY = {
    "publicKeys": [{"path": "/home/azureuser/.ssh/authorized_keys", "keyData": "ssh-rsa AAAAB3Nza test"}]
}
OS_PROFILE = {
    "computerName": "boot",
    "adminUsername": "azureuser",
    "linuxConfiguration": {"disablePasswordAuthentication": True, "ssh": LINUX_KEY},
}


def _version(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "targetRegions": ["westeurope"], **extra}


def image_world() -> Any:
    data = json.loads(WORLD_FILE.read_text(encoding="utf-8"))
    data["galleries"] = [
        {
            "name": "galtest",
            "resourceGroup": "rg-images",
            "location": "westeurope",
            "images": [
                {
                    "name": "lnx",
                    "osType": "Linux",
                    "versions": [
                        _version("1.0.0", targetRegions=["westeurope", "northeurope"], dataDiskLuns=[0, 3]),
                        _version("1.1.0", guestState=""),
                        _version("1.2.0", guestState="deprovisioned", guestPrepareFails=True),
                        _version("2.0.0", excludeFromLatest=True),
                    ],
                },
                {
                    "name": "lnx-spec",
                    "osType": "Linux",
                    "osState": "Specialized",
                    "versions": [_version("1.0.0"), _version("2.0.0", guestState="deprovisioned")],
                },
                {
                    "name": "win",
                    "osType": "Windows",
                    "securityType": "TrustedLaunch",
                    "versions": [_version("1.0.0")],
                },
                {
                    "name": "lnx-tl",
                    "osType": "Linux",
                    "securityType": "TrustedLaunch",
                    "versions": [_version("1.0.0")],
                },
                {
                    "name": "lnx-tls",
                    "osType": "Linux",
                    "securityType": "TrustedLaunchSupported",
                    "versions": [_version("1.0.0")],
                },
                {"name": "lnx-v1", "osType": "Linux", "hyperVGeneration": "V1"},
                {
                    "name": "lnx-none",
                    "osType": "Linux",
                    "versions": [_version("1.0.0", excludeFromLatest=True)],
                },
            ],
        }
    ]
    return parse_world(data)


@pytest.fixture
def arm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    with running_sim(
        tmp_path_factory.mktemp("arm-image-vms"), world=image_world(), clock=SimClock(), latency=LATENCY
    ) as handle:
        yield handle


def advance(arm: SimHandle, seconds: float) -> None:
    clock = arm.sim.clock
    assert isinstance(clock, SimClock)
    assert clock.advance(by=seconds)


def image_vm(image_id: str, nic: str | None, *, os_profile: Any = OS_PROFILE, **props: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "location": props.pop("location", "westeurope"),
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
            "storageProfile": {
                "imageReference": {"id": image_id},
                "osDisk": {"createOption": "FromImage", "deleteOption": "Delete"},
            },
            **props,
        },
    }
    if os_profile is not None:
        body["properties"]["osProfile"] = os_profile
    if nic is not None:
        body["properties"]["networkProfile"] = {
            "networkInterfaces": [{"id": nic, "properties": {"primary": True, "deleteOption": "Delete"}}]
        }
    return body


def refused(arm: SimHandle, name: str, body: dict[str, Any]) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as e:
        arm.compute().virtual_machines.begin_create_or_update(BUILD, name, body, polling=False)
    return e.value


def test_prepared_image__succeeded_and_ready_with_fromimage_disks(arm: SimHandle) -> None:
    nic = make_nic(arm, "ok-nic")
    c = arm.compute(polling_interval=0)
    poller = c.virtual_machines.begin_create_or_update(
        BUILD, "vm-ok", image_vm(f"{GALLERY}/images/lnx/versions/1.0.0", nic)
    )
    vm = c.virtual_machines.get(BUILD, "vm-ok")
    assert vm.provisioning_state == "Creating"
    assert vm.security_profile is None  # a Standard definition: no Trusted Launch default
    advance(arm, 60)
    assert c.virtual_machines.get(BUILD, "vm-ok").provisioning_state == "Creating"  # OS provisioning
    advance(arm, 45)
    vm = poller.result(timeout=10)
    assert vm.provisioning_state == "Succeeded"
    storage = vm.storage_profile
    assert storage.image_reference.id.endswith("/images/lnx/versions/1.0.0")
    assert storage.image_reference.exact_version == "1.0.0"
    assert storage.os_disk.create_option == "FromImage" and storage.os_disk.delete_option == "Delete"
    assert [(d.lun, d.create_option) for d in storage.data_disks] == [(0, "FromImage"), (3, "FromImage")]
    assert vm.os_profile.admin_username == "azureuser"
    os_disk = c.disks.get(BUILD, storage.os_disk.name)
    assert os_disk.creation_data.create_option == "FromImage" and os_disk.managed_by == vm.id
    view = c.virtual_machines.instance_view(BUILD, "vm-ok")
    assert view.vm_agent.statuses[0].display_status == "Ready"
    # A smoke script through Run Command: its exit code decides.
    run = c.virtual_machines.begin_run_command(
        BUILD, "vm-ok", RunCommandInput(command_id="RunShellScript", script=["echo smoke", "exit 3"])
    )
    advance(arm, 20)
    status = run.result(timeout=10).value[0]
    assert status.code == "ProvisioningState/failed/3" and "smoke" in status.message
    # The OS disk (deleteOption Delete) goes with the VM; the data disks (default Detach) stay.
    c.virtual_machines.begin_delete(BUILD, "vm-ok", polling=False)
    advance(arm, 60)
    left = sorted(
        d.name.split("_")[1] for d in c.disks.list_by_resource_group(BUILD) if d.name.startswith("vm-ok_")
    )
    assert left == ["DataDisk", "DataDisk"]


def test_never_deprovisioned_guest__os_provisioning_timed_out_after_40_minutes(arm: SimHandle) -> None:
    nic = make_nic(arm, "to-nic")
    c = arm.compute(polling_interval=0)
    poller = c.virtual_machines.begin_create_or_update(
        BUILD, "vm-to", image_vm(f"{GALLERY}/images/lnx/versions/1.1.0", nic)
    )
    advance(arm, 60 + 2399)
    assert c.virtual_machines.get(BUILD, "vm-to").provisioning_state == "Creating"
    advance(arm, 1)
    with pytest.raises(HttpResponseError) as e:
        poller.result(timeout=10)
    assert e.value.error.code == "OSProvisioningTimedOut"
    assert e.value.error.message.startswith(
        "OS Provisioning for VM 'vm-to' did not finish in the allotted time. However, the VM guest agent was "
        "detected running. This suggests the guest OS has not been properly prepared"
    )
    assert c.virtual_machines.get(BUILD, "vm-to").provisioning_state == "Failed"


def test_broken_preparation__os_provisioning_client_error(arm: SimHandle) -> None:
    nic = make_nic(arm, "ce-nic")
    c = arm.compute(polling_interval=0)
    poller = c.virtual_machines.begin_create_or_update(
        BUILD, "vm-ce", image_vm(f"{GALLERY}/images/lnx/versions/1.2.0", nic)
    )
    advance(arm, 105)
    with pytest.raises(HttpResponseError) as e:
        poller.result(timeout=10)
    assert e.value.error.code == "OSProvisioningClientError"
    assert e.value.error.message.startswith("OS provisioning for VM 'vm-ce' failed. Error details: ")
    assert e.value.error.message.endswith("Make sure the image has been properly prepared (generalized).")


def test_specialized_image__no_os_profile_and_no_os_provisioning(arm: SimHandle) -> None:
    image = f"{GALLERY}/images/lnx-spec/versions/1.0.0"
    nic = make_nic(arm, "sp-nic")
    err = refused(arm, "vm-sp", image_vm(image, nic))
    assert (err.status_code, err.error.code, err.error.message) == (
        400,
        "InvalidParameter",
        "Parameter 'osProfile' is not allowed.",
    )
    c = arm.compute(polling_interval=0)
    poller = c.virtual_machines.begin_create_or_update(BUILD, "vm-sp", image_vm(image, nic, os_profile=None))
    advance(arm, 60)
    vm = poller.result(timeout=10)
    assert vm.provisioning_state == "Succeeded" and vm.os_profile is None
    assert c.virtual_machines.instance_view(BUILD, "vm-sp").vm_agent.statuses[0].display_status == "Not Ready"
    advance(arm, 45)
    assert c.virtual_machines.instance_view(BUILD, "vm-sp").vm_agent.statuses[0].display_status == "Ready"


def test_create_rules_and_texts(arm: SimHandle) -> None:
    nic = make_nic(arm, "rules-nic")
    version = f"{GALLERY}/images/lnx/versions/1.0.0"
    err = refused(arm, "vm-r", image_vm(version, nic, os_profile=None))
    assert err.error.message == "Required parameter 'osProfile' is missing (null)."
    err = refused(arm, "vm-r", image_vm(version, nic, os_profile={"adminUsername": "azureuser"}))
    assert err.error.message == "Required parameter 'adminPassword' is missing (null)."
    err = refused(arm, "vm-r", image_vm(version, None))
    assert err.error.message == "Required parameter 'networkProfile' is missing (null)."
    # Replicated only to westeurope: not available in uksouth.
    err = refused(arm, "vm-r", image_vm(f"{GALLERY}/images/lnx/versions/1.1.0", nic, location="uksouth"))
    assert err.error.message == (
        f"The gallery image {GALLERY}/images/lnx/versions/1.1.0 is not available in uksouth region. Please contact "
        "image owner to replicate to this region, or change your requested region."
    )
    err = refused(arm, "vm-r", image_vm(f"{GALLERY}/images/lnx-none", nic))
    assert err.error.message == f'There is no latest image version exists for "{GALLERY}/images/lnx-none"'
    # Trusted Launch definition: Standard refused; omitted -> TL by default (API 2025-11-01+).
    tl = f"{GALLERY}/images/lnx-tl/versions/1.0.0"
    err = refused(arm, "vm-r", image_vm(tl, nic, securityProfile={"securityType": "Standard"}))
    assert err.error.code == "BadRequest" and "TrustedLaunch" in err.error.message
    c = arm.compute(polling_interval=0)
    c.virtual_machines.begin_create_or_update(BUILD, "vm-tl", image_vm(tl, nic), polling=False)
    assert c.virtual_machines.get(BUILD, "vm-tl").security_profile.security_type == "TrustedLaunch"


def test_trusted_launch_supported__default_tl_or_standard_when_asked(arm: SimHandle) -> None:
    c = arm.compute(polling_interval=0)
    tls = f"{GALLERY}/images/lnx-tls/versions/1.0.0"
    c.virtual_machines.begin_create_or_update(
        BUILD, "vm-d", image_vm(tls, make_nic(arm, "d-nic")), polling=False
    )
    assert c.virtual_machines.get(BUILD, "vm-d").security_profile.security_type == "TrustedLaunch"
    std = image_vm(tls, make_nic(arm, "s-nic"), securityProfile={"securityType": "Standard"})
    c.virtual_machines.begin_create_or_update(BUILD, "vm-s", std, polling=False)
    assert c.virtual_machines.get(BUILD, "vm-s").security_profile is None


def test_latest_honours_exclude_from_latest_and_its_updates(arm: SimHandle) -> None:
    c = arm.compute(polling_interval=0)
    nic = make_nic(arm, "latest-nic")
    c.virtual_machines.begin_create_or_update(
        BUILD, "vm-l1", image_vm(f"{GALLERY}/images/lnx", nic), polling=False
    )
    # 2.0.0 is excluded: latest is 1.2.0.
    assert c.virtual_machines.get(BUILD, "vm-l1").storage_profile.image_reference.exact_version == "1.2.0"
    c.gallery_image_versions.begin_update(
        "rg-images",
        "galtest",
        "lnx",
        "2.0.0",
        {"properties": {"publishingProfile": {"excludeFromLatest": False}}},
    ).result(timeout=10)
    nic2 = make_nic(arm, "latest-nic2")
    c.virtual_machines.begin_create_or_update(
        BUILD, "vm-l2", image_vm(f"{GALLERY}/images/lnx", nic2), polling=False
    )
    assert c.virtual_machines.get(BUILD, "vm-l2").storage_profile.image_reference.exact_version == "2.0.0"


def test_version_safety__end_of_life_blocks_delete_and_region_removal(arm: SimHandle) -> None:
    c = arm.compute(polling_interval=0)
    versions = c.gallery_image_versions
    versions.begin_update(
        "rg-images",
        "galtest",
        "lnx",
        "1.0.0",
        {
            "properties": {
                "publishingProfile": {"endOfLifeDate": "2999-01-01T00:00:00Z"},
                "safetyProfile": {
                    "allowDeletionOfReplicatedLocations": False,
                    "blockDeletionBeforeEndOfLife": True,
                },
            }
        },
    ).result(timeout=10)
    got = versions.get("rg-images", "galtest", "lnx", "1.0.0")
    assert got.publishing_profile.end_of_life_date.year == 2999
    assert got.safety_profile.allow_deletion_of_replicated_locations is False
    assert got.safety_profile.block_deletion_before_end_of_life is True
    with pytest.raises(HttpResponseError) as e:
        versions.begin_update(
            "rg-images",
            "galtest",
            "lnx",
            "1.0.0",
            {"properties": {"publishingProfile": {"targetRegions": [{"name": "westeurope"}]}}},
        )
    assert "allowDeletionOfReplicatedLocations" in e.value.error.message
    with pytest.raises(HttpResponseError) as e:
        versions.begin_delete("rg-images", "galtest", "lnx", "1.0.0")
    assert (e.value.status_code, e.value.error.code) == (409, "OperationNotAllowed")
    versions.begin_update(
        "rg-images",
        "galtest",
        "lnx",
        "1.0.0",
        {"properties": {"safetyProfile": {"blockDeletionBeforeEndOfLife": False}}},
    ).result(timeout=10)
    poller = versions.begin_delete("rg-images", "galtest", "lnx", "1.0.0")
    advance(arm, 10)
    poller.result(timeout=10)


def _capture(arm: SimHandle, source: str, image: str, version: str) -> None:
    """Deallocate + generalize a world VM, then a version of it in ``image``, replicated."""
    c = arm.compute(polling_interval=0)
    deallocated = c.virtual_machines.begin_deallocate("rg-build", source)
    advance(arm, 90)
    deallocated.result(timeout=10)
    c.virtual_machines.generalize("rg-build", source)
    vm = c.virtual_machines.get("rg-build", source)
    body = {
        "location": "westeurope",
        "properties": {
            "storageProfile": {"source": {"virtualMachineId": vm.id}},
            "publishingProfile": {"targetRegions": [{"name": "westeurope"}], "excludeFromLatest": True},
        },
    }
    poller = c.gallery_image_versions.begin_create_or_update("rg-images", "galtest", image, version, body)
    advance(arm, 3600)
    assert poller.result(timeout=10).provisioning_state == "Succeeded"


@pytest.mark.parametrize(
    ("source", "image", "code"),
    [("vm-legacy", "lnx-v1", None), ("vm-web", "lnx", "OSProvisioningTimedOut")],
)
def test_the_captured_guest_decides__deprovisioned_boots_never_deprovisioned_times_out(
    arm: SimHandle, source: str, image: str, code: str | None
) -> None:
    _capture(arm, source, image, "3.0.0")
    c = arm.compute(polling_interval=0)
    body = image_vm(f"{GALLERY}/images/{image}/versions/3.0.0", make_nic(arm, "cap-nic"))
    poller = c.virtual_machines.begin_create_or_update(BUILD, "vm-cap", body)
    advance(arm, 60 + 2400)
    if code is None:
        assert poller.result(timeout=10).provisioning_state == "Succeeded"
    else:
        with pytest.raises(HttpResponseError) as e:
            poller.result(timeout=10)
        assert e.value.error.code == code


def test_bodies_match_the_specs(arm: SimHandle) -> None:
    spec = load_spec()
    if spec is None:
        pytest.skip("the ARM spec extracts are not available")
    c = arm.compute(polling_interval=0)
    c.virtual_machines.begin_create_or_update(
        BUILD,
        "vm-spec",
        image_vm(f"{GALLERY}/images/lnx/versions/1.0.0", make_nic(arm, "spec-nic")),
        polling=False,
    )
    vm = arm.sim.backend.get_vm(SUB, BUILD, "vm-spec").to_arm(arm.sim.backend.disks)
    assert spec.validate("compute-2026-04-01.json", "VirtualMachine", vm) == []
    version = arm.sim.backend.get_version(SUB, "rg-images", "galtest", "lnx", "1.0.0").to_arm()
    assert spec.validate("gallery-2026-03-03.json", "GalleryImageVersion", version) == []


def test_clone_deprovisioned_through_run_command__its_version_boots(arm: SimHandle) -> None:
    """The non-destructive path: snapshot the never-deprovisioned vm-web, clone it, deprovision the clone
    through Run Command, generalize it and capture it: the guest record follows, so the version boots."""
    c = arm.compute(polling_interval=0)
    snap_body = {
        "location": "westeurope",
        "properties": {
            "creationData": {"createOption": "Copy", "sourceResourceId": disk_id("vm-web_OsDisk")}
        },
    }
    c.snapshots.begin_create_or_update("rg-build", "web-snap", snap_body, polling=False)
    advance(arm, 60)
    disk_body = {
        "location": "westeurope",
        "properties": {
            "creationData": {
                "createOption": "Copy",
                "sourceResourceId": disk_id("web-snap", kind="snapshots"),
            }
        },
    }
    c.disks.begin_create_or_update(BUILD, "clone-os", disk_body, polling=False)
    advance(arm, 60)
    clone = vm_body(disk_id("clone-os", BUILD), make_nic(arm, "clone-nic"), **STANDARD)
    c.virtual_machines.begin_create_or_update(BUILD, "vm-clone", clone, polling=False)
    advance(arm, 60 + 45)
    c.virtual_machines.begin_run_command(
        BUILD,
        "vm-clone",
        RunCommandInput(command_id="RunShellScript", script=["waagent -deprovision+user -force"]),
        polling=False,
    )
    advance(arm, 20)
    deallocated = c.virtual_machines.begin_deallocate(BUILD, "vm-clone")
    advance(arm, 90)
    deallocated.result(timeout=10)
    c.virtual_machines.generalize(BUILD, "vm-clone")
    body = {
        "location": "westeurope",
        "properties": {
            "storageProfile": {"source": {"virtualMachineId": vm_id("vm-clone", BUILD)}},
            "publishingProfile": {"targetRegions": [{"name": "westeurope"}]},
        },
    }
    version = c.gallery_image_versions.begin_create_or_update("rg-images", "galtest", "lnx", "4.0.0", body)
    advance(arm, 3600)
    version.result(timeout=10)
    poller = c.virtual_machines.begin_create_or_update(
        BUILD, "vm-boot", image_vm(f"{GALLERY}/images/lnx/versions/4.0.0", make_nic(arm, "boot-nic"))
    )
    advance(arm, 60 + 45)
    assert poller.result(timeout=10).provisioning_state == "Succeeded"
    # A re-PUT (the same source) takes it out of latest again.
    body["properties"]["publishingProfile"]["excludeFromLatest"] = True
    c.gallery_image_versions.begin_create_or_update("rg-images", "galtest", "lnx", "4.0.0", body).result(
        timeout=10
    )
    c.virtual_machines.begin_create_or_update(
        BUILD, "vm-latest", image_vm(f"{GALLERY}/images/lnx", make_nic(arm, "latest-nic")), polling=False
    )
    assert c.virtual_machines.get(BUILD, "vm-latest").storage_profile.image_reference.exact_version == "1.2.0"


def test_windows_needs_a_password_never_echoed__generalized_os_as_specialized_times_out(
    arm: SimHandle,
) -> None:
    c = arm.compute(polling_interval=0)
    nic = make_nic(arm, "win-nic")
    image = f"{GALLERY}/images/win/versions/1.0.0"
    err = refused(arm, "vm-win1", image_vm(image, nic, os_profile={"adminUsername": "azureadmin"}))
    assert err.error.message == "Required parameter 'adminPassword' is missing (null)."
    secret = "Pa55-never-echoed!"
    profile = {"computerName": "win1", "adminUsername": "azureadmin", "adminPassword": secret}
    poller = c.virtual_machines.begin_create_or_update(
        BUILD, "vm-win1", image_vm(image, nic, os_profile=profile)
    )
    advance(arm, 105)
    vm = poller.result(timeout=10)
    assert vm.provisioning_state == "Succeeded" and vm.os_profile.admin_password is None
    assert vm.security_profile.security_type == "TrustedLaunch"
    assert secret not in json.dumps(
        arm.sim.backend.get_vm(SUB, BUILD, "vm-win1").to_arm(arm.sim.backend.disks)
    )
    # A deprovisioned guest published as Specialized: the provisioning it waits for never comes.
    spec = c.virtual_machines.begin_create_or_update(
        BUILD,
        "vm-sp2",
        image_vm(f"{GALLERY}/images/lnx-spec/versions/2.0.0", make_nic(arm, "sp2-nic"), os_profile=None),
    )
    advance(arm, 60 + 2400)
    with pytest.raises(HttpResponseError) as e:
        spec.result(timeout=10)
    assert e.value.error.code == "OSProvisioningTimedOut"
    assert e.value.error.message.endswith(
        "Also, make sure the image has been properly prepared (generalized)."
    )


@pytest.mark.parametrize(
    ("source", "image", "code"),
    [("vm-legacy", "lnx-v1", None), ("vm-web-2", "lnx", "OSProvisioningTimedOut")],
)
def test_a_snapshot_carries_the_guest_into_the_version(
    arm: SimHandle, source: str, image: str, code: str | None
) -> None:
    c = arm.compute(polling_interval=0)
    snap_body = {
        "location": "westeurope",
        "properties": {
            "creationData": {"createOption": "Copy", "sourceResourceId": disk_id(f"{source}_OsDisk")}
        },
    }
    c.snapshots.begin_create_or_update("rg-build", "guest-snap", snap_body, polling=False)
    advance(arm, 60)
    body = {
        "location": "westeurope",
        "properties": {
            "storageProfile": {"osDiskImage": {"source": {"id": disk_id("guest-snap", kind="snapshots")}}},
            "publishingProfile": {"targetRegions": [{"name": "westeurope"}]},
        },
    }
    version = c.gallery_image_versions.begin_create_or_update("rg-images", "galtest", image, "5.0.0", body)
    advance(arm, 3600)
    version.result(timeout=10)
    poller = c.virtual_machines.begin_create_or_update(
        BUILD, "vm-snapboot", image_vm(f"{GALLERY}/images/{image}/versions/5.0.0", make_nic(arm, "snap-nic"))
    )
    advance(arm, 60 + 2400)
    if code is None:
        assert poller.result(timeout=10).provisioning_state == "Succeeded"
    else:
        with pytest.raises(HttpResponseError) as e:
            poller.result(timeout=10)
        assert e.value.error.code == code
