"""The boot test's cleanup and the promotion (``activities.boot_tests`` makes the test VMs).

``delete_boot_test`` deletes a region's test VM (its NIC and disks go with it, by ``deleteOption``) or,
when no VM was made, the NIC; ``get_boot_test_leftovers`` lists what of the test's resources is still
there; ``set_version_latest`` brings the version's ``excludeFromLatest`` to the value asked.
"""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.compute import models as cm

from activities import lro
from activities._common import activity, as_dict, azure_call, get_or_none, props
from activities.image_versions import version_parts
from shared import clients
from shared.activity_types import DELETE_BOOT_TEST, GET_BOOT_TEST_LEFTOVERS, SET_VERSION_LATEST
from shared.contracts import Done
from shared.verify_spec import BootTestCleanup, BootTestLeftovers, VersionLatestInput


def _cleanup_ids(inp: BootTestCleanup) -> tuple[str, str, str, str]:
    vm = inp.vm_id.strip("/").split("/")
    nic = inp.nic_id.strip("/").split("/")
    return vm[1], vm[3], vm[-1], nic[-1]


@activity(DELETE_BOOT_TEST)
def delete_boot_test(inp: BootTestCleanup) -> BootTestLeftovers:
    """Start deleting the test VM (NIC and disks follow by deleteOption), or the NIC when no VM was made."""
    sub, rg, vm_name, nic_name = _cleanup_ids(inp)
    compute = clients.compute(sub)
    vm = get_or_none(
        lambda: compute.virtual_machines.get(rg, vm_name), step="read the test VM", resource=inp.vm_id
    )
    with azure_call("delete the test VM", inp.vm_id):
        if vm is not None:
            if str(props(as_dict(vm)).get("provisioningState") or "").lower() != "deleting":
                lro.start(compute.virtual_machines.begin_delete, rg, vm_name)
        else:
            try:
                lro.start(clients.network(sub).network_interfaces.begin_delete, rg, nic_name)
            except ResourceNotFoundError:
                pass
    return _leftovers(inp)


@activity(GET_BOOT_TEST_LEFTOVERS)
def get_boot_test_leftovers(inp: BootTestCleanup) -> BootTestLeftovers:
    """The run's test VM, NIC and disks in the test group that still exist (tagged with the run id)."""
    return _leftovers(inp)


def _leftovers(inp: BootTestCleanup) -> BootTestLeftovers:
    sub, rg, vm_name, nic_name = _cleanup_ids(inp)
    left = []
    with azure_call("look for the test VM's resources", inp.vm_id):
        compute = clients.compute(sub)
        if (
            get_or_none(lambda: compute.virtual_machines.get(rg, vm_name), step="read the test VM")
            is not None
        ):
            left.append(inp.vm_id)
        nic = get_or_none(
            lambda: clients.network(sub).network_interfaces.get(rg, nic_name), step="read the test NIC"
        )
        if nic is not None:
            left.append(inp.nic_id)
        for disk in compute.disks.list_by_resource_group(rg):
            name = str(disk.name or "")
            if name.startswith(vm_name):  # the test VM's disks (its name is the run's and region's)
                left.append(str(disk.id))
    return BootTestLeftovers(region=inp.region, left=left)


@activity(SET_VERSION_LATEST)
def set_version_latest(inp: VersionLatestInput) -> Done:
    """Bring the version's ``publishingProfile.excludeFromLatest`` to the value asked (promotion).

    Idempotent, and called until it answers ``changed=False``: the value is as asked and the version is
    no longer Updating. A version still Creating or Updating is only read (Azure refuses a PATCH then).
    """
    sub, rg, gallery, definition, version = version_parts(inp.version_id, "set_version_latest")
    versions = clients.compute(sub).gallery_image_versions
    with azure_call("read the image version", inp.version_id):
        current = props(as_dict(versions.get(rg, gallery, definition, version)))
    if str(current.get("provisioningState") or "").lower() in ("creating", "updating"):
        return Done(resource_id=inp.version_id, changed=True)
    if bool((current.get("publishingProfile") or {}).get("excludeFromLatest")) == inp.exclude_from_latest:
        return Done(resource_id=inp.version_id, changed=False)
    patch = cm.GalleryImageVersionUpdate(
        {
            "properties": {
                "publishingProfile": {"excludeFromLatest": inp.exclude_from_latest},
                # The spec requires storageProfile in the body: the version's own sources, unchanged.
                "storageProfile": _sources(current.get("storageProfile") or {}),
            }
        }
    )
    with azure_call("promote the image version", inp.version_id):
        accepted = lro.start(versions.begin_update, rg, gallery, definition, version, patch)
    return Done(resource_id=inp.version_id, changed=True, operation_url=accepted.operation_url)


def _sources(storage: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    os_source = (storage.get("osDiskImage") or {}).get("source")
    if os_source:
        out["osDiskImage"] = {"source": os_source}
    data = [
        {"lun": d.get("lun"), "source": d["source"]}
        for d in storage.get("dataDiskImages") or []
        if isinstance(d, dict) and d.get("source")
    ]
    if data:
        out["dataDiskImages"] = data
    if storage.get("source"):
        out["source"] = storage["source"]
    return out
