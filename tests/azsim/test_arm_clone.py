"""A VM cloned from another VM's disks, through the real azure-mgmt-compute and azure-mgmt-network
clients: snapshots -> disks in the build group -> NIC on the build subnet -> VM from the attached
disks; Azure's create rules and texts, deleteOption on VM delete, refused deletes of attached
resources, and injected create failures."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from azsim.core.faults import parse_faults
from azsim.world import parse_world
from tests.azsim.arm_fakes import SUB, WORLD_FILE, SimHandle, disk_id, running_sim, vm_id

BUILD = "rg-image-build"
VM_ONLY_OID = "0b7e4c2a-5d61-4f3e-8c9a-1e2d3f4a5b6c"
SUBNET = (
    f"/subscriptions/{SUB}/resourceGroups/{BUILD}/providers/Microsoft.Network/virtualNetworks/vnet-build"
    "/subnets/snet-clones"
)
FAULTS = parse_faults(
    {
        "rules": [
            {
                "match": {"method": "PUT", "path": "/virtualMachines/vm-alloc$"},
                "effect": {"type": "vmCreateFailure", "reason": "allocationFailed"},
                "count": 2,
            },
            {
                "match": {"method": "PUT", "path": "/virtualMachines/vm-sku$"},
                "effect": {"type": "vmCreateFailure", "reason": "skuNotAvailable"},
            },
            {
                "match": {"method": "PUT", "path": "/virtualMachines/vm-quota$"},
                "effect": {"type": "vmCreateFailure", "reason": "quotaExceeded", "coresLimit": 10},
            },
        ]
    }
)


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    with running_sim(tmp_path_factory.mktemp("arm-clone"), time_scale=0.0005, faults=FAULTS) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _fresh(arm: SimHandle) -> None:
    arm.sim.reset()


def copy_disk(arm: SimHandle, source: str, name: str) -> str:
    """Snapshot a disk of rg-build and make a managed disk of the snapshot in the build group."""
    c = arm.compute()
    copy = {"createOption": "Copy", "sourceResourceId": disk_id(source)}
    snap = c.snapshots.begin_create_or_update(
        "rg-build", f"{name}-snap", {"location": "westeurope", "properties": {"creationData": copy}}
    ).result()
    body = {
        "location": "westeurope",
        "sku": {"name": "Premium_LRS"},
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": snap.id}},
    }
    return str(c.disks.begin_create_or_update(BUILD, name, body).result().id)


def make_nic(arm: SimHandle, name: str) -> str:
    body = {
        "location": "westeurope",
        "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": SUBNET}}}]},
    }
    return str(arm.network().network_interfaces.begin_create_or_update(BUILD, name, body).result().id)


def vm_body(
    os_id: str,
    nic_id: str | None,
    *,
    os_type: str = "Linux",
    data: Sequence[str] = (),
    delete: str = "Delete",
    **props: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "location": "westeurope",
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
            "storageProfile": {
                "osDisk": {
                    "osType": os_type,
                    "createOption": "Attach",
                    "deleteOption": delete,
                    "managedDisk": {"id": os_id},
                },
                "dataDisks": [
                    {"lun": lun, "createOption": "Attach", "deleteOption": delete, "managedDisk": {"id": d}}
                    for lun, d in enumerate(data)
                ],
            },
            **props,
        },
    }
    if nic_id is not None:
        body["properties"]["networkProfile"] = {
            "networkInterfaces": [{"id": nic_id, "properties": {"primary": True, "deleteOption": delete}}]
        }
    return body


STANDARD = {"securityProfile": {"securityType": "Standard"}}
TRUSTED = {
    "securityProfile": {
        "securityType": "TrustedLaunch",
        "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
    }
}


def test_clone_of_the_trusted_launch_vm__attached_disks_and_nic_then_cascade_delete(arm: SimHandle) -> None:
    c, net = arm.compute(), arm.network()
    os_id = copy_disk(arm, "vm-win_OsDisk", "clone-os")
    data = [copy_disk(arm, "vm-win_data0", "clone-d0"), copy_disk(arm, "vm-win_data1", "clone-d1")]
    # A disk made from a Trusted Launch snapshot keeps the security type.
    assert c.disks.get(BUILD, "clone-os").security_profile.security_type == "TrustedLaunch"
    assert c.disks.get(BUILD, "clone-os").disk_state == "Unattached"
    nic = make_nic(arm, "clone-nic")
    vm = c.virtual_machines.begin_create_or_update(
        BUILD, "vm-clone", vm_body(os_id, nic, os_type="Windows", data=data, **TRUSTED)
    ).result()
    clone = vm_id("vm-clone", BUILD)
    assert vm.provisioning_state == "Succeeded" and vm.os_profile is None
    assert vm.security_profile.security_type == "TrustedLaunch"
    assert vm.storage_profile.os_disk.create_option == "Attach"
    assert vm.storage_profile.os_disk.delete_option == "Delete"
    assert [(d.lun, d.managed_disk.id, d.delete_option) for d in vm.storage_profile.data_disks] == [
        (0, data[0], "Delete"),
        (1, data[1], "Delete"),
    ]
    ref = vm.network_profile.network_interfaces[0]
    assert (ref.id, ref.primary, ref.delete_option) == (nic, True, "Delete")
    for name in ("clone-os", "clone-d0", "clone-d1"):
        d = c.disks.get(BUILD, name)
        assert (d.disk_state, d.managed_by) == ("Attached", clone)
    assert net.network_interfaces.get(BUILD, "clone-nic").virtual_machine.id == clone
    # Attached resources cannot be deleted.
    with pytest.raises(ResourceExistsError) as e:
        c.disks.begin_delete(BUILD, "clone-os")
    assert e.value.status_code == 409 and e.value.error.code == "OperationNotAllowed"
    assert e.value.error.message == f"Disk clone-os is attached to VM {clone}."
    with pytest.raises(HttpResponseError) as in_use:
        net.network_interfaces.begin_delete(BUILD, "clone-nic")
    assert in_use.value.status_code == 400 and in_use.value.error.code == "NicInUse"
    assert in_use.value.error.message == f"Network Interface {nic} is used by existing VM {clone}."
    # deleteOption Delete: the VM takes its disks and NIC with it; the source is untouched.
    c.virtual_machines.begin_delete(BUILD, "vm-clone").result()
    for name in ("clone-os", "clone-d0", "clone-d1"):
        with pytest.raises(ResourceNotFoundError):
            c.disks.get(BUILD, name)
    with pytest.raises(ResourceNotFoundError):
        net.network_interfaces.get(BUILD, "clone-nic")
    assert not [
        n for n in arm.sim.state()["networkInterfaces"] if "/resourceGroups/rg-image-build/" in n["id"]
    ]
    source = c.disks.get("rg-build", "vm-win_OsDisk")
    assert source.managed_by == vm_id("vm-win") and source.disk_state == "Attached"


def test_delete_option_detach__disks_and_nic_stay_unattached(arm: SimHandle) -> None:
    c, net = arm.compute(), arm.network()
    os_id = copy_disk(arm, "vm-web_OsDisk", "keep-os")
    data = [copy_disk(arm, "vm-web_data0", "keep-d0")]
    nic = make_nic(arm, "keep-nic")
    c.virtual_machines.begin_create_or_update(
        BUILD, "vm-keep", vm_body(os_id, nic, data=data, delete="Detach", **STANDARD)
    ).result()
    c.virtual_machines.begin_delete(BUILD, "vm-keep").result()
    for name in ("keep-os", "keep-d0"):
        d = c.disks.get(BUILD, name)
        assert (d.disk_state, d.managed_by) == ("Unattached", None)
    kept = net.network_interfaces.get(BUILD, "keep-nic")
    assert kept.virtual_machine is None and kept.ip_configurations[0].private_ip_address == "10.20.1.4"
    c.disks.begin_delete(BUILD, "keep-os").result()
    net.network_interfaces.begin_delete(BUILD, "keep-nic").result()


def test_vm_put__attach_rules_and_texts(arm: SimHandle) -> None:
    c = arm.compute()
    os_id = copy_disk(arm, "vm-web_OsDisk", "rule-os")
    nic = make_nic(arm, "rule-nic")

    def refused(body: dict[str, Any], **kw: Any) -> HttpResponseError:
        with pytest.raises(HttpResponseError) as e:
            c.virtual_machines.begin_create_or_update(BUILD, "vm-rule", body, **kw)
        return e.value

    err = refused(vm_body(os_id, None, **STANDARD))
    assert (err.status_code, err.error.code, err.error.target) == (400, "InvalidParameter", "networkProfile")
    assert err.error.message == "Required parameter 'networkProfile' is missing (null)."
    err = refused(vm_body(os_id, nic, osProfile={"computerName": "x", "adminUsername": "u"}, **STANDARD))
    assert (err.error.code, err.error.message) == (
        "InvalidParameter",
        "Parameter 'osProfile' is not allowed.",
    )
    body = vm_body(os_id, nic, **STANDARD)
    body["properties"]["storageProfile"]["imageReference"] = {"publisher": "p", "offer": "o", "sku": "s"}
    err = refused(body)
    assert (
        err.error.message
        == "Cannot attach an existing OS disk if the VM is created from a platform or user image."
    )
    err = refused(vm_body(os_id, nic, **TRUSTED))
    assert (err.status_code, err.error.code) == (400, "BadRequest")
    assert (
        err.error.message
        == "Security type of VM is not compatible with the security type of attached OS Disk."
    )
    # API 2025-11-01+: no securityProfile means Trusted Launch for a Gen2 disk, so a Standard copy fails ...
    err = refused(vm_body(os_id, nic))
    assert (
        err.error.message
        == "Security type of VM is not compatible with the security type of attached OS Disk."
    )
    # ... while an older api-version keeps Standard.
    vm = c.virtual_machines.begin_create_or_update(
        BUILD, "vm-rule", vm_body(os_id, nic), api_version="2024-07-01"
    )
    assert vm.result().provisioning_state == "Succeeded"
    # The disk and the NIC now belong to vm-rule.
    other = make_nic(arm, "rule-nic-2")
    with pytest.raises(ResourceExistsError) as e:
        c.virtual_machines.begin_create_or_update(BUILD, "vm-rule-2", vm_body(os_id, other, **STANDARD))
    assert e.value.error.code == "ConflictingUserInput"
    assert e.value.error.message == (
        f"Disk 'rule-os' cannot be attached as the disk is already owned by VM '{vm_id('vm-rule', BUILD)}'."
    )
    os_2 = copy_disk(arm, "vm-web_OsDisk", "rule-os-2")
    with pytest.raises(HttpResponseError) as in_use:
        c.virtual_machines.begin_create_or_update(BUILD, "vm-rule-2", vm_body(os_2, nic, **STANDARD))
    assert in_use.value.error.code == "NicInUse"
    with pytest.raises(ResourceNotFoundError):
        c.virtual_machines.get(BUILD, "vm-rule-2")


def test_disk_copy__security_type_cannot_be_set(arm: SimHandle) -> None:
    body = {
        "location": "westeurope",
        "properties": {
            "creationData": {"createOption": "Copy", "sourceResourceId": disk_id("vm-win_OsDisk")},
            "securityProfile": {"securityType": "TrustedLaunch"},
        },
    }
    with pytest.raises(HttpResponseError) as e:
        arm.compute().disks.begin_create_or_update(BUILD, "tl-copy", body)
    assert (e.value.status_code, e.value.error.code) == (400, "BadRequest")
    assert e.value.error.message == (
        "Security Type 'TrustedLaunch' is not supported for CreateOption 'Copy'. Supported create options are "
        "FromImage, Import, ImportSecure, UploadPreparedSecure."
    )


def test_fault__allocation_failed_twice_then_the_create_succeeds(arm: SimHandle) -> None:
    c = arm.compute()
    os_id = copy_disk(arm, "vm-web_OsDisk", "alloc-os")
    nic = make_nic(arm, "alloc-nic")
    body = vm_body(os_id, nic, delete="Detach", **STANDARD)
    for attempt in range(2):
        if attempt == 1:  # after the first failure the caller deletes the VM and creates it anew
            c.virtual_machines.begin_delete(BUILD, "vm-alloc").result()
            assert c.disks.get(BUILD, "alloc-os").managed_by is None
        with pytest.raises(HttpResponseError) as e:
            c.virtual_machines.begin_create_or_update(BUILD, "vm-alloc", body).result()
        assert e.value.error.code == "AllocationFailed"
        assert e.value.error.message.startswith(
            "Allocation failed. We do not have sufficient capacity for the requested VM size in this region."
        )
        # The failed VM stays, holding its disk, until it is deleted or PUT again.
        assert c.virtual_machines.get(BUILD, "vm-alloc").provisioning_state == "Failed"
        assert c.disks.get(BUILD, "alloc-os").managed_by == vm_id("vm-alloc", BUILD)
    # The second failure is retried in place: a PUT of the Failed VM creates it again.
    vm = c.virtual_machines.begin_create_or_update(BUILD, "vm-alloc", body).result()
    assert vm.provisioning_state == "Succeeded"
    assert c.virtual_machines.instance_view(BUILD, "vm-alloc").statuses[1].code == "PowerState/running"
    fired = {f["name"]: f["fired"] for f in arm.sim.state()["faults"]}
    assert fired["rule0"] == 2


def test_fault__sku_not_available_and_quota_are_refused_at_once(arm: SimHandle) -> None:
    c = arm.compute()
    os_id = copy_disk(arm, "vm-web_OsDisk", "sku-os")
    nic = make_nic(arm, "sku-nic")
    body = vm_body(os_id, nic, **STANDARD)
    with pytest.raises(ResourceExistsError) as e:
        c.virtual_machines.begin_create_or_update(BUILD, "vm-sku", body)
    assert (e.value.status_code, e.value.error.code) == (409, "SkuNotAvailable")
    assert e.value.error.message == (
        f"The requested size for resource '{vm_id('vm-sku', BUILD)}' is currently not available in location "
        f"'westeurope' zones '' for subscription '{SUB}'. Please try another size or deploy to a different "
        "location or zones. See https://aka.ms/azureskunotavailable for details."
    )
    with pytest.raises(ResourceExistsError) as e:
        c.virtual_machines.begin_create_or_update(BUILD, "vm-quota", body)
    assert (e.value.status_code, e.value.error.code) == (409, "OperationNotAllowed")
    message = e.value.error.message
    assert message.startswith(
        "Operation could not be completed as it results in exceeding approved Total Regional Cores quota. "
        "Additional details - Deployment Model: Resource Manager, Location: westeurope, Current Limit: 10, "
    )
    assert "Additional Required: 2," in message
    # Nothing was created and nothing is held.
    for name in ("vm-sku", "vm-quota"):
        with pytest.raises(ResourceNotFoundError):
            c.virtual_machines.get(BUILD, name)
    assert c.disks.get(BUILD, "sku-os").managed_by is None
    assert arm.network().network_interfaces.get(BUILD, "sku-nic").virtual_machine is None


def test_vm_put__needs_join_on_the_nic(tmp_path: Path) -> None:
    """A caller that may write VMs and disks but not join NICs is refused on the NIC's linked scope."""
    data = json.loads(WORLD_FILE.read_text(encoding="utf-8"))
    data["principals"].append(
        {
            "objectId": VM_ONLY_OID,
            "displayName": "vm-only",
            "clientId": VM_ONLY_OID,
            "kind": "servicePrincipal",
        }
    )
    actions = ["Microsoft.Compute/virtualMachines/*", "Microsoft.Compute/disks/*"]
    data["customRoles"].append({"name": "VM Writer", "actions": actions})
    scope = f"/subscriptions/{SUB}/resourceGroups/{BUILD}"
    data["roleAssignments"].append(
        {"principal": "vm-only", "roleDefinitionName": "VM Writer", "scope": scope}
    )
    with running_sim(tmp_path, world=parse_world(data), time_scale=0) as handle:
        os_id = copy_disk(handle, "vm-web_OsDisk", "join-os")
        nic = make_nic(handle, "join-nic")
        with pytest.raises(HttpResponseError) as e:
            handle.compute(oid=VM_ONLY_OID).virtual_machines.begin_create_or_update(
                BUILD, "vm-join", vm_body(os_id, nic, **STANDARD)
            )
        assert e.value.status_code == 403 and e.value.error.code == "LinkedAuthorizationFailed"
        assert "Microsoft.Network/networkInterfaces/join/action" in str(e.value) and nic in str(e.value)
        assert handle.network().network_interfaces.get(BUILD, "join-nic").virtual_machine is None
