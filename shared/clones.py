"""The contracts of a capture by clone (captureMode "clone") and the names of what it builds.

A clone capture copies the source VM's disks (through snapshots) into the build resource group, makes a
VM of the copies on the build subnet, deprovisions and generalizes that VM instead of the source, and
captures it. Everything it makes is named from the run id (``clone_names``) and tagged with it, so a
re-executed activity finds its own work and a later cleanup (or the janitor) can find what is left.
Pure: no Azure SDK, no clock.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import Field

from shared.contracts import DiskFacts, OperationOutcome, VmFacts
from shared.ids import ResourceId
from shared.model_base import WireModel


def clone_vm_name(run_id: str) -> str:
    """The clone VM's name: ``ipc-<11 hex of the run id>`` (15 characters: fits a Windows computer name too)."""
    return "ipc-" + hashlib.sha256(run_id.encode()).hexdigest()[:11]


def clone_disk_name(run_id: str, disk_key: str) -> str:
    """The name of the clone's copy of one disk (``<vm name>-os`` / ``<vm name>-lun<N>``)."""
    return f"{clone_vm_name(run_id)}-{disk_key}"


def clone_nic_name(run_id: str) -> str:
    return f"{clone_vm_name(run_id)}-nic"


def build_group_id(setting: str, source_vm_id: str) -> str:
    """``/subscriptions/{s}/resourceGroups/{g}`` of the build group setting (a name: the source's subscription)."""
    value = setting.strip().rstrip("/")
    if value.lower().startswith("/subscriptions/"):
        parts = value.strip("/").split("/")
        return "/" + "/".join(parts[:4])
    sub = ResourceId.parse(source_vm_id).subscription_id
    return f"/subscriptions/{sub}/resourceGroups/{value}"


class CloneTargetInput(WireModel):
    """What preflight knows of the source when it asks where the clone is built."""

    source_vm_id: str
    location: str
    vm_size: str | None = None


class CloneTarget(WireModel):
    """The clone settings, checked: where the clone is built, its subnet and size, or the problems."""

    build_group_id: str | None = None  # /subscriptions/{s}/resourceGroups/{g}
    subnet_id: str | None = None
    vm_size: str | None = None
    # The source VM's securityProfile.uefiSettings (a Trusted Launch clone gets the same).
    uefi_settings: dict[str, bool] | None = None
    problems: list[str] = Field(default_factory=list)


class CloneDiskInput(WireModel):
    run_id: str
    build_group_id: str
    location: str
    disk: DiskFacts  # the source disk (key, lun, sku)
    snapshot_id: str  # the source disk's snapshot the copy is made from
    tags: dict[str, str] = Field(default_factory=dict)


class CloneDiskResult(WireModel):
    disk_id: str
    disk_key: str
    provisioning_state: str


class CloneNicInput(WireModel):
    run_id: str
    build_group_id: str
    location: str
    subnet_id: str
    tags: dict[str, str] = Field(default_factory=dict)


class CloneNicResult(WireModel):
    nic_id: str


class CloneVmInput(WireModel):
    run_id: str
    build_group_id: str
    source: VmFacts  # OS type, security type, location, size, disks (LUNs)
    vm_size: str
    nic_id: str
    disk_ids: dict[str, str]  # disk key -> the copy's id
    # The source VM's securityProfile.uefiSettings (a Trusted Launch clone gets the same).
    uefi_settings: dict[str, bool] | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class CloneVmState(WireModel):
    vm_id: str
    provisioning_state: str
    power_state: str = "unknown"
    agent_ready: bool = False
    agent_status: str | None = None  # the agent's displayStatus and message, as Azure reports them


class CloneRef(WireModel):
    """Every resource of one run's clone (ids; any may not exist)."""

    vm_id: str
    nic_id: str
    disk_ids: list[str] = Field(default_factory=list)
    vm_delete_url: str | None = None  # the VM DELETE's operation, once started


class CloneLeft(WireModel):
    """What of the clone still exists (empty: all gone)."""

    left: list[str] = Field(default_factory=list)
    vm_delete_url: str | None = None
    failure: OperationOutcome | None = None  # a VM delete that Azure ended Failed


class CloneProgress(WireModel):
    """The clone's resources in the capture's status, while they exist (``state``: what happens to them)."""

    state: Literal["planned", "creating", "running", "generalized", "deleting", "deleted"] = "planned"
    build_group_id: str
    vm_id: str
    nic_id: str
    disk_ids: list[str] = Field(default_factory=list)
    vm_size: str | None = None
    # The snapshots of the source disks the copies are made from (deleted once the copies exist).
    source_snapshot_ids: list[str] = Field(default_factory=list)
    source_snapshots_deleted: bool = False


def planned_clone(run_id: str, target: CloneTarget) -> CloneProgress | None:
    """The clone's resources as preflight plans them (None when the settings are not usable)."""
    group = target.build_group_id
    if group is None or target.problems:
        return None
    return CloneProgress(
        build_group_id=group,
        vm_id=f"{group}/providers/Microsoft.Compute/virtualMachines/{clone_vm_name(run_id)}",
        nic_id=f"{group}/providers/Microsoft.Network/networkInterfaces/{clone_nic_name(run_id)}",
        vm_size=target.vm_size,
    )
