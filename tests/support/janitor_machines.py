"""What a terminated clone capture or boot test leaves in the build group, made by the test as an operator
through the real SDKs: a clone VM with its NIC and disk copy, a boot-test VM with its NIC (and its
untagged OS disk), a NIC and a disk left alone (a refused VM create). Each is tagged as the app tags them
(``shared.ids.ownership_tags``)."""

from __future__ import annotations

from typing import Any

from shared.ids import ownership_tags

BUILD = "rg-image-build"
VNETS = f"resourceGroups/{BUILD}/providers/Microsoft.Network/virtualNetworks"
CLONE_SUBNET = "vnet-build/subnets/snet-clones"
TEST_SUBNET = "vnet-boottest-westeurope/subnets/snet-boot-tests"


def _source_disk(compute: Any) -> str:
    disks = {str(d.name): str(d.id) for d in compute.disks.list_by_resource_group("rg-build")}
    return disks.get("vm-plain_OsDisk") or disks.get("vm-web_OsDisk") or sorted(disks.values())[0]


def make_disk(compute: Any, name: str, tags: dict[str, str] | None) -> str:
    """A managed disk in the build group, copied from a snapshot of a disk of rg-build."""
    copy = {"createOption": "Copy", "sourceResourceId": _source_disk(compute)}
    snap = compute.snapshots.begin_create_or_update(
        "rg-build", f"{name}-src", {"location": "westeurope", "properties": {"creationData": copy}}
    ).result()
    body: dict[str, Any] = {
        "location": "westeurope",
        "sku": {"name": "Premium_LRS"},
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": snap.id}},
    }
    if tags:
        body["tags"] = tags
    disk = compute.disks.begin_create_or_update(BUILD, name, body).result()
    compute.snapshots.begin_delete("rg-build", f"{name}-src").result()
    return str(disk.id)


def make_nic(network: Any, sub: str, name: str, subnet: str, tags: dict[str, str]) -> str:
    subnet_id = f"/subscriptions/{sub}/{VNETS}/{subnet}"
    body = {
        "location": "westeurope",
        "tags": tags,
        "properties": {
            "ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": subnet_id}}}]
        },
    }
    return str(network.network_interfaces.begin_create_or_update(BUILD, name, body).result().id)


def make_vm(compute: Any, name: str, os_disk: str, nic: str, tags: dict[str, str]) -> str:
    """A VM of an attached disk and a NIC, both ``deleteOption: Delete`` (as clones and boot tests)."""
    body = {
        "location": "westeurope",
        "tags": tags,
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
            "securityProfile": {"securityType": "Standard"},
            "storageProfile": {
                "osDisk": {
                    "osType": "Linux",
                    "createOption": "Attach",
                    "deleteOption": "Delete",
                    "managedDisk": {"id": os_disk},
                }
            },
            "networkProfile": {
                "networkInterfaces": [{"id": nic, "properties": {"primary": True, "deleteOption": "Delete"}}]
            },
        },
    }
    return str(compute.virtual_machines.begin_create_or_update(BUILD, name, body).result().id)


def orphans(compute: Any, network: Any, sub: str, run_id: str, prefix: str) -> dict[str, str]:
    """A clone (VM, NIC, disk), a boot test (VM, NIC, untagged OS disk), a lone NIC and a lone disk."""
    tags = ownership_tags(run_id)
    out: dict[str, str] = {}
    out["cloneDisk"] = make_disk(compute, f"{prefix}-clone-os", {**tags, "image-pipeline:disk": "os"})
    out["cloneNic"] = make_nic(network, sub, f"{prefix}-clone-nic", CLONE_SUBNET, tags)
    out["cloneVm"] = make_vm(compute, f"{prefix}-clone", out["cloneDisk"], out["cloneNic"], tags)
    test_os = make_disk(compute, f"{prefix}-bt_OsDisk", None)
    out["testNic"] = make_nic(network, sub, f"{prefix}-bt-nic", TEST_SUBNET, tags)
    out["testVm"] = make_vm(compute, f"{prefix}-bt", test_os, out["testNic"], tags)
    out["testOsDisk"] = test_os
    out["loneNic"] = make_nic(network, sub, f"{prefix}-lone-nic", CLONE_SUBNET, tags)
    out["loneDisk"] = make_disk(compute, f"{prefix}-lone-disk", tags)
    return out


def existing(compute: Any, network: Any) -> set[str]:
    """The ids (lower case) of every VM, NIC and disk in the build group."""
    ids = {str(x.id).lower() for x in compute.virtual_machines.list(BUILD)}
    ids |= {str(x.id).lower() for x in network.network_interfaces.list(BUILD)}
    return ids | {str(x.id).lower() for x in compute.disks.list_by_resource_group(BUILD)}
