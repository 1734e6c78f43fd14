"""VM PUT: a new VM from attached disks (OS disk ``createOption: Attach``, data disks attached at
their LUNs, NICs from ``networkProfile``), with Azure's validation, the Trusted Launch default of
API 2025-11-01+, ``deleteOption`` per disk and NIC, the guest agent's readiness after boot, and the
injectable create failures (``vmCreateFailure`` fault effects). Updates change tags and size only.
"""

from __future__ import annotations

import re
from typing import Any

from azsim.compute.models import DataDiskRef, ManagedDisk, NicRef, VirtualMachine, rid
from azsim.compute.regions import normalize
from azsim.compute.state import canonical_id, dig
from azsim.compute.vm_from_image import ImageCreates, check_os_profile, default_security
from azsim.core.clock import utc_iso
from azsim.core.context import Reply, RequestContext
from azsim.core.errors import ArmError, bad_request, invalid_parameter, resource_not_found
from azsim.core.faults import VmCreateFailureEffect
from azsim.network.interfaces import NetworkResources, nic_in_use
from azsim.network.models import NetworkInterface

NIC_JOIN = "Microsoft.Network/networkInterfaces/join/action"
VERSION_READ = "Microsoft.Compute/galleries/images/versions/read"
DELETE_OPTIONS = ("Delete", "Detach")

ALLOCATION_FAILED = (
    "Allocation failed. We do not have sufficient capacity for the requested VM size in this region. Read more "
    "about improving likelihood of allocation success at http://aka.ms/allocation-guidance"
)


def _missing(name: str) -> ArmError:
    return invalid_parameter(f"Required parameter '{name}' is missing (null).", name)


def _delete_option(value: Any, target: str) -> str:
    if value is None:
        return "Detach"
    for option in DELETE_OPTIONS:
        if str(value).lower() == option.lower():
            return option
    raise invalid_parameter(
        f"The value '{value}' of parameter '{target}' is not valid. Allowed values are Delete, Detach.",
        target,
    )


def vm_cores(size: str) -> int:
    """vCPUs of a size from its name (Standard_D4s_v5 -> 4); 2 when the name does not say."""
    m = re.match(r"^(?:Standard|Basic)_[A-Za-z]+?(\d+)", size)
    return int(m.group(1)) if m else 2


def _from_image(props: dict[str, Any]) -> bool:
    option = str(dig(props, "storageProfile", "osDisk", "createOption") or "")
    ref = dig(props, "storageProfile", "imageReference")
    return option.lower() == "fromimage" or (bool(ref) and option.lower() != "attach")


class VmCreation(NetworkResources, ImageCreates):
    """VM PUT (create from attached disks or a gallery image version, or update of tags and size)."""

    def put_vm(self, ctx: RequestContext, sub: str, rg: str, name: str, body: dict[str, Any]) -> Reply:
        group = self.require_rg(sub, rg)
        vm_id = rid(group.subscription, group.name, f"Microsoft.Compute/virtualMachines/{name}")
        existing = self.vms.get(vm_id.lower())
        failure = next((e for e in ctx.effects if isinstance(e, VmCreateFailureEffect)), None)
        if existing is not None and existing.provisioning_state == "Failed":
            # A PUT of a VM whose create failed tries the create again (the usual retry in place).
            if failure is not None and failure.reason != "allocationFailed":
                raise self._create_refused(
                    failure, vm_id, existing.vm_size, existing.location, group.subscription
                )
            existing.power, existing.provisioning_state = "starting", "Creating"
            if existing.image_reference and failure is None:
                _, version = self.image_source(existing.image_reference, existing.location)
                return self.provision_from_image(ctx, existing, version, status=200)
            return self._provision(ctx, existing, failure, status=200)
        if existing is not None:
            return self._update_vm(ctx, existing, body)
        props = body.get("properties") or {}
        location = self._check_region(body.get("location"))
        vm_size = dig(props, "hardwareProfile", "vmSize")
        if not vm_size:
            raise _missing("hardwareProfile.vmSize")
        if _from_image(props):
            return self._create_from_image(ctx, vm_id, name, body, str(vm_size), failure)
        disk, os_type, os_delete = self._os_disk(props, location, vm_id)
        data_refs = self._data_disks(props, location, vm_id)
        nics = self._nics(ctx, props, location, vm_id)
        security = self._security_type(ctx, props, disk)
        if failure is not None and failure.reason != "allocationFailed":
            raise self._create_refused(failure, vm_id, str(vm_size), location, group.subscription)
        vm = VirtualMachine(
            subscription=group.subscription,
            resource_group=group.name,
            name=name,
            location=location,
            os_type=os_type,
            hyper_v_generation=disk.hyper_v_generation or "V1",
            security_type=security,
            architecture=disk.architecture,
            vm_size=str(vm_size),
            power="starting",
            os_disk_id=disk.id,
            data_disks=[DataDiskRef(lun, d.id, opt) for lun, d, opt in data_refs],
            provisioning_state="Creating",
            create_option="Attach",
            tags=dict(body.get("tags") or {}),
            time_created=utc_iso(),
            nics=[NicRef(n.id, primary, opt) for n, primary, opt in nics],
            os_disk_delete_option=os_delete,
            agent_ready=False,
            uefi_settings=dig(props, "securityProfile", "uefiSettings"),
            image_guest=disk.guest,  # the guest boots as it was left on the disk
        )
        disk.managed_by = vm_id
        for _, d, _ in data_refs:
            d.managed_by = vm_id
        for nic, primary, _ in nics:
            self.attach_nic(nic, vm_id, primary=primary)
        self.vms[vm_id.lower()] = vm
        return self._provision(ctx, vm, failure, status=201)

    def _create_from_image(
        self,
        ctx: RequestContext,
        vm_id: str,
        name: str,
        body: dict[str, Any],
        size: str,
        failure: VmCreateFailureEffect | None,
    ) -> Reply:
        props = body.get("properties") or {}
        location = self._check_region(body.get("location"))
        ref = dig(props, "storageProfile", "imageReference") or {}
        image, version = self.image_source(ref, location)
        ctx.authorize_linked(VERSION_READ, version.id)
        admin = check_os_profile(image, props)
        nics = self._nics(ctx, props, location, vm_id)
        security = self.image_security(ctx, props, image)
        sub, rg = vm_id.split("/")[2], vm_id.split("/")[4]
        if failure is not None and failure.reason != "allocationFailed":
            raise self._create_refused(failure, vm_id, size, location, sub)
        vm = VirtualMachine(
            subscription=sub,
            resource_group=rg,
            name=name,
            location=location,
            os_type=image.os_type,
            hyper_v_generation=image.hyper_v_generation,
            security_type=security,
            architecture=image.architecture,
            vm_size=size,
            power="starting",
            os_disk_id="",
            data_disks=[],
            provisioning_state="Creating",
            create_option="FromImage",
            tags=dict(body.get("tags") or {}),
            time_created=utc_iso(),
            nics=[NicRef(n.id, primary, opt) for n, primary, opt in nics],
            agent_ready=False,
            uefi_settings=dig(props, "securityProfile", "uefiSettings"),
            image_guest=self.new_image_guest(version),
            image_reference={"id": str(ref.get("id")), "exactVersion": version.name},
            admin_username=admin,
        )
        self.image_disks(vm, version, props, _delete_option)
        for nic, primary, _ in nics:
            self.attach_nic(nic, vm_id, primary=primary)
        self.vms[vm_id.lower()] = vm
        if failure is not None:
            return self._provision(ctx, vm, failure, status=201)
        return self.provision_from_image(ctx, vm, version, status=201)

    def _provision(
        self, ctx: RequestContext, vm: VirtualMachine, failure: VmCreateFailureEffect | None, *, status: int
    ) -> Reply:
        """Allocate and boot: running after ``vm_create_s``, the agent Ready ``vm_agent_ready_s`` later."""
        op = self.start_op(
            ctx, family="operations", location=vm.location, resource_id=vm.id, sub=vm.subscription
        )

        def created(at: float) -> None:
            if failure is not None:
                # The VM resource stays, Failed and holding its disks and NICs, until it is deleted.
                vm.power = "deallocated"
                vm.provisioning_state = "Failed"
                op.fail("AllocationFailed", ALLOCATION_FAILED)
                return
            vm.power = "running"
            vm.provisioning_state = "Succeeded"
            op.succeed()
            # From the boot's due time, so a clock that jumps past both keeps their spacing.
            self.lifecycle.schedule(self.latency.vm_agent_ready_s, agent_ready, base=at)

        def agent_ready(_at: float) -> None:
            vm.agent_ready = True

        self.lifecycle.schedule(self.latency.vm_create_s, created)
        return self.accepted(
            ctx, op, status=status, body=vm.to_arm(self.disks), final=lambda: vm.to_arm(self.disks)
        )

    def _update_vm(self, ctx: RequestContext, vm: VirtualMachine, body: dict[str, Any]) -> Reply:
        props = body.get("properties") or {}
        new_os = dig(props, "storageProfile", "osDisk", "managedDisk", "id")
        if new_os and new_os.lower() != vm.os_disk_id.lower():
            raise ArmError(
                409,
                "PropertyChangeNotAllowed",
                "Changing property 'osDisk.managedDisk.id' is not allowed.",
                target="osDisk.managedDisk.id",
            )
        if "tags" in body:
            vm.tags = dict(body.get("tags") or {})
        size = dig(props, "hardwareProfile", "vmSize")
        if size:
            vm.vm_size = size
        op = self.start_op(
            ctx, family="operations", location=vm.location, resource_id=vm.id, sub=vm.subscription
        )
        op.succeed()
        return self.accepted(
            ctx, op, status=200, body=vm.to_arm(self.disks), final=lambda: vm.to_arm(self.disks)
        )

    def _os_disk(self, props: dict[str, Any], location: str, vm_id: str) -> tuple[ManagedDisk, str, str]:
        os_disk = dig(props, "storageProfile", "osDisk") or {}
        create_option = str(os_disk.get("createOption") or "")
        if create_option.lower() != "attach":
            raise invalid_parameter(
                f"azsim creates VMs only from an existing OS disk (createOption 'Attach'); got '{create_option}'.",
                "osDisk.createOption",
            )
        if dig(props, "storageProfile", "imageReference"):
            raise invalid_parameter(
                "Cannot attach an existing OS disk if the VM is created from a platform or user image.",
                "imageReference",
            )
        if props.get("osProfile"):
            raise invalid_parameter("Parameter 'osProfile' is not allowed.", "osProfile")
        os_type = os_disk.get("osType")
        if os_type not in ("Linux", "Windows"):
            raise _missing("osDisk.osType")
        disk_id = dig(os_disk, "managedDisk", "id")
        if not disk_id:
            raise _missing("osDisk.managedDisk.id")
        delete = _delete_option(os_disk.get("deleteOption"), "osDisk.deleteOption")
        return self._attachable_disk(str(disk_id), location, vm_id), str(os_type), delete

    def _data_disks(
        self, props: dict[str, Any], location: str, vm_id: str
    ) -> list[tuple[int, ManagedDisk, str]]:
        refs: list[tuple[int, ManagedDisk, str]] = []
        seen_luns: set[int] = set()
        for i, dd in enumerate(dig(props, "storageProfile", "dataDisks") or []):
            lun = dd.get("lun")
            if not isinstance(lun, int) or lun in seen_luns:
                raise invalid_parameter(
                    f"Data disk LUN '{lun}' is invalid or used twice.", f"dataDisks[{i}].lun"
                )
            seen_luns.add(lun)
            if str(dd.get("createOption", "")).lower() != "attach":
                raise invalid_parameter(
                    "azsim attaches only existing data disks (createOption 'Attach').",
                    f"dataDisks[{i}].createOption",
                )
            delete = _delete_option(dd.get("deleteOption"), f"dataDisks[{i}].deleteOption")
            disk = self._attachable_disk(str(dig(dd, "managedDisk", "id") or ""), location, vm_id)
            if (
                any(d is disk for _, d, _ in refs)
                or disk.id.lower()
                == str(dig(props, "storageProfile", "osDisk", "managedDisk", "id") or "").lower()
            ):
                raise invalid_parameter(f"Disk '{disk.name}' is given more than once.", f"dataDisks[{i}]")
            refs.append((lun, disk, delete))
        return refs

    def _nics(
        self, ctx: RequestContext, props: dict[str, Any], location: str, vm_id: str
    ) -> list[tuple[NetworkInterface, bool, str]]:
        profile = props.get("networkProfile")
        if not isinstance(profile, dict):
            raise _missing("networkProfile")
        refs = profile.get("networkInterfaces")
        if not isinstance(refs, list) or not refs:
            raise _missing("networkProfile.networkInterfaces")
        out: list[tuple[NetworkInterface, bool, str]] = []
        for i, ref in enumerate(refs):
            ref = ref if isinstance(ref, dict) else {}
            nic_id = canonical_id(str(ref.get("id") or ""))
            nic = self.nic_by_id(nic_id)
            if nic is None or nic.location != location:
                raise ArmError(
                    400,
                    "InvalidResourceReference",
                    f"Resource {nic_id} referenced by resource {vm_id} was not found. Please make sure that the "
                    "referenced resource exists, and that both resources are in the same region.",
                )
            if nic.virtual_machine and nic.virtual_machine.lower() != vm_id.lower():
                raise nic_in_use(nic.id, nic.virtual_machine)
            ctx.authorize_linked(NIC_JOIN, nic.id)
            nic_props = ref.get("properties") or {}
            primary = bool(nic_props.get("primary", len(refs) == 1))
            delete = _delete_option(
                nic_props.get("deleteOption"),
                f"networkProfile.networkInterfaces[{i}].properties.deleteOption",
            )
            out.append((nic, primary, delete))
        if sum(1 for _, primary, _ in out if primary) != 1:
            raise invalid_parameter(
                f"Virtual machine {vm_id.rsplit('/', 1)[-1]} must have one network interface set as the primary.",
                "networkProfile.networkInterfaces",
            )
        return out

    def _security_type(self, ctx: RequestContext, props: dict[str, Any], disk: ManagedDisk) -> str:
        """The VM's security type, which must be the attached OS disk's."""
        given = dig(props, "securityProfile", "securityType")
        if given:
            security = str(given)
        else:
            # The 2025-11-01 default, shared with image creates (docs/azsim-arm.md: unverified for Attach).
            security = default_security(ctx.api_version, disk.hyper_v_generation, disk.architecture, True)
        disk_security = disk.security_type or "Standard"
        if security.lower() != disk_security.lower():
            raise bad_request(
                "Security type of VM is not compatible with the security type of attached OS Disk."
            )
        return disk_security

    def _create_refused(
        self, failure: VmCreateFailureEffect, vm_id: str, size: str, location: str, sub: str
    ) -> ArmError:
        if failure.reason == "skuNotAvailable":
            return ArmError(
                409,
                "SkuNotAvailable",
                f"The requested size for resource '{vm_id}' is currently not available in location '{location}' "
                f"zones '' for subscription '{sub}'. Please try another size or deploy to a different location or "
                "zones. See https://aka.ms/azureskunotavailable for details.",
            )
        usage = sum(
            vm_cores(v.vm_size)
            for v in self.vms.values()
            if v.subscription.lower() == sub.lower() and v.location == location and v.power != "deallocated"
        )
        need = vm_cores(size)
        return ArmError(
            409,
            "OperationNotAllowed",
            "Operation could not be completed as it results in exceeding approved Total Regional Cores quota. "
            f"Additional details - Deployment Model: Resource Manager, Location: {location}, Current Limit: "
            f"{failure.cores_limit}, Current Usage: {usage}, Additional Required: {need}, (Minimum) New Limit "
            f"Required: {usage + need}. Submit a request for Quota increase at https://aka.ms/ProdportalCRP/ by "
            "specifying parameters listed in the 'Details' section for deployment to succeed.",
        )

    def _attachable_disk(self, disk_id: str, location: str, vm_id: str) -> ManagedDisk:
        disk = self.disks.get(canonical_id(disk_id).lower())
        if disk is None or disk.kind != "disks":
            m = re.search(r"/resourceGroups/([^/]+)/.*/disks/([^/]+)$", disk_id, re.IGNORECASE)
            raise resource_not_found(
                "Microsoft.Compute/disks", m.group(2) if m else disk_id, m.group(1) if m else "?"
            )
        if disk.managed_by and disk.managed_by.lower() != vm_id.lower():
            raise ArmError(
                409,
                "ConflictingUserInput",
                f"Disk '{disk.name}' cannot be attached as the disk is already owned by VM '{disk.managed_by}'.",
            )
        if normalize(disk.location) != location:
            raise invalid_parameter(
                f"Disk '{disk.id}' is in location '{disk.location}' but the VM is in '{location}'; a VM can only "
                "attach disks of its own region.",
            )
        if disk.provisioning_state != "Succeeded":
            raise ArmError(
                409, "Conflict", f"Disk '{disk.name}' is still being provisioned ({disk.provisioning_state})."
            )
        return disk
