"""Virtual machines through the real azure-mgmt-compute client: reads, power state machine,
generalize, Run Command guest effects, creation from an attached OS disk, delete."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.compute.models import (
    CreationData,
    DataDisk,
    HardwareProfile,
    ManagedDiskParameters,
    NetworkInterfaceReference,
    NetworkProfile,
    OSDisk,
    RunCommandInput,
    SecurityProfile,
    Snapshot,
    StorageProfile,
    VirtualMachine,
)
from azure.mgmt.compute.models import Disk as DiskModel

from tests.azsim.arm_fakes import SUB, SimHandle, disk_id, running_sim, vm_id, wait_until


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory):
    with running_sim(tmp_path_factory.mktemp("arm-vms"), time_scale=0.0005) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _fresh(arm: SimHandle) -> None:
    arm.sim.reset()


def power(arm: SimHandle, name: str) -> str:
    view = arm.compute().virtual_machines.instance_view("rg-build", name)
    return next(s.code for s in view.statuses if s.code.startswith("PowerState/"))


def test_get_vm__model_view_has_disk_ids_and_security(arm: SimHandle) -> None:
    vm = (
        arm.compute().virtual_machines.get("rg-win", "vm-win")
        if False
        else arm.compute().virtual_machines.get("rg-build", "vm-win")
    )
    assert vm.id == vm_id("vm-win")
    assert vm.storage_profile.os_disk.os_type == "Windows"
    assert vm.storage_profile.os_disk.managed_disk.id == disk_id("vm-win_OsDisk")
    assert [d.lun for d in vm.storage_profile.data_disks] == [0, 1]
    assert vm.security_profile.security_type == "TrustedLaunch"
    assert vm.instance_view is None


def test_get_vm__expand_instance_view(arm: SimHandle) -> None:
    vm = arm.compute().virtual_machines.get("rg-build", "vm-web", expand="instanceView")
    codes = [s.code for s in vm.instance_view.statuses]
    assert "PowerState/running" in codes
    assert vm.instance_view.hyper_v_generation == "V2"


def test_list_vms_by_group_and_subscription(arm: SimHandle) -> None:
    c = arm.compute()
    names = {vm.name for vm in c.virtual_machines.list("rg-build")}
    assert {"vm-web", "vm-win", "vm-web-2"} <= names
    assert names == {vm.name for vm in c.virtual_machines.list_all()}


def test_get_vm__not_found_texts(arm: SimHandle) -> None:
    c = arm.compute()
    with pytest.raises(ResourceNotFoundError) as e:
        c.virtual_machines.get("rg-build", "nope")
    assert e.value.error.code == "ResourceNotFound"
    assert (
        "The Resource 'Microsoft.Compute/virtualMachines/nope' under resource group 'rg-build' was not found"
        in str(e.value)
    )
    with pytest.raises(ResourceNotFoundError) as e:
        arm.compute(oid="b238e621-424b-5f06-bd00-d0f513770f55").virtual_machines.get("rg-missing", "vm")
    assert e.value.error.code == "ResourceGroupNotFound"
    assert "Resource group 'rg-missing' could not be found." in str(e.value)


def test_deallocate__passes_through_deallocating_then_deallocated(arm: SimHandle) -> None:
    c = arm.compute()
    poller = c.virtual_machines.begin_deallocate("rg-build", "vm-web")
    # 90 Azure seconds at time scale 0.0005 = 45 ms: the first read is usually still mid-transition.
    poller.result()
    assert power(arm, "vm-web") == "PowerState/deallocated"
    disk = c.disks.get("rg-build", "vm-web_OsDisk")
    assert disk.disk_state == "Reserved"
    # Deallocating again is accepted (no-op).
    c.virtual_machines.begin_deallocate("rg-build", "vm-web").result()


def test_power_off_then_start(arm: SimHandle) -> None:
    c = arm.compute()
    c.virtual_machines.begin_power_off("rg-build", "vm-web-2").result()
    assert power(arm, "vm-web-2") == "PowerState/stopped"
    assert c.disks.get("rg-build", "vm-web-2_OsDisk").disk_state == "Attached"
    c.virtual_machines.begin_start("rg-build", "vm-web-2").result()
    assert power(arm, "vm-web-2") == "PowerState/running"


def test_power_off__deallocated_vm_is_409_operation_not_allowed(arm: SimHandle) -> None:
    with pytest.raises(ResourceExistsError) as e:
        arm.compute().virtual_machines.begin_power_off("rg-build", "vm-web-4")
    assert e.value.status_code == 409
    assert e.value.error.code == "OperationNotAllowed"
    assert (
        "Operation 'powerOff' is not allowed on VM 'vm-web-4' since the VM is either deallocated or marked to be deallocated."
        in str(e.value)
    )


def test_generalize__running_vm_refused(arm: SimHandle) -> None:
    with pytest.raises(ResourceExistsError) as e:
        arm.compute().virtual_machines.generalize("rg-build", "vm-web")
    assert e.value.error.code == "OperationNotAllowed"
    assert "Operation 'generalize' is not allowed on VM 'vm-web' since the VM is running." in str(e.value)


def test_generalize__then_start_refused(arm: SimHandle) -> None:
    c = arm.compute()
    c.virtual_machines.generalize("rg-build", "vm-web-4")  # deallocated in the world file; sync 200
    view = c.virtual_machines.instance_view("rg-build", "vm-web-4")
    assert "OSState/generalized" in [s.code for s in view.statuses]
    with pytest.raises(ResourceExistsError) as e:
        c.virtual_machines.begin_start("rg-build", "vm-web-4")
    assert "Operation 'Start VM' is not allowed on VM 'vm-web-4' since the VM is generalized." in str(e.value)


def test_run_command__linux_stdout_and_exit_code(arm: SimHandle) -> None:
    c = arm.compute()
    ok = c.virtual_machines.begin_run_command(
        "rg-build",
        "vm-web-2",
        RunCommandInput(command_id="RunShellScript", script=["echo hello world", "echo oops >&2"]),
    ).result()
    assert ok.value[0].code == "ProvisioningState/succeeded"
    assert "[stdout]\nhello world" in ok.value[0].message and "[stderr]\noops" in ok.value[0].message
    failed = c.virtual_machines.begin_run_command(
        "rg-build",
        "vm-web-2",
        RunCommandInput(command_id="RunShellScript", script=["echo x", "exit 7", "echo never"]),
    ).result()
    assert failed.value[0].code == "ProvisioningState/failed/7"
    assert "never" not in failed.value[0].message


def test_run_command__windows_components_and_wrong_command_id(arm: SimHandle) -> None:
    c = arm.compute()
    result = c.virtual_machines.begin_run_command(
        "rg-build",
        "vm-win",
        RunCommandInput(command_id="RunPowerShellScript", script=["Write-Output 'hi there'"]),
    ).result()
    assert [v.code for v in result.value] == [
        "ComponentStatus/StdOut/succeeded",
        "ComponentStatus/StdErr/succeeded",
    ]
    assert result.value[0].message == "hi there"
    with pytest.raises(ResourceExistsError):
        c.virtual_machines.begin_run_command(
            "rg-build", "vm-win", RunCommandInput(command_id="RunShellScript", script=["ls"])
        )


def test_run_command__linux_deprovision_never_completes_and_blocks_next(arm: SimHandle) -> None:
    c = arm.compute()
    poller = c.virtual_machines.begin_run_command(
        "rg-build",
        "vm-web",
        RunCommandInput(
            command_id="RunShellScript", script=["sudo waagent -deprovision+user -force", "shutdown -h now"]
        ),
    )
    # The guest goes down (stopped, still allocated) while the command stays InProgress forever.
    wait_until(lambda: power(arm, "vm-web") == "PowerState/stopped")
    assert poller.status() == "InProgress" and not poller.done()
    state = arm.sim.state()
    vm = next(v for v in state["virtualMachines"] if v["id"].endswith("/vm-web"))
    assert vm["guestState"] == "deprovisioned" and vm["runCommandInProgress"]
    with pytest.raises(ResourceExistsError) as e:
        c.virtual_machines.begin_run_command(
            "rg-build", "vm-web", RunCommandInput(command_id="RunShellScript", script=["echo"])
        )
    assert e.value.error.code == "Conflict"
    assert "Run command extension execution is in progress" in str(e.value)


def test_run_command__windows_sysprep_shutdown_stops_vm_and_ends_without_exit_code(arm: SimHandle) -> None:
    c = arm.compute()
    poller = c.virtual_machines.begin_run_command(
        "rg-build",
        "vm-win",
        RunCommandInput(
            command_id="RunPowerShellScript",
            script=[
                r"& $env:SystemRoot\System32\Sysprep\Sysprep.exe /oobe /generalize /mode:vm /quiet /shutdown"
            ],
        ),
    )
    with pytest.raises(HttpResponseError) as e:
        poller.result()
    assert poller.status() in ("Canceled", "Failed")
    assert e.value.error.code in ("OperationCanceled", "VMAgentStatusCommunicationError")
    assert power(arm, "vm-win") == "PowerState/stopped"
    # Platform not generalized yet: that is what the generalize call is for.
    vm = c.virtual_machines.get("rg-build", "vm-win", expand="instanceView")
    assert "OSState/generalized" not in [s.code for s in vm.instance_view.statuses]


def test_run_command__stopped_vm_refused(arm: SimHandle) -> None:
    with pytest.raises(ResourceExistsError) as e:
        arm.compute().virtual_machines.begin_run_command(
            "rg-build", "vm-web-4", RunCommandInput(command_id="RunShellScript", script=["echo"])
        )
    assert "requires the VM to be running" in str(e.value)


def _clone_disk(arm: SimHandle, source_disk: str, name: str) -> str:
    c = arm.compute()
    snap = c.snapshots.begin_create_or_update(
        "rg-build",
        f"{name}-snap",
        Snapshot(
            location="westeurope",
            creation_data=CreationData(create_option="Copy", source_resource_id=disk_id(source_disk)),
        ),
    ).result()
    disk = c.disks.begin_create_or_update(
        "rg-build",
        name,
        DiskModel(
            location="westeurope",
            creation_data=CreationData(create_option="Copy", source_resource_id=snap.id),
        ),
    ).result()
    assert disk.os_type in ("Linux", None)
    return disk.id


def _nic(arm: SimHandle, name: str) -> str:
    # Virtual Machine Contributor may read the network (with its subnets), not a subnet on its own.
    subnet = arm.network().virtual_networks.get("rg-image-build", "vnet-build").subnets[0]
    body = {
        "location": "westeurope",
        "properties": {"ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": subnet.id}}}]},
    }
    return str(
        arm.network().network_interfaces.begin_create_or_update("rg-image-build", name, body).result().id
    )


def test_put_vm__from_attached_os_disk_then_delete(arm: SimHandle) -> None:
    c = arm.compute()
    os_id = _clone_disk(arm, "vm-web_OsDisk", "clone-os")
    data_id = _clone_disk(arm, "vm-web_data0", "clone-data")
    body = VirtualMachine(
        location="westeurope",
        hardware_profile=HardwareProfile(vm_size="Standard_D2s_v5"),
        storage_profile=StorageProfile(
            os_disk=OSDisk(
                os_type="Linux", create_option="Attach", managed_disk=ManagedDiskParameters(id=os_id)
            ),
            data_disks=[
                DataDisk(lun=0, create_option="Attach", managed_disk=ManagedDiskParameters(id=data_id))
            ],
        ),
        network_profile=NetworkProfile(
            network_interfaces=[NetworkInterfaceReference(id=_nic(arm, "clone-nic"))]
        ),
        security_profile=SecurityProfile(security_type="Standard"),
    )
    vm = c.virtual_machines.begin_create_or_update("rg-build", "vm-clone", body).result()
    assert vm.provisioning_state == "Succeeded"
    assert power(arm, "vm-clone") == "PowerState/running"
    assert c.disks.get("rg-build", "clone-os").managed_by == vm_id("vm-clone")
    # A disk attached elsewhere cannot be attached again.
    with pytest.raises(ResourceExistsError):
        c.virtual_machines.begin_create_or_update("rg-build", "vm-clone-2", body)
    with pytest.raises(ResourceExistsError) as e:
        c.disks.begin_delete("rg-build", "clone-os")
    assert "is attached to VM" in str(e.value)
    c.virtual_machines.begin_delete("rg-build", "vm-clone").result()
    with pytest.raises(ResourceNotFoundError):
        c.virtual_machines.get("rg-build", "vm-clone")
    assert c.disks.get("rg-build", "clone-os").managed_by is None
    c.disks.begin_delete("rg-build", "clone-os").result()


def test_put_vm__from_image_is_refused_with_advice(arm: SimHandle) -> None:
    body = VirtualMachine(
        location="westeurope",
        hardware_profile=HardwareProfile(vm_size="Standard_D2s_v5"),
        storage_profile=StorageProfile(os_disk=OSDisk(create_option="FromImage")),
    )
    with pytest.raises(HttpResponseError) as e:
        arm.compute().virtual_machines.begin_create_or_update("rg-build", "vm-new", body)
    assert e.value.status_code == 400 and e.value.error.code == "InvalidParameter"


def test_subscription_ids_are_checked(arm: SimHandle) -> None:
    from azure.mgmt.compute import ComputeManagementClient

    from tests.azsim.arm_fakes import PIPELINE_OID, StaticCredential

    other = ComputeManagementClient(
        StaticCredential(PIPELINE_OID),
        "00000000-0000-0000-0000-000000000000",
        base_url=arm.url,
        connection_verify=str(arm.certs.ca_cert),
    )
    with pytest.raises(ResourceNotFoundError) as e:
        other.virtual_machines.get("rg-build", "vm-web")
    assert e.value.error.code == "SubscriptionNotFound"
    assert SUB not in str(e.value)
