"""Resource state (resource groups, VMs, managed disks and snapshots, galleries) and its ARM JSON views.

Only the fields the SDK models and a capture workflow read are produced; every id, name and type
is shaped as ARM shapes it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from azsim.compute.guest import GuestImage
from azsim.compute.regions import display

GIB = 1024**3


def rid(subscription: str, resource_group: str, provider_path: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/{provider_path}"


def new_guid() -> str:
    return str(uuid.uuid4())


@dataclass
class ResourceGroup:
    subscription: str
    name: str
    location: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"/subscriptions/{self.subscription}/resourceGroups/{self.name}"

    def to_arm(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": self.location,
            "tags": self.tags,
            "properties": {"provisioningState": "Succeeded"},
        }


@dataclass
class DiskAccess:
    access_id: str
    expires_at: float  # real time
    expiry_entry: Any = None


@dataclass
class ManagedDisk:
    """A managed disk or a snapshot (same shape in DiskRP)."""

    kind: str  # "disks" | "snapshots"
    subscription: str
    resource_group: str
    name: str
    location: str
    sku: str
    size_gib: int
    blob_name: str
    content_bytes: int
    os_type: str | None = None
    hyper_v_generation: str | None = None
    security_type: str | None = None  # Standard/None, TrustedLaunch, ConfidentialVM
    architecture: str = "x64"
    create_option: str = "Empty"
    source_resource_id: str | None = None
    source_unique_id: str | None = None
    incremental: bool = False
    managed_by: str | None = None
    provisioning_state: str = "Succeeded"
    unique_id: str = field(default_factory=new_guid)
    time_created: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    access: DiskAccess | None = None
    delete_pending: bool = False
    # DELETE operations waiting for the disk to go (blocked while an export SAS is active).
    delete_ops: list[Any] = field(default_factory=list)
    # The guest's preparation the disk carries (hidden: decides how a VM from its image provisions).
    guest: GuestImage = field(default_factory=GuestImage)

    @property
    def id(self) -> str:
        return rid(self.subscription, self.resource_group, f"Microsoft.Compute/{self.kind}/{self.name}")

    @property
    def arm_type(self) -> str:
        return f"Microsoft.Compute/{self.kind}"

    def disk_state(self, vm_power: str | None) -> str:
        if self.access is not None:
            return "ActiveSAS"
        if self.managed_by and vm_power is not None:
            return "Reserved" if vm_power in ("deallocated", "deallocating") else "Attached"
        return "Unattached"

    def to_arm(self, vm_power: str | None = None) -> dict[str, Any]:
        tier = self.sku.split("_")[0]
        props: dict[str, Any] = {
            "diskSizeGB": self.size_gib,
            "diskSizeBytes": self.size_gib * GIB,
            "uniqueId": self.unique_id,
            "provisioningState": self.provisioning_state,
            "diskState": self.disk_state(vm_power),
            "timeCreated": self.time_created,
            "creationData": {"createOption": self.create_option},
            "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
            "supportedCapabilities": {"architecture": self.architecture},
        }
        if self.os_type:
            props["osType"] = self.os_type
        if self.hyper_v_generation:
            props["hyperVGeneration"] = self.hyper_v_generation
        if self.security_type and self.security_type != "Standard":
            props["securityProfile"] = {"securityType": self.security_type}
            if self.security_type == "TrustedLaunch":
                props["supportedCapabilities"]["supportedSecurityOption"] = "TrustedLaunchSupported"
        if self.source_resource_id:
            props["creationData"]["sourceResourceId"] = self.source_resource_id
        if self.source_unique_id:
            props["creationData"]["sourceUniqueId"] = self.source_unique_id
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "type": self.arm_type,
            "location": self.location,
            "tags": self.tags,
            "sku": {"name": self.sku, "tier": tier},
            "properties": props,
        }
        if self.kind == "snapshots":
            props["incremental"] = self.incremental
            if self.provisioning_state == "Succeeded":
                props["completionPercent"] = 100.0
        elif self.managed_by:
            body["managedBy"] = self.managed_by
        return body


@dataclass
class DataDiskRef:
    lun: int
    disk_id: str
    delete_option: str = "Detach"  # what a VM DELETE does to the disk: Delete | Detach
    create_option: str = "Attach"  # FromImage for a data disk made from an image's data disk image


@dataclass
class NicRef:
    nic_id: str
    primary: bool
    delete_option: str = "Detach"


@dataclass
class VirtualMachine:
    subscription: str
    resource_group: str
    name: str
    location: str
    os_type: str
    hyper_v_generation: str
    security_type: str
    architecture: str
    vm_size: str
    power: str  # running|stopped|deallocated|starting|stopping|deallocating
    os_disk_id: str
    data_disks: list[DataDiskRef]
    generalized: bool = False
    # Guest state set by Run Command: "" | "deprovisioned" | "sysprepped"
    guest_state: str = ""
    provisioning_state: str = "Succeeded"
    create_option: str = "FromImage"
    vm_id: str = field(default_factory=new_guid)
    tags: dict[str, str] = field(default_factory=dict)
    os_name: str | None = None
    os_version: str | None = None
    time_created: str = ""
    # A Run Command that never reports back (deprovision/sysprep) keeps the extension busy.
    run_command_busy: bool = False
    nics: list[NicRef] = field(default_factory=list)
    os_disk_delete_option: str = "Detach"
    # False from the create until the guest agent first reports (VMs created from attached disks).
    agent_ready: bool = True
    uefi_settings: dict[str, Any] | None = None
    # Pending power transition handle and its operation (so a newer action can supersede it).
    transition: Any = None
    transition_op: Any = None
    # The preparation the guest came with (from its disk or image); Run Command changes guest_state.
    image_guest: GuestImage = field(default_factory=GuestImage)
    # storageProfile.imageReference of a VM created from an image.
    image_reference: dict[str, Any] | None = None
    # osProfile.adminUsername (None: the VM has no osProfile, as one from a specialized image or a disk).
    admin_username: str | None = "azureuser"

    @property
    def guest(self) -> GuestImage:
        return GuestImage(self.guest_state or self.image_guest.state, self.image_guest.prepare_fails)

    @property
    def id(self) -> str:
        return rid(self.subscription, self.resource_group, f"Microsoft.Compute/virtualMachines/{self.name}")

    def to_arm(self, disks: dict[str, ManagedDisk], *, instance_view: bool = False) -> dict[str, Any]:
        os_disk = disks.get(self.os_disk_id.lower())
        storage: dict[str, Any] = {
            "osDisk": {
                "osType": self.os_type,
                "name": os_disk.name if os_disk else self.os_disk_id.rsplit("/", 1)[-1],
                "createOption": self.create_option,
                "caching": "ReadWrite",
                "diskSizeGB": os_disk.size_gib if os_disk else None,
                "managedDisk": {
                    "id": self.os_disk_id,
                    "storageAccountType": os_disk.sku if os_disk else None,
                },
                "deleteOption": self.os_disk_delete_option,
            },
            "dataDisks": [],
        }
        if self.image_reference:
            storage["imageReference"] = dict(self.image_reference)
        for ref in sorted(self.data_disks, key=lambda r: r.lun):
            d = disks.get(ref.disk_id.lower())
            storage["dataDisks"].append(
                {
                    "lun": ref.lun,
                    "name": d.name if d else ref.disk_id.rsplit("/", 1)[-1],
                    "createOption": ref.create_option,
                    "caching": "None",
                    "diskSizeGB": d.size_gib if d else None,
                    "managedDisk": {"id": ref.disk_id, "storageAccountType": d.sku if d else None},
                    "deleteOption": ref.delete_option,
                    "toBeDetached": False,
                }
            )
        props: dict[str, Any] = {
            "vmId": self.vm_id,
            "provisioningState": self.provisioning_state,
            "hardwareProfile": {"vmSize": self.vm_size},
            "storageProfile": storage,
            "networkProfile": {
                "networkInterfaces": [
                    {"id": n.nic_id, "properties": {"primary": n.primary, "deleteOption": n.delete_option}}
                    for n in self.nics
                ]
            },
            "timeCreated": self.time_created,
        }
        if self.create_option == "FromImage" and self.admin_username:
            conf = "linuxConfiguration" if self.os_type == "Linux" else "windowsConfiguration"
            props["osProfile"] = {"computerName": self.name, "adminUsername": self.admin_username, conf: {}}
        if self.security_type != "Standard":
            props["securityProfile"] = {
                "securityType": self.security_type,
                "uefiSettings": self.uefi_settings or {"secureBootEnabled": True, "vTpmEnabled": True},
            }
        if instance_view:
            props["instanceView"] = self.instance_view(disks)
        return {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Compute/virtualMachines",
            "location": self.location,
            "tags": self.tags,
            "properties": props,
        }

    def instance_view(self, disks: dict[str, ManagedDisk]) -> dict[str, Any]:
        prov = self.provisioning_state.lower()
        statuses: list[dict[str, Any]] = [
            {
                "code": f"ProvisioningState/{prov}",
                "level": "Info",
                "displayStatus": f"Provisioning {prov}" if prov != "updating" else "Updating",
            },
            {"code": f"PowerState/{self.power}", "level": "Info", "displayStatus": f"VM {self.power}"},
        ]
        if self.generalized:
            statuses.append(
                {"code": "OSState/generalized", "level": "Info", "displayStatus": "VM generalized"}
            )
        disk_views = []
        for disk_id in [self.os_disk_id, *[r.disk_id for r in self.data_disks]]:
            d = disks.get(disk_id.lower())
            disk_views.append(
                {
                    "name": d.name if d else disk_id.rsplit("/", 1)[-1],
                    "statuses": [
                        {
                            "code": "ProvisioningState/succeeded",
                            "level": "Info",
                            "displayStatus": "Provisioning succeeded",
                        }
                    ],
                }
            )
        agent_ready = self.agent_ready and self.power == "running" and self.guest_state != "deprovisioned"
        view: dict[str, Any] = {
            "computerName": self.name,
            "osName": self.os_name
            or ("ubuntu" if self.os_type == "Linux" else "Windows Server 2022 Datacenter"),
            "osVersion": self.os_version or ("22.04" if self.os_type == "Linux" else "10.0.20348"),
            "hyperVGeneration": self.hyper_v_generation,
            "disks": disk_views,
            "statuses": statuses,
        }
        if agent_ready:
            view["vmAgent"] = {
                "vmAgentVersion": "2.12.0.2",
                "statuses": [
                    {
                        "code": "ProvisioningState/succeeded",
                        "level": "Info",
                        "displayStatus": "Ready",
                        "message": "GuestAgent is running and accepting new configurations.",
                    }
                ],
            }
        else:
            view["vmAgent"] = {
                "vmAgentVersion": "Unknown",
                "statuses": [
                    {
                        "code": "ProvisioningState/Unavailable",
                        "level": "Warning",
                        "displayStatus": "Not Ready",
                        "message": "VM status blob is found but not yet populated."
                        if self.agent_ready
                        else "VM status blob not found.",
                    }
                ],
            }
        return view


@dataclass
class Gallery:
    subscription: str
    resource_group: str
    name: str
    location: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    provisioning_state: str = "Succeeded"
    unique_name: str = ""

    @property
    def id(self) -> str:
        return rid(self.subscription, self.resource_group, f"Microsoft.Compute/galleries/{self.name}")

    def to_arm(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Compute/galleries",
            "location": self.location,
            "tags": self.tags,
            "properties": {
                "description": self.description,
                "identifier": {"uniqueName": self.unique_name},
                "provisioningState": self.provisioning_state,
            },
        }


@dataclass
class GalleryImage:
    gallery: Gallery
    name: str
    location: str
    os_type: str
    os_state: str
    hyper_v_generation: str
    architecture: str
    identifier: dict[str, str]
    features: list[dict[str, str]]
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    provisioning_state: str = "Succeeded"

    @property
    def id(self) -> str:
        return f"{self.gallery.id}/images/{self.name}"

    @property
    def security_type(self) -> str | None:
        for f in self.features:
            if f.get("name", "").lower() == "securitytype":
                return f.get("value")
        return None

    def to_arm(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Compute/galleries/images",
            "location": self.location,
            "tags": self.tags,
            "properties": {
                "description": self.description,
                "osType": self.os_type,
                "osState": self.os_state,
                "hyperVGeneration": self.hyper_v_generation,
                "architecture": self.architecture,
                "identifier": self.identifier,
                "features": self.features,
                "provisioningState": self.provisioning_state,
            },
        }


@dataclass
class RegionReplication:
    region: str  # short name
    regional_replica_count: int
    storage_account_type: str
    exclude_from_latest: bool
    start: float | None = None  # real time replication started; None = waiting for the source region
    duration_s: float = 0.0  # Azure seconds
    state: str = "Replicating"  # Replicating | Completed | Failed
    details: str = ""
    fail_message: str | None = None


@dataclass
class DiskImage:
    lun: int | None  # None = OS disk
    size_gib: int
    source_id: str  # a disk, snapshot or managed image id, or a VHD blob's URI
    host_caching: str
    storage_account_id: str = ""  # set for a VHD blob source


@dataclass
class GalleryImageVersion:
    image: GalleryImage
    name: str
    location: str
    source: dict[str, str]  # {"virtualMachineId": id} or {"id": id} or {} when per-disk sources
    os_disk: DiskImage
    data_disks: list[DiskImage]
    regions: list[RegionReplication]
    replica_count: int = 1
    exclude_from_latest: bool = False
    end_of_life_date: str | None = None
    storage_account_type: str = "Standard_LRS"
    replication_mode: str = "Full"
    published_date: str = ""
    provisioning_state: str = "Creating"
    allow_deletion_of_replicated_locations: bool = True
    tags: dict[str, str] = field(default_factory=dict)
    total_bytes: int = 0
    block_deletion_before_end_of_life: bool = False
    # The source guest's preparation (hidden: decides how VMs created from this version provision).
    guest: GuestImage = field(default_factory=GuestImage)

    @property
    def id(self) -> str:
        return f"{self.image.id}/versions/{self.name}"

    def progress(self, region: RegionReplication, fraction: float) -> int:
        if region.state == "Completed":
            return 100
        if region.start is None:
            return 0
        return min(99, int(fraction * 100))

    def to_arm(self, *, replication_fractions: dict[str, float] | None = None) -> dict[str, Any]:
        def disk_image(d: DiskImage) -> dict[str, Any]:
            out: dict[str, Any] = {"sizeInGB": d.size_gib, "hostCaching": d.host_caching}
            if d.storage_account_id:
                out["source"] = {"storageAccountId": d.storage_account_id, "uri": d.source_id}
            elif not self.source:
                out["source"] = {"id": d.source_id}
            if d.lun is not None:
                out["lun"] = d.lun
            return out

        storage: dict[str, Any] = {"osDiskImage": disk_image(self.os_disk)}
        if self.data_disks:
            storage["dataDiskImages"] = [
                disk_image(d) for d in sorted(self.data_disks, key=lambda x: x.lun or 0)
            ]
        if self.source:
            storage["source"] = dict(self.source)
        publishing: dict[str, Any] = {
            "targetRegions": [
                {
                    "name": display(r.region),
                    "regionalReplicaCount": r.regional_replica_count,
                    "storageAccountType": r.storage_account_type,
                    "excludeFromLatest": r.exclude_from_latest,
                }
                for r in self.regions
            ],
            "replicaCount": self.replica_count,
            "excludeFromLatest": self.exclude_from_latest,
            "publishedDate": self.published_date,
            "storageAccountType": self.storage_account_type,
            "replicationMode": self.replication_mode,
        }
        if self.end_of_life_date:
            publishing["endOfLifeDate"] = self.end_of_life_date
        props: dict[str, Any] = {
            "publishingProfile": publishing,
            "storageProfile": storage,
            "safetyProfile": {
                "allowDeletionOfReplicatedLocations": self.allow_deletion_of_replicated_locations,
                "blockDeletionBeforeEndOfLife": self.block_deletion_before_end_of_life,
                "reportedForPolicyViolation": False,
            },
            "provisioningState": self.provisioning_state,
        }
        if replication_fractions is not None:
            summary = [
                {
                    "region": display(r.region),
                    "state": r.state,
                    "details": r.details,
                    "progress": self.progress(r, replication_fractions.get(r.region, 0.0)),
                }
                for r in self.regions
            ]
            states = {r.state for r in self.regions}
            aggregated = (
                "Failed" if "Failed" in states else "Completed" if states == {"Completed"} else "InProgress"
            )
            props["replicationStatus"] = {"aggregatedState": aggregated, "summary": summary}
        return {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Compute/galleries/images/versions",
            "location": self.location,
            "tags": self.tags,
            "properties": props,
        }
