"""A VM captured twice: each capture run makes its own version, snapshots and exports.

The golden-VM routine: capture the VM (it ends generalized), recreate a VM of the same name, capture
again with ``version: auto``. Both captures have the same capture id (the instance id is per VM) but
different run ids, and everything a run creates is named and tagged from its run id, so the second run
must make 1.0.1 from its own snapshots, not take 1.0.0 (made by the first run) for its own work.

A generalized VM cannot be started again, so between the runs the test deletes the VM and creates a
new VM with the same name attached to the kept OS and data disks (azsim's VM PUT with ``createOption:
Attach``, through the real SDK). In Azure the new VM would usually come from the image; what matters
here is only that the same VM resource id is captured again. ``deleteSnapshots: false`` keeps the first
run's snapshots, so a second run that reused names would find (and wrongly reuse) them.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.mgmt.compute.models import (
    DataDisk,
    HardwareProfile,
    ManagedDiskParameters,
    NetworkInterfaceReference,
    NetworkProfile,
    OSDisk,
    SecurityProfile,
    StorageProfile,
    VirtualMachine,
)

from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

VM = "vm-web"


def _recreate_vm(stack: Stack, name: str) -> None:
    """Delete the (generalized) VM and create a new, running VM of the same name on its disks."""
    compute = stack.compute()
    old = compute.virtual_machines.get("rg-build", name)
    os_disk = old.storage_profile.os_disk
    data = [
        DataDisk(lun=d.lun, create_option="Attach", managed_disk=ManagedDiskParameters(id=d.managed_disk.id))
        for d in old.storage_profile.data_disks or []
    ]
    compute.virtual_machines.begin_delete("rg-build", name).result()
    body = VirtualMachine(  # type: ignore[call-overload]  # flattened properties: accepted at runtime, not in the overloads
        location=old.location,
        hardware_profile=HardwareProfile(vm_size=old.hardware_profile.vm_size),
        storage_profile=StorageProfile(
            os_disk=OSDisk(
                os_type=os_disk.os_type,
                create_option="Attach",
                managed_disk=ManagedDiskParameters(id=os_disk.managed_disk.id),
            ),
            data_disks=data,
        ),
        # The old VM's NIC (detached by the delete) and its security type: Azure requires both.
        network_profile=NetworkProfile(
            network_interfaces=[
                NetworkInterfaceReference(id=n.id) for n in old.network_profile.network_interfaces
            ]
        ),
        security_profile=old.security_profile or SecurityProfile(security_type="Standard"),
    )
    compute.virtual_machines.begin_create_or_update("rg-build", name, body).result()
    deadline = time.monotonic() + 60
    # A VM created from attached disks takes Run Commands once its guest agent reports Ready.
    while not (stack.vm_state(name)["powerState"] == "running" and stack.vm_state(name)["agentReady"]):
        assert time.monotonic() < deadline, f"recreated {name} never became ready: {stack.vm_state(name)}"
        time.sleep(0.2)
    assert stack.vm_state(name)["generalized"] is False


def _snapshots(stack: Stack, capture_id: str) -> dict[str, dict[str, str]]:
    return {
        s.name: dict(s.tags or {})
        for s in stack.compute().snapshots.list_by_resource_group("rg-build")
        if (s.tags or {}).get("image-pipeline:capture-id") == capture_id
    }


def _blobs(stack: Stack, prefix: str) -> dict[str, Any]:
    container = stack.cloud.blob_service("stexports").get_container_client("vhds")
    return {b.name: b.etag for b in container.list_blobs(name_starts_with=prefix)}


def test_the_same_vm_captured_twice_makes_two_versions_from_its_own_snapshots(stack: Stack) -> None:
    body = stack.request(VM, version="auto", deleteSnapshots=False)

    first = stack.run(body)
    assert first["runtimeStatus"] == "Completed", first.get("error")
    cid, run1 = first["id"], first["runId"]
    assert first["result"]["imageVersion"] == "1.0.0"
    assert run1.startswith(f"{cid}-") and first["result"]["runId"] == run1
    first_blobs = _blobs(stack, f"{run1}/")
    assert sorted(first_blobs) == [f"{run1}/{VM}_OsDisk.vhd", f"{run1}/{VM}_data0.vhd"]

    _recreate_vm(stack, VM)
    second = stack.run(body)
    assert second["runtimeStatus"] == "Completed", second.get("error")
    run2 = second["runId"]
    assert second["id"] == cid  # one capture id per VM (409s, dedupe) ...
    assert run2 != run1 and run2.startswith(f"{cid}-")  # ... but a new run
    assert second["result"]["imageVersion"] == "1.0.1"
    assert {r["state"] for r in second["result"]["regions"]} == {"Completed"}

    # Two versions, each tagged with the run that made it and built from that run's snapshots.
    versions = stack.compute().gallery_image_versions
    made = {v.name: v for v in versions.list_by_gallery_image("rg-images", "galContoso", f"{VM}-def")}
    assert sorted(made) == ["1.0.0", "1.0.1"]
    for name, run in (("1.0.0", run1), ("1.0.1", run2)):
        v = versions.get("rg-images", "galContoso", f"{VM}-def", name)
        assert v.tags["image-pipeline:capture-id"] == cid and v.tags["image-pipeline:run-id"] == run
        assert v.storage_profile.os_disk_image.source.id.endswith(f"/snapshots/{run}-os")
        assert v.storage_profile.data_disk_images[0].source.id.endswith(f"/snapshots/{run}-lun0")

    # Four snapshots kept (deleteSnapshots false), two per run, none reused.
    snaps = _snapshots(stack, cid)
    assert sorted(snaps) == sorted([f"{run1}-os", f"{run1}-lun0", f"{run2}-os", f"{run2}-lun0"])
    assert all(tags["image-pipeline:run-id"] == name.rsplit("-", 1)[0] for name, tags in snaps.items())
    kept = sorted(i.rsplit("/", 1)[1] for i in second["result"]["snapshotsKept"])
    assert kept == sorted([f"{run2}-os", f"{run2}-lun0"])

    # Exports side by side: the second run wrote its own blobs and left the first run's untouched.
    assert _blobs(stack, f"{run1}/") == first_blobs
    second_blobs = _blobs(stack, f"{run2}/")
    assert sorted(second_blobs) == [f"{run2}/{VM}_OsDisk.vhd", f"{run2}/{VM}_data0.vhd"]
    assert all(f"/vhds/{run2}/" in u for u in second["result"]["exportedBlobs"])
    assert stack.active_access() == []

    # The status of the capture id shows the latest run only (not the first run's sub-orchestrations).
    code, again = stack.status(cid)
    assert code == 200 and again["runId"] == run2 and again["imageVersionId"].endswith("/versions/1.0.1")
