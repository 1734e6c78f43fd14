"""Activities of a capture by clone: check the clone settings, copy the disks, make the NIC and the VM, delete them.

Every resource is named from the run id (``shared.clones``) and tagged with it, so each activity is
idempotent: it finds what an earlier execution of the same run made and refuses a resource of that name
another run (or someone else) made. The source VM is only read here.
"""

from __future__ import annotations

import re
from typing import Any

from azure.mgmt.compute import models as cm
from azure.mgmt.network import models as nm

from activities import lro
from activities._common import activity, as_dict, azure_call, get_or_none, parse_id, props
from shared import clients
from shared.activity_types import (
    CHECK_CLONE_TARGET,
    CREATE_CLONE_VM,
    DELETE_CLONE,
    ENSURE_CLONE_DISK,
    ENSURE_CLONE_NIC,
    GET_CLONE_VM,
)
from shared.clones import (
    CloneDiskInput,
    CloneDiskResult,
    CloneLeft,
    CloneNicInput,
    CloneNicResult,
    CloneRef,
    CloneTarget,
    CloneTargetInput,
    CloneVmInput,
    CloneVmState,
    build_group_id,
    clone_disk_name,
    clone_nic_name,
    clone_vm_name,
)
from shared.contracts import VmRef
from shared.errors import AzureOperationError, CaptureError
from shared.ids import TAG_RUN_ID, made_by_run, ownership_tags
from shared.settings import SETTING_BUILD_GROUP, SETTING_BUILD_SUBNET, SETTING_CLONE_VM_SIZE, get_settings

_SUBNET = re.compile(
    r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Network/virtualNetworks/([^/]+)"
    r"/subnets/([^/]+)$",
    re.IGNORECASE,
)
SIZE_ADVICE = (
    f"Set the app setting {SETTING_CLONE_VM_SIZE} to a VM size that is available in the region and within "
    "the subscription's quota (with as many data-disk slots as the source has data disks, and Trusted Launch "
    "support for a Trusted Launch source), or ask for a quota increase; then run the capture again. The source "
    "VM was not changed."
)


def _group(group_id: str) -> tuple[str, str]:
    parts = group_id.strip("/").split("/")
    return parts[1], parts[3]


def _norm(location: str) -> str:
    return location.replace(" ", "").lower()


def _subnet_problems(subnet_id: str, group_id: str, location: str) -> list[str]:
    """Why the build subnet cannot take the clone's NIC: not a subnet id, missing, or in another region."""
    m = _SUBNET.match(subnet_id)
    if not m:
        return [
            f"app setting {SETTING_BUILD_SUBNET} is {subnet_id[:300]!r}, not a subnet id: use "
            "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Network/virtualNetworks/<vnet>"
            "/subnets/<subnet>"
        ]
    sub, rg, vnet_name, subnet_name = m.groups()
    network = clients.network(sub)
    try:
        vnet = get_or_none(
            lambda: as_dict(network.virtual_networks.get(rg, vnet_name)),
            step="read the build subnet",
            resource=subnet_id,
        )
    except CaptureError as exc:
        in_build_group = f"/subscriptions/{sub}/resourcegroups/{rg}".lower() == group_id.lower()
        if exc.info.code != "AuthorizationFailed" or not in_build_group:
            raise
        return []  # the permission check (next in preflight) names the missing read with the group's others
    subnets = {str(x.get("name") or "").lower() for x in props(vnet or {}).get("subnets") or []}
    if vnet is None or subnet_name.lower() not in subnets:
        return [
            f"the build subnet {subnet_id} (app setting {SETTING_BUILD_SUBNET}) does not exist: create it, or "
            "point the setting at an existing subnet"
        ]
    if _norm(str(vnet.get("location") or "")) != _norm(location):
        return [
            f"the build subnet {subnet_id} (app setting {SETTING_BUILD_SUBNET}) is in {vnet.get('location')}, but "
            f"the source VM is in {location}: a clone's disks and NIC must be in the VM's region; use a subnet "
            f"of a virtual network in {location}"
        ]
    return []


def _uefi_settings(vm_id: str) -> dict[str, bool] | None:
    """The source VM's securityProfile.uefiSettings (secure boot, vTPM), copied to a Trusted Launch clone."""
    rid = parse_id(vm_id, field="sourceVmId", step="check_clone_target")
    with azure_call("read the source VM's security profile", vm_id):
        vm = as_dict(clients.compute(rid.subscription_id).virtual_machines.get(rid.resource_group, rid.name))
    uefi = (props(vm).get("securityProfile") or {}).get("uefiSettings")
    return {k: bool(v) for k, v in uefi.items()} if isinstance(uefi, dict) else None


@activity(CHECK_CLONE_TARGET)
def check_clone_target(inp: CloneTargetInput) -> CloneTarget:
    """The clone settings, read once: the build group and subnet must be set, the subnet exist in the VM's region."""
    s = get_settings()
    group, subnet = s.build_resource_group, s.build_subnet_id
    missing = [
        f"app setting {name} is empty: {what} (captureMode clone needs it)"
        for name, value, what in (
            (SETTING_BUILD_GROUP, group, "set it to the resource group the clone is built in"),
            (SETTING_BUILD_SUBNET, subnet, "set it to the resource id of the clone's subnet"),
        )
        if not value
    ]
    if missing or not group or not subnet:
        return CloneTarget(problems=missing)
    group_id = build_group_id(group, inp.source_vm_id)
    problems = _subnet_problems(subnet, group_id, inp.location)
    return CloneTarget(
        build_group_id=group_id,
        subnet_id=subnet,
        vm_size=s.clone_vm_size or inp.vm_size,
        uefi_settings=None if problems else _uefi_settings(inp.source_vm_id),
        problems=problems,
    )


def _owned(resource: dict[str, Any] | None, run_id: str, what: str, rid: str) -> dict[str, Any] | None:
    """``resource`` if it is this run's (None if missing); another run's of that name is refused."""
    if resource is None:
        return None
    owner = made_by_run(resource.get("tags"))
    if owner != run_id:
        raise AzureOperationError(
            f"the {what} {rid} already exists and was not made by this capture run (tag {TAG_RUN_ID}={owner!r})",
            step=f"create the clone's {what}",
            resource=rid,
            code="CloneNameTaken",
            advice="Delete it (it is named after this run, so it is a leftover) and run the capture again.",
        )
    return resource


@activity(ENSURE_CLONE_DISK)
def ensure_clone_disk(inp: CloneDiskInput) -> CloneDiskResult:
    """Create the copy of one disk from its snapshot (createOption Copy) if missing; report its state. Idempotent."""
    sub, rg = _group(inp.build_group_id)
    name = clone_disk_name(inp.run_id, inp.disk.key)
    disk_id = f"{inp.build_group_id}/providers/Microsoft.Compute/disks/{name}"
    disks = clients.compute(sub).disks
    existing = _owned(
        get_or_none(lambda: as_dict(disks.get(rg, name)), step="read the clone's disk", resource=disk_id),
        inp.run_id,
        "disk",
        disk_id,
    )
    if existing is None:
        body = {
            "location": inp.location,
            "sku": {"name": inp.disk.sku or "Premium_LRS"},
            "tags": {**ownership_tags(inp.run_id, inp.tags), "image-pipeline:disk": inp.disk.key},
            "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": inp.snapshot_id}},
        }
        with azure_call("copy the disk for the clone", disk_id):
            lro.start(disks.begin_create_or_update, rg, name, cm.Disk(body))
        existing = get_or_none(
            lambda: as_dict(disks.get(rg, name)), step="read the clone's disk", resource=disk_id
        )
    state = str(props(existing or {}).get("provisioningState") or "Creating")
    if state.lower() == "failed":
        raise AzureOperationError(
            f"the copy {name} of disk {inp.disk.name} (from snapshot {inp.snapshot_id}) ended provisioningState Failed",
            step="copy the disk for the clone",
            resource=disk_id,
            code="CloneDiskFailed",
            advice="Check the disk's activity log; the capture deletes it. Run the capture again.",
        )
    return CloneDiskResult(disk_id=disk_id, disk_key=inp.disk.key, provisioning_state=state)


@activity(ENSURE_CLONE_NIC)
def ensure_clone_nic(inp: CloneNicInput) -> CloneNicResult:
    """The clone's network interface on the build subnet (one private IP, no public IP). Idempotent."""
    sub, rg = _group(inp.build_group_id)
    name = clone_nic_name(inp.run_id)
    nic_id = f"{inp.build_group_id}/providers/Microsoft.Network/networkInterfaces/{name}"
    nics = clients.network(sub).network_interfaces
    found = get_or_none(lambda: as_dict(nics.get(rg, name)), step="read the clone's NIC", resource=nic_id)
    if _owned(found, inp.run_id, "network interface", nic_id) is None:
        body = {
            "location": inp.location,
            "tags": ownership_tags(inp.run_id, inp.tags),
            "properties": {
                "ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": inp.subnet_id}}}]
            },
        }
        with azure_call("create the clone's network interface", nic_id):
            nics.begin_create_or_update(rg, name, nm.NetworkInterface(body)).result()
    return CloneNicResult(nic_id=nic_id)


def _vm_body(inp: CloneVmInput) -> dict[str, Any]:
    src = inp.source
    data = [
        {
            "lun": d.lun,
            "createOption": "Attach",
            "deleteOption": "Delete",
            "managedDisk": {"id": inp.disk_ids[d.key]},
        }
        for d in src.data_disks
    ]
    # Always explicit: from API 2025-11-01 a VM without securityProfile may become Trusted Launch.
    security: dict[str, Any] = {"securityType": src.security_type}
    if src.security_type == "TrustedLaunch":
        security["uefiSettings"] = inp.uefi_settings or {"secureBootEnabled": True, "vTpmEnabled": True}
    return {
        "location": src.location,
        "tags": ownership_tags(inp.run_id, inp.tags),
        "properties": {
            "hardwareProfile": {"vmSize": inp.vm_size},
            "storageProfile": {
                "osDisk": {
                    "osType": src.os_type,
                    "createOption": "Attach",
                    "deleteOption": "Delete",
                    "managedDisk": {"id": inp.disk_ids["os"]},
                },
                "dataDisks": data,
            },
            "networkProfile": {
                "networkInterfaces": [
                    {"id": inp.nic_id, "properties": {"primary": True, "deleteOption": "Delete"}}
                ]
            },
            "securityProfile": security,
        },
    }


def _vm_state(vm: dict[str, Any], vm_id: str) -> CloneVmState:
    view = props(vm).get("instanceView") or {}
    power = next(
        (
            str(s.get("code")).split("/", 1)[1].lower()
            for s in view.get("statuses") or []
            if str(s.get("code") or "").startswith("PowerState/")
        ),
        "unknown",
    )
    agent = (view.get("vmAgent") or {}).get("statuses") or [{}]
    ready = str(agent[0].get("displayStatus") or "").lower() == "ready"
    said = " ".join(str(agent[0].get(k) or "") for k in ("displayStatus", "message")).strip() or None
    return CloneVmState(
        vm_id=vm_id,
        provisioning_state=str(props(vm).get("provisioningState") or "Unknown"),
        power_state=power,
        agent_ready=ready,
        agent_status=said,
    )


def _size_refused(exc: CaptureError, inp: CloneVmInput) -> CaptureError:
    """SkuNotAvailable and the quota's OperationNotAllowed are terminal: say which setting to change."""
    code = exc.info.azure_code or exc.info.code
    if exc.kind == "transient" or code not in ("SkuNotAvailable", "OperationNotAllowed"):
        return exc
    return AzureOperationError(
        f"Azure refused to create the clone VM of size {inp.vm_size}: {exc.info.message}",
        step="create the clone VM",
        resource=exc.info.resource,
        code=code,
        azure_code=code,
        advice=SIZE_ADVICE,
    )


@activity(CREATE_CLONE_VM)
def create_clone_vm(inp: CloneVmInput) -> CloneVmState:
    """Create the clone VM from the attached copies and wait for the create to end (a few minutes at most).

    A VM whose create failed (``AllocationFailed``, transient: the orchestrator calls again after a back-off)
    is created again by the same PUT. SkuNotAvailable and quota refusals are terminal, with advice.
    """
    sub, rg = _group(inp.build_group_id)
    name = clone_vm_name(inp.run_id)
    vm_id = f"{inp.build_group_id}/providers/Microsoft.Compute/virtualMachines/{name}"
    vms = clients.compute(sub).virtual_machines
    found = _owned(
        get_or_none(lambda: as_dict(vms.get(rg, name)), step="read the clone VM", resource=vm_id),
        inp.run_id,
        "VM",
        vm_id,
    )
    if found is not None and str(props(found).get("provisioningState") or "").lower() != "failed":
        return _vm_state(as_dict(vms.get(rg, name, expand="instanceView")), vm_id)
    try:
        with azure_call("create the clone VM", vm_id):
            vms.begin_create_or_update(rg, name, cm.VirtualMachine(_vm_body(inp))).result()
    except CaptureError as exc:
        raise _size_refused(exc, inp) from None
    with azure_call("read the clone VM", vm_id):
        return _vm_state(as_dict(vms.get(rg, name, expand="instanceView")), vm_id)


@activity(GET_CLONE_VM)
def get_clone_vm(inp: VmRef) -> CloneVmState:
    """The clone's provisioning and power state and whether its guest agent is Ready (one GET)."""
    rid = parse_id(inp.vm_id, field="vmId", step="get_clone_vm")
    with azure_call("read the clone VM", inp.vm_id):
        vm = as_dict(
            clients.compute(rid.subscription_id).virtual_machines.get(
                rid.resource_group, rid.name, expand="instanceView"
            )
        )
    return _vm_state(vm, inp.vm_id)


@activity(DELETE_CLONE)
def delete_clone(inp: CloneRef) -> CloneLeft:
    """Delete the clone: the VM (its NIC and disks go with it, deleteOption Delete), then whatever is left.

    Idempotent, and called until nothing is left: a VM being deleted is only watched; once it is gone, a
    NIC or disk still there (a VM whose create was refused never held them) is deleted on its own.
    """
    rid = parse_id(inp.vm_id, field="vmId", step="delete_clone")
    compute = clients.compute(rid.subscription_id)
    vm = get_or_none(
        lambda: as_dict(compute.virtual_machines.get(rid.resource_group, rid.name)),
        step="read the clone VM",
        resource=inp.vm_id,
    )
    if vm is not None:
        url = inp.vm_delete_url
        with azure_call("read the clone VM's delete operation", inp.vm_id):
            outcome = lro.read_operation(rid.subscription_id, url)
        failed = outcome is not None and lro.failed(outcome)
        if url is None or failed or str(props(vm).get("provisioningState") or "").lower() != "deleting":
            with azure_call("delete the clone VM", inp.vm_id):
                url = lro.start(
                    compute.virtual_machines.begin_delete, rid.resource_group, rid.name
                ).operation_url
        return CloneLeft(left=[inp.vm_id], vm_delete_url=url, failure=outcome if failed else None)
    left: list[str] = []
    nic = parse_id(inp.nic_id, field="nicId", step="delete_clone")
    nics = clients.network(nic.subscription_id).network_interfaces
    found: Any = get_or_none(
        lambda: nics.get(nic.resource_group, nic.name), step="read the clone's NIC", resource=inp.nic_id
    )
    if found is not None:
        with azure_call("delete the clone's network interface", inp.nic_id):
            lro.start(nics.begin_delete, nic.resource_group, nic.name)
        left.append(inp.nic_id)
    for disk_id in inp.disk_ids:
        d = parse_id(disk_id, field="diskId", step="delete_clone")
        disks = clients.compute(d.subscription_id).disks
        copy: Any = get_or_none(
            lambda disks=disks, d=d: disks.get(d.resource_group, d.name),  # type: ignore[misc]
            step="read the clone's disk",
            resource=disk_id,
        )
        if copy is not None:
            with azure_call("delete the clone's disk", disk_id):
                lro.start(disks.begin_delete, d.resource_group, d.name)
            left.append(disk_id)
    return CloneLeft(left=left)
