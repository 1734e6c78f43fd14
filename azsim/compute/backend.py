"""The Compute backend: resource state plus Azure's rules, methods named after ARM operations.

Every method runs under the simulator lock with due transitions already applied. Errors are
raised as ``ArmError`` with Azure's codes and texts (azure-behaviours-verified.md); where Azure's
text is not known the message is ours and says so in docs/azsim-arm.md.
Not modelled here: networking, extensions other than Run Command, managed images, VM scale sets.
"""

from __future__ import annotations

import re
from typing import Any

from azsim.compute import guest
from azsim.compute.models import (
    GIB,
    DataDiskRef,
    DiskAccess,
    DiskImage,
    Gallery,
    GalleryImage,
    GalleryImageVersion,
    ManagedDisk,
    RegionReplication,
    ResourceGroup,
    VirtualMachine,
    new_guid,
    rid,
)
from azsim.compute.regions import normalize
from azsim.core.clock import utc_iso
from azsim.core.context import Reply, RequestContext
from azsim.core.errors import (
    ArmError,
    bad_request,
    invalid_parameter,
    operation_not_allowed,
    resource_group_not_found,
    resource_not_found,
)
from azsim.core.latency import LatencyProfile
from azsim.core.lifecycle import Lifecycle
from azsim.core.lro import Operation, OperationStore, lro_headers
from azsim.interfaces import DiskStore
from azsim.world import World

_VERSION_NAME = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_INT32_MAX = 2**31 - 1
_SECURITY_COMPAT = {
    # image definition SecurityType feature -> source security types it accepts
    None: {"Standard"},
    "trustedlaunch": {"TrustedLaunch"},
    "trustedlaunchsupported": {"Standard", "TrustedLaunch"},
    "confidentialvm": {"ConfidentialVM"},
    "confidentialvmsupported": {"Standard", "ConfidentialVM"},
    "trustedlaunchandconfidentialvmsupported": {"Standard", "TrustedLaunch", "ConfidentialVM"},
}
MIB = 1024 * 1024


def _req(body: dict[str, Any], *path: str) -> Any:
    cur: Any = body
    for p in path:
        cur = cur.get(p) if isinstance(cur, dict) else None
    return cur


class ComputeBackend:
    def __init__(
        self,
        world: World,
        disk_store: DiskStore,
        lifecycle: Lifecycle,
        ops: OperationStore,
        latency: LatencyProfile,
        *,
        seed: int = 0,
    ) -> None:
        self.world = world
        self.disk_store = disk_store
        self.lifecycle = lifecycle
        self.ops = ops
        self.latency = latency
        self.seed = seed
        self.regions = {normalize(r) for r in world.regions}
        self.subscriptions = {s.id.lower() for s in world.subscriptions}
        self.rgs: dict[tuple[str, str], ResourceGroup] = {}
        self.vms: dict[str, VirtualMachine] = {}
        self.disks: dict[str, ManagedDisk] = {}  # disks and snapshots, by lower-case id
        self.galleries: dict[str, Gallery] = {}
        self.images: dict[str, GalleryImage] = {}
        self.versions: dict[str, GalleryImageVersion] = {}
        self._blob_counter = 0
        self._blobs: set[str] = set()
        self._load_world()

    # ------------------------------------------------------------------ world / reset

    def _new_blob_name(self, kind: str, rg: str, name: str) -> str:
        self._blob_counter += 1
        safe = re.sub(r"[^a-z0-9-]", "-", f"{kind}-{rg}-{name}".lower())
        blob = f"{safe}-{self._blob_counter}"
        self._blobs.add(blob)
        return blob

    def _load_world(self) -> None:
        w = self.world
        now = utc_iso()
        for rg_spec in w.resource_groups:
            sub = w.resource_group_subscription(rg_spec)
            self.rgs[(sub.lower(), rg_spec.name.lower())] = ResourceGroup(
                sub, rg_spec.name, normalize(rg_spec.location), dict(rg_spec.tags)
            )
        for index, spec in enumerate(w.virtual_machines):
            rg = self.rgs[(self._sub_of_rg(spec.resource_group), spec.resource_group.lower())]
            vm_id = rid(rg.subscription, rg.name, f"Microsoft.Compute/virtualMachines/{spec.name}")
            disk_ids: list[tuple[int | None, str]] = []
            for lun, dspec in [(None, spec.os_disk), *[(d.lun, d) for d in spec.data_disks]]:
                blob = self._new_blob_name("disk", rg.name, dspec.name)
                size = self.disk_store.create_disk_blob(
                    blob, content_mib=dspec.content_mi_b, seed=self.seed * 7919 + index
                )
                disk = ManagedDisk(
                    kind="disks",
                    subscription=rg.subscription,
                    resource_group=rg.name,
                    name=dspec.name,
                    location=normalize(spec.location),
                    sku=dspec.sku,
                    size_gib=dspec.size_gi_b,
                    blob_name=blob,
                    content_bytes=size,
                    os_type=spec.os_type if lun is None else None,
                    hyper_v_generation=spec.hyper_v_generation if lun is None else None,
                    security_type=spec.security_type if lun is None else None,
                    architecture=spec.architecture,
                    create_option="FromImage" if lun is None else "Empty",
                    managed_by=vm_id,
                    time_created=now,
                )
                self.disks[disk.id.lower()] = disk
                disk_ids.append((lun, disk.id))
            vm = VirtualMachine(
                subscription=rg.subscription,
                resource_group=rg.name,
                name=spec.name,
                location=normalize(spec.location),
                os_type=spec.os_type,
                hyper_v_generation=spec.hyper_v_generation,
                security_type=spec.security_type,
                architecture=spec.architecture,
                vm_size=spec.vm_size,
                power=spec.power_state,
                os_disk_id=disk_ids[0][1],
                data_disks=[DataDiskRef(lun, did) for lun, did in disk_ids[1:] if lun is not None],
                generalized=spec.generalized,
                guest_state="deprovisioned" if spec.guest_deprovisioned else "",
                tags=dict(spec.tags),
                os_name=spec.os_name,
                os_version=spec.os_version,
                time_created=now,
            )
            self.vms[vm.id.lower()] = vm
        for g in w.galleries:
            rg = self.rgs[(self._sub_of_rg(g.resource_group), g.resource_group.lower())]
            gallery = Gallery(rg.subscription, rg.name, g.name, normalize(g.location), g.description)
            gallery.unique_name = f"{rg.subscription}-{g.name.upper()}"
            self.galleries[gallery.id.lower()] = gallery
            for img in g.images:
                features = [{"name": "SecurityType", "value": img.security_type}] if img.security_type else []
                image = GalleryImage(
                    gallery=gallery,
                    name=img.name,
                    location=gallery.location,
                    os_type=img.os_type,
                    os_state=img.os_state,
                    hyper_v_generation=img.hyper_v_generation,
                    architecture=img.architecture,
                    identifier={"publisher": img.publisher, "offer": img.offer, "sku": img.sku or img.name},
                    features=features,
                )
                self.images[image.id.lower()] = image
                for ver in img.versions:
                    regions = ver.target_regions or [gallery.location]
                    version = GalleryImageVersion(
                        image=image,
                        name=ver.name,
                        location=gallery.location,
                        source={},
                        os_disk=DiskImage(None, ver.os_disk_size_gi_b, "", "ReadWrite"),
                        data_disks=[DiskImage(lun, 32, "", "None") for lun in ver.data_disk_luns],
                        regions=[
                            RegionReplication(normalize(r), 1, "Standard_LRS", False, state="Completed")
                            for r in regions
                        ],
                        exclude_from_latest=ver.exclude_from_latest,
                        published_date=now,
                        provisioning_state="Succeeded",
                    )
                    self.versions[version.id.lower()] = version

    def _sub_of_rg(self, rg_name: str) -> str:
        for (sub, name), _ in self.rgs.items():
            if name == rg_name.lower():
                return sub
        return self.world.default_subscription.id.lower()

    def reset(self) -> None:
        for blob in list(self._blobs):
            self.disk_store.delete_blob(blob)
        self._blobs.clear()
        self.rgs.clear()
        self.vms.clear()
        self.disks.clear()
        self.galleries.clear()
        self.images.clear()
        self.versions.clear()
        self._load_world()

    # ------------------------------------------------------------------ lookups

    def require_rg(self, sub: str, rg: str) -> ResourceGroup:
        found = self.rgs.get((sub.lower(), rg.lower()))
        if found is None:
            raise resource_group_not_found(rg)
        return found

    def _get(self, store: dict[str, Any], sub: str, rg: str, type_name: str, path: str, name: str) -> Any:
        group = self.require_rg(sub, rg)
        found = store.get(rid(group.subscription, group.name, path).lower())
        if found is None:
            raise resource_not_found(type_name, name, rg)
        return found

    def get_vm(self, sub: str, rg: str, name: str) -> VirtualMachine:
        vm: VirtualMachine = self._get(
            self.vms,
            sub,
            rg,
            "Microsoft.Compute/virtualMachines",
            f"Microsoft.Compute/virtualMachines/{name}",
            name,
        )
        return vm

    def get_managed(self, kind: str, sub: str, rg: str, name: str) -> ManagedDisk:
        disk: ManagedDisk = self._get(
            self.disks, sub, rg, f"Microsoft.Compute/{kind}", f"Microsoft.Compute/{kind}/{name}", name
        )
        if disk.kind != kind:
            raise resource_not_found(f"Microsoft.Compute/{kind}", name, rg)
        return disk

    def get_gallery(self, sub: str, rg: str, name: str) -> Gallery:
        g: Gallery = self._get(
            self.galleries,
            sub,
            rg,
            "Microsoft.Compute/galleries",
            f"Microsoft.Compute/galleries/{name}",
            name,
        )
        return g

    def get_image(self, sub: str, rg: str, gallery: str, name: str) -> GalleryImage:
        g = self.get_gallery(sub, rg, gallery)
        img = self.images.get(f"{g.id}/images/{name}".lower())
        if img is None:
            raise resource_not_found(f"Microsoft.Compute/galleries/{gallery}/images", name, rg)
        return img

    def get_version(self, sub: str, rg: str, gallery: str, image: str, name: str) -> GalleryImageVersion:
        img = self.get_image(sub, rg, gallery, image)
        ver = self.versions.get(f"{img.id}/versions/{name}".lower())
        if ver is None:
            raise resource_not_found(
                f"Microsoft.Compute/galleries/{gallery}/images/{image}/versions", name, rg
            )
        return ver

    def vm_power_of(self, disk: ManagedDisk) -> str | None:
        if not disk.managed_by:
            return None
        vm = self.vms.get(disk.managed_by.lower())
        return vm.power if vm else None

    def disk_json(self, disk: ManagedDisk) -> dict[str, Any]:
        return disk.to_arm(self.vm_power_of(disk))

    def _check_region(self, location: str | None, target: str = "location") -> str:
        if not location:
            raise invalid_parameter("Required parameter 'location' is missing (null).", target)
        short = normalize(location)
        if short not in self.regions:
            raise ArmError(
                400,
                "LocationNotAvailableForResourceType",
                f"The provided location '{location}' is not available for resource type "
                f"'Microsoft.Compute'. List of available regions for the resource type is "
                f"'{','.join(sorted(self.regions))}'.",
            )
        return short

    # ------------------------------------------------------------------ LRO plumbing

    def start_op(
        self, ctx: RequestContext, *, family: str, location: str, resource_id: str, sub: str
    ) -> Operation:
        return self.ops.create(
            subscription=sub,
            location=location,
            family=family,
            api_version=ctx.api_version,
            resource_id=resource_id,
            principal=ctx.principal,
        )

    def accepted(
        self,
        ctx: RequestContext,
        op: Operation,
        *,
        status: int = 202,
        body: Any = None,
        location: bool = True,
    ) -> Reply:
        poll = self.lifecycle.real(self.latency.poll_interval_s)
        return Reply(status, body, lro_headers(ctx.base_url, op, location=location, poll_real_s=poll))

    # ------------------------------------------------------------------ resource groups

    def put_resource_group(self, sub: str, name: str, body: dict[str, Any]) -> Reply:
        location = self._check_region(body.get("location"))
        existing = self.rgs.get((sub.lower(), name.lower()))
        if existing is not None:
            if normalize(existing.location) != location:
                raise ArmError(
                    409,
                    "InvalidResourceGroupLocation",
                    f"Invalid resource group location '{location}'. The Resource group already exists in "
                    f"location '{existing.location}'.",
                )
            existing.tags = dict(body.get("tags") or {})
            return Reply(200, existing.to_arm())
        group = ResourceGroup(sub, name, location, dict(body.get("tags") or {}))
        self.rgs[(sub.lower(), name.lower())] = group
        return Reply(201, group.to_arm())

    def list_resource_groups(self, sub: str) -> list[ResourceGroup]:
        return [g for (s, _), g in sorted(self.rgs.items()) if s == sub.lower()]

    # ------------------------------------------------------------------ virtual machines

    def list_vms(self, sub: str, rg: str | None) -> list[VirtualMachine]:
        if rg is not None:
            self.require_rg(sub, rg)
        return [
            vm
            for vm in self.vms.values()
            if vm.subscription.lower() == sub.lower()
            and (rg is None or vm.resource_group.lower() == rg.lower())
        ]

    def _transition(
        self, vm: VirtualMachine, interim: str, final: str, seconds: float, op: Operation | None
    ) -> None:
        self._preempt(vm)
        vm.power = interim
        vm.provisioning_state = "Updating"

        def settle(_at: float) -> None:
            vm.power = final
            vm.provisioning_state = "Succeeded"
            vm.transition = None
            vm.transition_op = None
            if final != "running":
                vm.run_command_busy = vm.run_command_busy and final == "stopped"
            if op is not None:
                op.succeed()

        vm.transition = self.lifecycle.schedule(seconds, settle)
        vm.transition_op = op

    def _preempt(self, vm: VirtualMachine) -> None:
        """A newer power action supersedes a running one, whose operation fails as Azure reports it."""
        if vm.transition is not None:
            vm.transition.cancelled = True
            vm.transition = None
            if vm.transition_op is not None:
                vm.transition_op.fail(
                    "OperationPreempted", "Operation execution has been preempted by a more recent operation."
                )
            vm.transition_op = None

    def _not_allowed(self, op_name: str, vm: VirtualMachine, why: str) -> ArmError:
        return operation_not_allowed(f"Operation '{op_name}' is not allowed on VM '{vm.name}' since {why}")

    def vm_action(self, ctx: RequestContext, sub: str, rg: str, name: str, action: str) -> Reply:
        vm = self.get_vm(sub, rg, name)
        op = self.start_op(
            ctx, family="operations", location=vm.location, resource_id=vm.id, sub=vm.subscription
        )
        if action == "deallocate":
            if vm.power == "deallocated":
                op.succeed()  # no-op (unverified in Azure, azure-behaviours-verified.md Q2)
            else:
                self._transition(vm, "deallocating", "deallocated", self.latency.deallocate_s, op)
        elif action == "powerOff":
            if vm.power in ("deallocated", "deallocating"):
                raise self._not_allowed(
                    "powerOff", vm, "the VM is either deallocated or marked to be deallocated."
                )
            if vm.power in ("stopped",):
                op.succeed()
            else:
                self._transition(vm, "stopping", "stopped", self.latency.power_off_s, op)
        elif action == "start":
            if vm.generalized:
                raise self._not_allowed("Start VM", vm, "the VM is generalized.")
            if vm.power == "running":
                op.succeed()
            else:
                vm.run_command_busy = False
                self._transition(vm, "starting", "running", self.latency.start_s, op)
        elif action == "restart":
            if vm.power != "running":
                raise operation_not_allowed("The operation requires the VM to be running (or set to run).")
            op.succeed()
        else:  # pragma: no cover - routes only map the actions above
            raise ArmError(400, "InvalidParameter", f"Unknown action {action}")
        return self.accepted(ctx, op)

    def generalize(self, sub: str, rg: str, name: str) -> Reply:
        vm = self.get_vm(sub, rg, name)
        if vm.power in ("running", "starting"):
            raise self._not_allowed(
                "generalize",
                vm,
                "the VM is running. Please power off explicitly in case you shut down the VM from inside the "
                "guest operating system.",
            )
        if vm.power in ("stopping", "deallocating"):
            raise self._not_allowed("generalize", vm, f"the VM is {vm.power}.")
        vm.generalized = True
        return Reply(200, None)

    def run_command(self, ctx: RequestContext, sub: str, rg: str, name: str, body: dict[str, Any]) -> Reply:
        vm = self.get_vm(sub, rg, name)
        command_id = body.get("commandId")
        expected = "RunShellScript" if vm.os_type == "Linux" else "RunPowerShellScript"
        if command_id not in ("RunShellScript", "RunPowerShellScript"):
            raise invalid_parameter(
                f"The value '{command_id}' of parameter 'commandId' is not supported by azsim; "
                "expected RunShellScript or RunPowerShellScript.",
                "commandId",
            )
        if command_id != expected:
            raise ArmError(
                409,
                "Conflict",
                f"Command '{command_id}' is not supported for the {vm.os_type} operating system of VM '{vm.name}'.",
            )
        if vm.run_command_busy:
            raise ArmError(
                409,
                "Conflict",
                "Run command extension execution is in progress. Please wait for completion before invoking a "
                "run command.",
            )
        if vm.power != "running":
            raise operation_not_allowed("The operation requires the VM to be running (or set to run).")
        if vm.guest_state == "deprovisioned":
            # The agent was removed by deprovisioning: nothing picks the command up.
            op = self.start_op(
                ctx, family="operations", location=vm.location, resource_id=vm.id, sub=vm.subscription
            )
            vm.run_command_busy = True
            return self.accepted(ctx, op)
        script = [str(s) for s in (body.get("script") or [])]
        params = {
            str(p.get("name")): str(p.get("value"))
            for p in (body.get("parameters") or [])
            if isinstance(p, dict)
        }
        outcome = guest.run_script(script, windows=vm.os_type == "Windows", parameters=params)
        op = self.start_op(
            ctx, family="operations", location=vm.location, resource_id=vm.id, sub=vm.subscription
        )
        duration = self.latency.run_command_s + outcome.extra_seconds
        vm.run_command_busy = True

        if outcome.deprovision and vm.os_type == "Linux":
            # waagent kills itself: the command never reports (stays InProgress, WALinuxAgent#3547/#2006).
            def deprovisioned(at: float) -> None:
                vm.guest_state = "deprovisioned"
                if outcome.shutdown:
                    self.lifecycle.schedule(
                        self.latency.guest_shutdown_s, lambda _a: self._guest_stopped(vm), base=at
                    )

            self.lifecycle.schedule(duration, deprovisioned)
            return self.accepted(ctx, op)

        if (outcome.sysprep_generalize or outcome.shutdown) and vm.os_type == "Windows" and outcome.shutdown:
            # Sysprep /shutdown: the VM stops after a delay; the Run Command ends Canceled or Failed without
            # an exit code (AgentBaker PR #9042, azure-behaviours-verified.md Q6). Which one is seeded.
            ending = "Canceled" if (self.seed + sum(map(ord, vm.name))) % 2 == 0 else "Failed"
            delay = (
                self.latency.sysprep_shutdown_s
                if outcome.sysprep_generalize
                else self.latency.guest_shutdown_s
            )

            def sysprep_done(_at: float) -> None:
                if outcome.sysprep_generalize:
                    vm.guest_state = "sysprepped"
                self._guest_stopped(vm)
                vm.run_command_busy = False
                if ending == "Canceled":
                    op.finish(
                        "Canceled",
                        error={"code": "OperationCanceled", "message": "The operation was canceled."},
                    )
                else:
                    op.fail(
                        "VMAgentStatusCommunicationError",
                        f"VM '{vm.name}' has not reported status for VM agent or extensions. Please verify the VM "
                        "has a running VM agent, and can establish outbound connections to Azure storage.",
                    )

            self.lifecycle.schedule(duration + delay, sysprep_done)
            return self.accepted(ctx, op)

        def completed(at: float) -> None:
            vm.run_command_busy = False
            if outcome.sysprep_generalize:
                vm.guest_state = "sysprepped"
            result = guest.windows_result(outcome) if vm.os_type == "Windows" else guest.linux_result(outcome)
            if outcome.shutdown:
                # Linux guest shutdown: the agent reports before the OS goes down, then the VM stops.
                self.lifecycle.schedule(
                    self.latency.guest_shutdown_s, lambda _a: self._guest_stopped(vm), base=at
                )
            op.succeed(result)

        self.lifecycle.schedule(duration, completed)
        return self.accepted(ctx, op)

    def _guest_stopped(self, vm: VirtualMachine) -> None:
        if vm.power in ("running", "stopping"):
            self._preempt(vm)
            vm.power = "stopped"
            vm.provisioning_state = "Succeeded"

    def put_vm(self, ctx: RequestContext, sub: str, rg: str, name: str, body: dict[str, Any]) -> Reply:
        group = self.require_rg(sub, rg)
        vm_id = rid(group.subscription, group.name, f"Microsoft.Compute/virtualMachines/{name}")
        existing = self.vms.get(vm_id.lower())
        props = body.get("properties") or {}
        if existing is not None:
            new_os = _req(props, "storageProfile", "osDisk", "managedDisk", "id")
            if new_os and new_os.lower() != existing.os_disk_id.lower():
                raise ArmError(
                    409,
                    "PropertyChangeNotAllowed",
                    "Changing property 'osDisk.managedDisk.id' is not allowed.",
                    target="osDisk.managedDisk.id",
                )
            if "tags" in body:
                existing.tags = dict(body.get("tags") or {})
            size = _req(props, "hardwareProfile", "vmSize")
            if size:
                existing.vm_size = size
            op = self.start_op(
                ctx,
                family="operations",
                location=existing.location,
                resource_id=vm_id,
                sub=group.subscription,
            )
            op.succeed()
            return self.accepted(ctx, op, status=200, body=existing.to_arm(self.disks), location=False)
        location = self._check_region(body.get("location"))
        vm_size = _req(props, "hardwareProfile", "vmSize")
        if not vm_size:
            raise invalid_parameter(
                "Required parameter 'hardwareProfile.vmSize' is missing (null).", "hardwareProfile.vmSize"
            )
        os_disk = _req(props, "storageProfile", "osDisk") or {}
        create_option = str(os_disk.get("createOption") or "")
        if create_option.lower() != "attach":
            raise invalid_parameter(
                f"azsim creates VMs only from an existing OS disk (createOption 'Attach'); got '{create_option}'.",
                "osDisk.createOption",
            )
        os_type = os_disk.get("osType")
        if os_type not in ("Linux", "Windows"):
            raise invalid_parameter("Required parameter 'osDisk.osType' is missing (null).", "osDisk.osType")
        disk_id = _req(os_disk, "managedDisk", "id")
        if not disk_id:
            raise invalid_parameter(
                "Required parameter 'osDisk.managedDisk.id' is missing (null).", "osDisk.managedDisk.id"
            )
        disk = self._attachable_disk(str(disk_id), location, vm_id)
        data_refs: list[tuple[int, ManagedDisk]] = []
        seen_luns: set[int] = set()
        for i, dd in enumerate(_req(props, "storageProfile", "dataDisks") or []):
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
            data_refs.append(
                (lun, self._attachable_disk(str(_req(dd, "managedDisk", "id") or ""), location, vm_id))
            )
        security = _req(props, "securityProfile", "securityType") or disk.security_type or "Standard"
        vm = VirtualMachine(
            subscription=group.subscription,
            resource_group=group.name,
            name=name,
            location=location,
            os_type=os_type,
            hyper_v_generation=disk.hyper_v_generation or "V1",
            security_type=security,
            architecture=disk.architecture,
            vm_size=vm_size,
            power="starting",
            os_disk_id=disk.id,
            data_disks=[DataDiskRef(lun, d.id) for lun, d in data_refs],
            provisioning_state="Creating",
            create_option="Attach",
            tags=dict(body.get("tags") or {}),
            time_created=utc_iso(),
            network_profile=props.get("networkProfile"),
        )
        disk.managed_by = vm_id
        for _, d in data_refs:
            d.managed_by = vm_id
        self.vms[vm_id.lower()] = vm
        op = self.start_op(
            ctx, family="operations", location=location, resource_id=vm_id, sub=group.subscription
        )

        def created(_at: float) -> None:
            vm.power = "running"
            vm.provisioning_state = "Succeeded"
            op.succeed()

        self.lifecycle.schedule(self.latency.vm_create_s, created)
        return self.accepted(ctx, op, status=201, body=vm.to_arm(self.disks), location=False)

    def _attachable_disk(self, disk_id: str, location: str, vm_id: str) -> ManagedDisk:
        disk = self.disks.get(disk_id.lower())
        if disk is None or disk.kind != "disks":
            m = re.search(r"/resourceGroups/([^/]+)/.*/disks/([^/]+)$", disk_id, re.IGNORECASE)
            raise resource_not_found(
                "Microsoft.Compute/disks", m.group(2) if m else disk_id, m.group(1) if m else "?"
            )
        if disk.managed_by and disk.managed_by.lower() != vm_id.lower():
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Disk '{disk.name}' is already attached to VM '{disk.managed_by}'.",
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

    def delete_vm(self, ctx: RequestContext, sub: str, rg: str, name: str) -> Reply:
        vm = self.get_vm(sub, rg, name)
        op = self.start_op(
            ctx, family="operations", location=vm.location, resource_id=vm.id, sub=vm.subscription
        )
        vm.provisioning_state = "Deleting"

        def gone(_at: float) -> None:
            for disk_id in [vm.os_disk_id, *[r.disk_id for r in vm.data_disks]]:
                d = self.disks.get(disk_id.lower())
                if d is not None and d.managed_by and d.managed_by.lower() == vm.id.lower():
                    d.managed_by = None
            self.vms.pop(vm.id.lower(), None)
            op.succeed()

        self.lifecycle.schedule(self.latency.vm_delete_s, gone)
        return self.accepted(ctx, op)

    # ------------------------------------------------------------------ disks and snapshots

    def list_managed(self, kind: str, sub: str, rg: str | None) -> list[ManagedDisk]:
        """Disks or snapshots of one resource group, or of the whole subscription (``rg`` None)."""
        if rg is not None:
            self.require_rg(sub, rg)
        return [
            d
            for d in self.disks.values()
            if d.kind == kind
            and d.subscription.lower() == sub.lower()
            and (rg is None or d.resource_group.lower() == rg.lower())
        ]

    def put_managed(
        self, ctx: RequestContext, kind: str, sub: str, rg: str, name: str, body: dict[str, Any]
    ) -> Reply:
        group = self.require_rg(sub, rg)
        my_id = rid(group.subscription, group.name, f"Microsoft.Compute/{kind}/{name}")
        props = body.get("properties") or {}
        creation = props.get("creationData") or {}
        existing = self.disks.get(my_id.lower())
        if existing is not None:
            src = creation.get("sourceResourceId")
            if src and existing.source_resource_id and src.lower() != existing.source_resource_id.lower():
                raise ArmError(
                    409,
                    "PropertyChangeNotAllowed",
                    "Changing property 'creationData.sourceResourceId' is not allowed.",
                    target="creationData.sourceResourceId",
                )
            if "tags" in body:
                existing.tags = dict(body.get("tags") or {})
            op = self.start_op(
                ctx,
                family="DiskOperations",
                location=existing.location,
                resource_id=my_id,
                sub=group.subscription,
            )
            op.succeed()
            return self.accepted(ctx, op, status=200, body=self.disk_json(existing))
        location = self._check_region(body.get("location"))
        option = str(creation.get("createOption") or "")
        if option.lower() != "copy":
            raise invalid_parameter(
                f"azsim supports createOption 'Copy' for {kind}; got '{option}'.",
                "properties.creationData.createOption",
            )
        source_id = str(creation.get("sourceResourceId") or "")
        source = self.disks.get(source_id.lower())
        if source is None:
            m = re.search(
                r"/resourceGroups/([^/]+)/providers/Microsoft\.Compute/(disks|snapshots)/([^/]+)$",
                source_id,
                re.IGNORECASE,
            )
            if not m:
                raise invalid_parameter(
                    f"Parameter 'sourceResourceId' '{source_id}' is not a valid disk or snapshot resource id.",
                    "properties.creationData.sourceResourceId",
                )
            raise resource_not_found(f"Microsoft.Compute/{m.group(2)}", m.group(3), m.group(1))
        if normalize(source.location) != location:
            raise bad_request(
                f"Source '{source.id}' is in region '{source.location}'; createOption 'Copy' needs the "
                f"{kind[:-1]} in the same region (use CopyStart across regions, not modelled by azsim)."
            )
        if source.provisioning_state != "Succeeded":
            raise ArmError(409, "Conflict", f"Source '{source.name}' is still being provisioned.")
        sku = _req(body, "sku", "name") or ("Standard_LRS" if kind == "snapshots" else source.sku)
        blob = self._new_blob_name(kind[:-1], group.name, name)
        self.disk_store.copy_blob(source.blob_name, blob)
        size = int(props.get("diskSizeGB") or source.size_gib)
        if size < source.size_gib:
            raise bad_request(f"Disk size {size} GB is smaller than the source size {source.size_gib} GB.")
        created = ManagedDisk(
            kind=kind,
            subscription=group.subscription,
            resource_group=group.name,
            name=name,
            location=location,
            sku=sku,
            size_gib=size,
            blob_name=blob,
            content_bytes=source.content_bytes,
            os_type=source.os_type,
            hyper_v_generation=props.get("hyperVGeneration") or source.hyper_v_generation,
            security_type=source.security_type,
            architecture=source.architecture,
            create_option="Copy",
            source_resource_id=source.id,
            source_unique_id=source.unique_id,
            incremental=bool(props.get("incremental", False)) if kind == "snapshots" else False,
            provisioning_state="Creating" if kind == "disks" else "Updating",
            time_created=utc_iso(),
            tags=dict(body.get("tags") or {}),
        )
        self.disks[created.id.lower()] = created
        op = self.start_op(
            ctx, family="DiskOperations", location=location, resource_id=created.id, sub=group.subscription
        )
        seconds = self.latency.snapshot_s(size) if kind == "snapshots" else self.latency.disk_from_snapshot_s

        def provisioned(_at: float) -> None:
            created.provisioning_state = "Succeeded"
            op.succeed()

        self.lifecycle.schedule(seconds, provisioned)
        # Snapshot/disk PUT must answer 200/202 (201 is rejected by the SDK: azure-arm-facts.md §0.3).
        return self.accepted(ctx, op, status=202, body=self.disk_json(created))

    def delete_managed(self, ctx: RequestContext, kind: str, sub: str, rg: str, name: str) -> Reply:
        group = self.require_rg(sub, rg)
        my_id = rid(group.subscription, group.name, f"Microsoft.Compute/{kind}/{name}")
        disk = self.disks.get(my_id.lower())
        if disk is None:
            return Reply(204, None)  # DELETE of a missing resource is a no-op in ARM
        if disk.managed_by:
            raise operation_not_allowed(f"Disk {disk.name} is attached to VM {disk.managed_by}.")
        op = self.start_op(
            ctx, family="DiskOperations", location=disk.location, resource_id=disk.id, sub=disk.subscription
        )
        disk.delete_pending = True
        disk.provisioning_state = "Deleting"
        disk.delete_ops.append(op)
        if disk.access is None:
            self._complete_delete(disk)
        # else: blocked while the export SAS is active; completes on endGetAccess or SAS expiry
        # (azure-behaviours-verified.md Q4: Azure/azure-cli#6927).
        return self.accepted(ctx, op)

    def _complete_delete(self, disk: ManagedDisk) -> None:
        def gone(_at: float) -> None:
            if self.disks.get(disk.id.lower()) is disk:
                self.disks.pop(disk.id.lower())
                self.disk_store.delete_blob(disk.blob_name)
                self._blobs.discard(disk.blob_name)
            for op in disk.delete_ops:
                op.succeed()

        self.lifecycle.schedule(1.0, gone)

    def begin_get_access(
        self, ctx: RequestContext, kind: str, sub: str, rg: str, name: str, body: dict[str, Any]
    ) -> Reply:
        disk = self.get_managed(kind, sub, rg, name)
        access = str(body.get("access") or "")
        if access not in ("Read", "Write"):
            raise invalid_parameter(
                f"The value '{access}' of parameter 'access' is not valid; expected 'Read' (azsim does not model 'Write').",
                "grantAccessData.access",
            )
        if access == "Write":
            raise invalid_parameter(
                "azsim models read access only; 'Write' (upload) is not supported.", "access"
            )
        duration = body.get("durationInSeconds")
        if not isinstance(duration, int) or duration <= 0:
            raise invalid_parameter(
                "Required parameter 'durationInSeconds' must be a positive integer.", "durationInSeconds"
            )
        if disk.delete_pending:
            raise ArmError(409, "Conflict", f"{kind[:-1].capitalize()} '{disk.name}' is being deleted.")
        if disk.provisioning_state != "Succeeded":
            raise ArmError(
                409, "Conflict", f"{kind[:-1].capitalize()} '{disk.name}' is still being provisioned."
            )
        power = self.vm_power_of(disk)
        if kind == "disks" and power is not None and power not in ("deallocated",):
            raise operation_not_allowed(
                f"Operation 'beginGetAccess' is not allowed on disk '{disk.name}' since it is attached to VM "
                f"'{disk.managed_by}' that is not deallocated."
            )
        if disk.access is not None:  # a new grant replaces the previous one
            self.disk_store.revoke(disk.blob_name, disk.access.access_id)
            if disk.access.expiry_entry is not None:
                disk.access.expiry_entry.cancelled = True
        access_id = new_guid()
        sas = self.disk_store.grant_read(disk.blob_name, access_id, duration)
        grant = DiskAccess(access_id, self.lifecycle.now() + self.lifecycle.real(duration))
        disk.access = grant

        def expire(_at: float) -> None:
            if disk.access is grant:
                self._end_access(disk)

        grant.expiry_entry = self.lifecycle.schedule(float(duration), expire)
        op = self.start_op(
            ctx, family="DiskOperations", location=disk.location, resource_id=disk.id, sub=disk.subscription
        )
        result = {"accessSAS": sas}
        self.lifecycle.schedule(self.latency.grant_access_s, lambda _a: op.succeed(result))
        return self.accepted(ctx, op)

    def _end_access(self, disk: ManagedDisk) -> None:
        if disk.access is None:
            return
        self.disk_store.revoke(disk.blob_name, disk.access.access_id)
        if disk.access.expiry_entry is not None:
            disk.access.expiry_entry.cancelled = True
        disk.access = None
        if disk.delete_pending:
            self._complete_delete(disk)

    def end_get_access(self, ctx: RequestContext, kind: str, sub: str, rg: str, name: str) -> Reply:
        disk = self.get_managed(kind, sub, rg, name)
        # The SAS stops working at once; the operation reports completion after the usual delay.
        self._end_access(disk)
        op = self.start_op(
            ctx, family="DiskOperations", location=disk.location, resource_id=disk.id, sub=disk.subscription
        )
        self.lifecycle.schedule(self.latency.revoke_access_s, lambda _a: op.succeed())
        return self.accepted(ctx, op)

    # ------------------------------------------------------------------ galleries

    def list_galleries(self, sub: str, rg: str | None) -> list[Gallery]:
        """Galleries of one resource group, or of the whole subscription (``rg`` None)."""
        if rg is not None:
            self.require_rg(sub, rg)
        return [
            g
            for g in self.galleries.values()
            if g.subscription.lower() == sub.lower()
            and (rg is None or g.resource_group.lower() == rg.lower())
        ]

    def put_gallery(self, ctx: RequestContext, sub: str, rg: str, name: str, body: dict[str, Any]) -> Reply:
        group = self.require_rg(sub, rg)
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._]{0,78}[A-Za-z0-9])?", name):
            raise invalid_parameter(
                f"The gallery name '{name}' is invalid. It may contain letters, digits, dots and underscores, "
                "may not start or end with a dot or underscore, and is at most 80 characters.",
                "galleryName",
            )
        location = self._check_region(body.get("location"))
        my_id = rid(group.subscription, group.name, f"Microsoft.Compute/galleries/{name}")
        props = body.get("properties") or {}
        existing = self.galleries.get(my_id.lower())
        op = self.start_op(
            ctx, family="capsOperations", location=location, resource_id=my_id, sub=group.subscription
        )
        if existing is not None:
            if normalize(existing.location) != location:
                raise ArmError(
                    409,
                    "InvalidResourceLocation",
                    f"The resource '{name}' already exists in location '{existing.location}' in resource group "
                    f"'{group.name}'. A resource with the same name cannot be created in location '{location}'. "
                    "Please select a new resource name.",
                )
            existing.description = props.get("description", existing.description) or ""
            existing.tags = dict(body.get("tags") or existing.tags)
            op.succeed()
            return self.accepted(ctx, op, status=200, body=existing.to_arm(), location=False)
        gallery = Gallery(group.subscription, group.name, name, location, props.get("description") or "")
        gallery.unique_name = f"{group.subscription}-{name.upper()}"
        gallery.tags = dict(body.get("tags") or {})
        gallery.provisioning_state = "Creating"
        self.galleries[my_id.lower()] = gallery

        def ready(_at: float) -> None:
            gallery.provisioning_state = "Succeeded"
            op.succeed()

        self.lifecycle.schedule(self.latency.gallery_s, ready)
        return self.accepted(ctx, op, status=201, body=gallery.to_arm(), location=False)

    def delete_gallery(self, ctx: RequestContext, sub: str, rg: str, name: str) -> Reply:
        gallery = self.get_gallery(sub, rg, name)
        if any(img.gallery is gallery for img in self.images.values()):
            raise ArmError(
                409, "CannotDeleteResource", "Can not delete resource before nested resources are deleted."
            )
        self.galleries.pop(gallery.id.lower())
        op = self.start_op(
            ctx,
            family="capsOperations",
            location=gallery.location,
            resource_id=gallery.id,
            sub=gallery.subscription,
        )
        self.lifecycle.schedule(self.latency.gallery_delete_s, lambda _a: op.succeed())
        return self.accepted(ctx, op)

    def list_images(self, sub: str, rg: str, gallery: str) -> list[GalleryImage]:
        g = self.get_gallery(sub, rg, gallery)
        return [img for img in self.images.values() if img.gallery is g]

    def put_image(
        self, ctx: RequestContext, sub: str, rg: str, gallery: str, name: str, body: dict[str, Any]
    ) -> Reply:
        g = self.get_gallery(sub, rg, gallery)
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,78}[A-Za-z0-9])?", name):
            raise invalid_parameter(
                f"The gallery image name '{name}' is invalid. It may contain letters, digits, dots and dashes in "
                "the middle, and is at most 80 characters.",
                "galleryImageName",
            )
        location = self._check_region(body.get("location"))
        if location != g.location:
            raise invalid_parameter(
                f"The location '{location}' of gallery image '{name}' must match the location '{g.location}' of "
                f"gallery '{g.name}'.",
                "galleryImage.location",
            )
        props = body.get("properties") or {}
        for required in ("osType", "osState", "identifier"):
            if not props.get(required):
                raise invalid_parameter(
                    f"Required parameter 'galleryImage.properties.{required}' is missing (null).",
                    f"galleryImage.properties.{required}",
                )
        ident = props["identifier"]
        for part in ("publisher", "offer", "sku"):
            if not ident.get(part):
                raise invalid_parameter(
                    f"Required parameter 'galleryImage.properties.identifier.{part}' is missing (null).",
                    f"galleryImage.properties.identifier.{part}",
                )
        if props["osType"] not in ("Linux", "Windows"):
            raise invalid_parameter(
                f"The value '{props['osType']}' of 'osType' is invalid.", "galleryImage.properties.osType"
            )
        if props["osState"] not in ("Generalized", "Specialized"):
            raise invalid_parameter(
                f"The value '{props['osState']}' of 'osState' is invalid.", "galleryImage.properties.osState"
            )
        hyper_v = props.get("hyperVGeneration") or "V1"
        arch = props.get("architecture") or "x64"
        features = [dict(f) for f in (props.get("features") or [])]
        for f in features:
            if f.get("name", "").lower() == "securitytype" and f.get("value", "").lower() not in {
                k for k in _SECURITY_COMPAT if k
            }:
                raise invalid_parameter(
                    f"The value '{f.get('value')}' of feature 'SecurityType' is invalid.", "features"
                )
        my_id = f"{g.id}/images/{name}"
        existing = self.images.get(my_id.lower())
        op = self.start_op(
            ctx, family="capsOperations", location=location, resource_id=my_id, sub=g.subscription
        )
        if existing is not None:
            for field_name, old, new in (
                ("osType", existing.os_type, props["osType"]),
                ("osState", existing.os_state, props["osState"]),
                ("hyperVGeneration", existing.hyper_v_generation, hyper_v),
                ("architecture", existing.architecture, arch),
            ):
                if old != new:
                    raise ArmError(
                        409,
                        "PropertyChangeNotAllowed",
                        f"Changing property 'galleryImage.properties.{field_name}' is not allowed.",
                        target=f"galleryImage.properties.{field_name}",
                    )
            existing.description = props.get("description") or existing.description
            existing.tags = dict(body.get("tags") or existing.tags)
            op.succeed()
            return self.accepted(ctx, op, status=200, body=existing.to_arm(), location=False)
        image = GalleryImage(
            gallery=g,
            name=name,
            location=location,
            os_type=props["osType"],
            os_state=props["osState"],
            hyper_v_generation=hyper_v,
            architecture=arch,
            identifier={k: ident[k] for k in ("publisher", "offer", "sku")},
            features=features,
            description=props.get("description") or "",
            tags=dict(body.get("tags") or {}),
            provisioning_state="Creating",
        )
        self.images[my_id.lower()] = image

        def ready(_at: float) -> None:
            image.provisioning_state = "Succeeded"
            op.succeed()

        self.lifecycle.schedule(self.latency.gallery_image_s, ready)
        return self.accepted(ctx, op, status=201, body=image.to_arm(), location=False)

    def delete_image(self, ctx: RequestContext, sub: str, rg: str, gallery: str, name: str) -> Reply:
        img = self.get_image(sub, rg, gallery, name)
        if any(v.image is img for v in self.versions.values()):
            raise ArmError(
                409, "CannotDeleteResource", "Can not delete resource before nested resources are deleted."
            )
        self.images.pop(img.id.lower())
        op = self.start_op(
            ctx,
            family="capsOperations",
            location=img.location,
            resource_id=img.id,
            sub=img.gallery.subscription,
        )
        self.lifecycle.schedule(self.latency.gallery_delete_s, lambda _a: op.succeed())
        return self.accepted(ctx, op)

    # ------------------------------------------------------------------ image versions

    def list_versions(self, sub: str, rg: str, gallery: str, image: str) -> list[GalleryImageVersion]:
        img = self.get_image(sub, rg, gallery, image)
        return [v for v in self.versions.values() if v.image is img]

    def replication_fractions(self, version: GalleryImageVersion) -> dict[str, float]:
        return {
            r.region: (self.lifecycle.fraction(r.start, r.duration_s) if r.start is not None else 0.0)
            for r in version.regions
        }

    def _target_regions(
        self, version_location: str, publishing: dict[str, Any], path: str
    ) -> list[RegionReplication]:
        raw = publishing.get("targetRegions")
        default_count = int(publishing.get("replicaCount") or 1)
        default_sku = publishing.get("storageAccountType") or "Standard_LRS"
        if not raw:
            return [RegionReplication(version_location, default_count, default_sku, False)]
        out: list[RegionReplication] = []
        seen: set[str] = set()
        for i, tr in enumerate(raw):
            name = tr.get("name") if isinstance(tr, dict) else None
            if not name:
                raise invalid_parameter(
                    f"Required parameter 'targetRegions[{i}].name' is missing (null).",
                    f"{path}.targetRegions[{i}].name",
                )
            short = normalize(name)
            if short not in self.regions:
                raise invalid_parameter(
                    f"The region '{name}' in target publishing regions is not a valid region. Valid regions: "
                    f"{', '.join(sorted(self.regions))}.",
                    f"{path}.targetRegions[{i}].name",
                )
            if short in seen:
                raise invalid_parameter(
                    "Duplicate regions are not allowed in target publishing regions.", f"{path}.targetRegions"
                )
            seen.add(short)
            count = int(tr.get("regionalReplicaCount") or default_count)
            if not 1 <= count <= 100:
                raise invalid_parameter(
                    f"Regional replica count {count} is out of range; expected 1 to 100.",
                    f"{path}.targetRegions[{i}].regionalReplicaCount",
                )
            out.append(
                RegionReplication(
                    short,
                    count,
                    tr.get("storageAccountType") or default_sku,
                    bool(tr.get("excludeFromLatest", False)),
                )
            )
        if version_location not in seen:
            raise invalid_parameter(
                f"Gallery image version publishing profile regions '{', '.join(r.region for r in out)}' must contain "
                f"the location of image version '{version_location}'.",
                f"{path}.targetRegions",
            )
        return out

    def _resolve_source(
        self, ctx: RequestContext, props: dict[str, Any]
    ) -> tuple[dict[str, str], DiskImage, list[DiskImage], dict[str, Any]]:
        """Source -> (source ref, os disk image, data disk images, traits to match against the definition)."""
        storage = props.get("storageProfile") or {}
        src = storage.get("source") or {}
        vm_id = src.get("virtualMachineId") or (
            src.get("id") if "/virtualmachines/" in str(src.get("id", "")).lower() else None
        )
        if vm_id:
            vm = self.vms.get(str(vm_id).lower())
            if vm is None:
                raise invalid_parameter(
                    f"The resource with id '{vm_id}' was not found.",
                    "galleryImageVersion.properties.storageProfile.source.virtualMachineId",
                )
            ctx.authorize_linked("Microsoft.Compute/virtualMachines/write", vm.id)
            os_disk = self.disks[vm.os_disk_id.lower()]
            traits: dict[str, Any] = {
                "id": vm.id,
                "osType": vm.os_type,
                "osState": "Generalized" if vm.generalized else "Specialized",
                "hyperVGeneration": vm.hyper_v_generation,
                "securityType": vm.security_type,
                "architecture": vm.architecture,
                "location": vm.location,
                "is_vm": True,
            }
            data = []
            total = os_disk.size_gib
            for ref in vm.data_disks:
                d = self.disks[ref.disk_id.lower()]
                data.append(DiskImage(ref.lun, d.size_gib, d.id, "None"))
                total += d.size_gib
            traits["total_gib"] = total
            return (
                {"virtualMachineId": vm.id},
                DiskImage(None, os_disk.size_gib, os_disk.id, "ReadWrite"),
                data,
                traits,
            )
        os_image = storage.get("osDiskImage") or {}
        os_src = _req(os_image, "source", "id")
        if not os_src:
            if _req(os_image, "source", "uri") or _req(os_image, "source", "storageAccountId"):
                raise invalid_parameter(
                    "azsim does not model VHD blob sources; use a VM or disk/snapshot source.",
                    "galleryImageVersion.properties.storageProfile.osDiskImage.source",
                )
            raise invalid_parameter(
                "Required parameter 'storageProfile.source' or 'storageProfile.osDiskImage.source.id' is missing (null).",
                "galleryImageVersion.properties.storageProfile",
            )

        def disk_source(source_id: str, target: str) -> ManagedDisk:
            d = self.disks.get(source_id.lower())
            if d is None:
                raise invalid_parameter(f"The resource with id '{source_id}' was not found.", target)
            if d.provisioning_state != "Succeeded":
                raise ArmError(409, "Conflict", f"The source '{d.id}' is still being provisioned.")
            ctx.authorize_linked(f"Microsoft.Compute/{d.kind}/write", d.id)
            return d

        os_d = disk_source(str(os_src), "galleryImageVersion.properties.storageProfile.osDiskImage.source.id")
        data = []
        total = os_d.size_gib
        luns: set[int] = set()
        for i, ddi in enumerate(storage.get("dataDiskImages") or []):
            lun = ddi.get("lun")
            target = f"galleryImageVersion.properties.storageProfile.dataDiskImages[{i}]"
            if not isinstance(lun, int) or lun in luns:
                raise invalid_parameter(
                    f"Data disk image LUN '{lun}' is missing or used twice.", f"{target}.lun"
                )
            luns.add(lun)
            sid = _req(ddi, "source", "id")
            if not sid:
                raise invalid_parameter(
                    "Required parameter 'source.id' is missing (null).", f"{target}.source.id"
                )
            d = disk_source(str(sid), f"{target}.source.id")
            data.append(DiskImage(lun, d.size_gib, d.id, ddi.get("hostCaching") or "None"))
            total += d.size_gib
        disk_traits: dict[str, Any] = {
            "id": os_d.id,
            "osType": os_d.os_type,
            "osState": None,  # a disk or snapshot carries no OS state: the definition's is taken
            "hyperVGeneration": os_d.hyper_v_generation,
            "securityType": os_d.security_type or "Standard",
            "architecture": os_d.architecture,
            "location": os_d.location,
            "is_vm": False,
            "total_gib": total,
        }
        return (
            {},
            DiskImage(None, os_d.size_gib, os_d.id, os_image.get("hostCaching") or "ReadWrite"),
            data,
            disk_traits,
        )

    def _check_against_definition(
        self, image: GalleryImage, traits: dict[str, Any], version_location: str
    ) -> str | None:
        """Raise the synchronous mismatches; return a deferred (LRO) failure message for Hyper-V generation."""
        sid = traits["id"]
        if traits["osType"] and traits["osType"] != image.os_type:
            raise bad_request(
                f"The resource with id '{sid}' has a different OS type ['{traits['osType']}'] than the parent "
                f"gallery image OS type generation ['{image.os_type}']."
            )
        if traits["osState"] is not None and traits["osState"] != image.os_state:
            if traits["osState"] == "Specialized":
                raise bad_request(
                    f"The resource with id '{sid}' has a different OS state ['Specialized'] than the parent gallery "
                    f"image OS state ['{image.os_state}']."
                )
            raise bad_request(
                f"Cannot create Gallery Image Version from: {sid} since the OS State in the parent gallery image "
                f"('{image.os_state}') is not '{traits['osState']}'."
            )
        feature = (image.security_type or "").lower() or None
        if traits["is_vm"] and feature == "trustedlaunchsupported":
            raise invalid_parameter(
                f"The security type 'TrustedLaunchSupported' is not supported for the source id '{sid}'. Currently "
                "only Vhd Blob, User Image and Gallery Image Version sources are supported for "
                "'TrustedLaunchSupported' images.",
                "galleryImageVersion.properties.storageProfile.source.virtualMachineId",
            )
        allowed = _SECURITY_COMPAT.get(feature, set())
        if traits["securityType"] not in allowed:
            raise invalid_parameter(
                f"The resource with id '{sid}' has security type '{traits['securityType']}', which the parent gallery "
                f"image (SecurityType feature '{image.security_type or 'none'}') does not support.",
                "galleryImageVersion.properties.storageProfile",
            )
        if traits["architecture"] != image.architecture:
            raise invalid_parameter(
                f"The resource with id '{sid}' has CPU architecture '{traits['architecture']}' but the parent gallery "
                f"image architecture is '{image.architecture}'.",
                "galleryImageVersion.properties.storageProfile",
            )
        if normalize(traits["location"]) != version_location:
            raise invalid_parameter(
                f"The source '{sid}' is in region '{traits['location']}'; it must be in the image version's region "
                f"'{version_location}'.",
                "galleryImageVersion.properties.storageProfile",
            )
        if traits["hyperVGeneration"] and traits["hyperVGeneration"] != image.hyper_v_generation:
            return (
                f"The resource with id '{sid}' has a different Hypervisor generation ['{traits['hyperVGeneration']}'] "
                f"than the parent gallery image Hypervisor generation ['{image.hyper_v_generation}']."
            )
        return None

    def put_version(
        self,
        ctx: RequestContext,
        sub: str,
        rg: str,
        gallery: str,
        image_name: str,
        name: str,
        body: dict[str, Any],
    ) -> Reply:
        image = self.get_image(sub, rg, gallery, image_name)
        m = _VERSION_NAME.match(name)
        if not m or any(int(p) > _INT32_MAX for p in m.groups()):
            raise invalid_parameter(
                f"The gallery image version name '{name}' is invalid. It must follow the Major(int32).Minor(int32)."
                "Patch(int32) format.",
                "galleryImageVersionName",
            )
        location = self._check_region(body.get("location"))
        if location != image.location:
            raise invalid_parameter(
                f"The location '{location}' of gallery image version '{name}' must match the location "
                f"'{image.location}' of gallery image '{image.name}'.",
                "galleryImageVersion.location",
            )
        props = body.get("properties") or {}
        publishing = props.get("publishingProfile") or {}
        regions = self._target_regions(
            location, publishing, "galleryImageVersion.properties.publishingProfile"
        )
        source, os_disk, data_disks, traits = self._resolve_source(ctx, props)
        my_id = f"{image.id}/versions/{name}"
        existing = self.versions.get(my_id.lower())
        if existing is not None:
            return self._re_put_version(
                ctx, existing, source, os_disk, data_disks, publishing, props, body, regions
            )
        deferred_failure = self._check_against_definition(image, traits, location)
        version = GalleryImageVersion(
            image=image,
            name=name,
            location=location,
            source=source,
            os_disk=os_disk,
            data_disks=data_disks,
            regions=regions,
            replica_count=int(publishing.get("replicaCount") or 1),
            exclude_from_latest=bool(publishing.get("excludeFromLatest", False)),
            end_of_life_date=publishing.get("endOfLifeDate"),
            storage_account_type=publishing.get("storageAccountType") or "Standard_LRS",
            replication_mode=publishing.get("replicationMode") or "Full",
            published_date=utc_iso(),
            allow_deletion_of_replicated_locations=bool(
                _req(props, "safetyProfile", "allowDeletionOfReplicatedLocations") is not False
            ),
            tags=dict(body.get("tags") or {}),
            total_bytes=int(traits["total_gib"]) * GIB,
        )
        self.versions[my_id.lower()] = version
        op = self.start_op(
            ctx, family="capsOperations", location=location, resource_id=my_id, sub=image.gallery.subscription
        )
        if deferred_failure is not None:
            # Accepted, then the operation fails with Conflict at once (azure-behaviours-verified.md Q3a).
            def mismatch(_at: float) -> None:
                version.provisioning_state = "Failed"
                for r in version.regions:
                    r.state, r.details = "Failed", deferred_failure
                op.fail("Conflict", deferred_failure)

            self.lifecycle.schedule(0, mismatch)
            return self.accepted(ctx, op, status=201, body=version.to_arm(), location=False)
        self._start_replication(ctx, version, version.regions, op)
        return self.accepted(ctx, op, status=201, body=version.to_arm(), location=False)

    def _failing_regions(self, ctx: RequestContext) -> dict[str, str]:
        return {
            normalize(e.region): e.message
            for e in ctx.effects
            if getattr(e, "type", None) == "replicationFailure"
        }

    def _start_replication(
        self,
        ctx: RequestContext,
        version: GalleryImageVersion,
        regions: list[RegionReplication],
        op: Operation,
    ) -> None:
        failing = self._failing_regions(ctx)
        full = self.latency.replication_s(version.total_bytes)
        source_region = next((r for r in regions if r.region == version.location), None)
        others = [r for r in regions if r is not source_region]

        def finish_if_done() -> None:
            states = {r.state for r in version.regions}
            if "Replicating" in states:
                return
            if "Failed" in states:
                version.provisioning_state = "Failed"
                failed = [r.region for r in version.regions if r.state == "Failed"]
                op.fail(
                    "ReplicationFailed",
                    f"Replication of gallery image version '{version.name}' failed in region(s) "
                    f"'{', '.join(failed)}'. {'; '.join(r.details for r in version.regions if r.details)}",
                )
            else:
                version.provisioning_state = "Succeeded"
                op.succeed()

        def start(region: RegionReplication, seconds: float, base: float | None) -> None:
            region.start = self.lifecycle.now() if base is None else base
            region.duration_s = seconds
            region.state = "Replicating"

            def done(at: float) -> None:
                if region not in version.regions:
                    return
                if region.region in failing:
                    region.state = "Failed"
                    region.details = failing[region.region]
                else:
                    region.state = "Completed"
                if region is source_region:
                    for other in others:
                        start(other, full, at)
                finish_if_done()

            self.lifecycle.schedule(seconds, done, base=region.start)

        for r in regions:
            r.state = "Replicating"
            r.start = None
        if source_region is not None:
            start(source_region, full * self.latency.source_region_fraction, None)
        else:
            for other in others:
                start(other, full, None)

    def _re_put_version(
        self,
        ctx: RequestContext,
        existing: GalleryImageVersion,
        source: dict[str, str],
        os_disk: DiskImage,
        data_disks: list[DiskImage],
        publishing: dict[str, Any],
        props: dict[str, Any],
        body: dict[str, Any],
        regions: list[RegionReplication],
    ) -> Reply:
        """Q7: a source change is PropertyChangeNotAllowed; adding/changing data disks is refused; else update."""
        if existing.source:
            old_key, old_id = next(iter(existing.source.items()))
            new_id = source.get(old_key) or os_disk.source_id
            if new_id.lower() != old_id.lower():
                prop = (
                    "storageProfile.source.virtualMachineId"
                    if old_key == "virtualMachineId"
                    else "storageProfile.source.id"
                )
                raise ArmError(
                    409,
                    "PropertyChangeNotAllowed",
                    f"Changing property 'galleryImageVersion.properties.{prop}' is not allowed.",
                    target=f"galleryImageVersion.properties.{prop}",
                )
        else:
            if source or os_disk.source_id.lower() != existing.os_disk.source_id.lower():
                prop = "storageProfile.osDiskImage.source.id"
                raise ArmError(
                    409,
                    "PropertyChangeNotAllowed",
                    f"Changing property 'galleryImageVersion.properties.{prop}' is not allowed.",
                    target=f"galleryImageVersion.properties.{prop}",
                )
            old = {d.lun: d.source_id.lower() for d in existing.data_disks}
            new = {d.lun: d.source_id.lower() for d in data_disks}
            if old.keys() != new.keys():
                raise ArmError(
                    409,
                    "OperationNotAllowed",
                    "Adding new Data Disks or changing the LUN of a Data Disk in an existing Image version is not allowed.",
                )
            for lun, sid in new.items():
                if old[lun] != sid:
                    prop = f"storageProfile.dataDiskImages[lun={lun}].source.id"
                    raise ArmError(
                        409,
                        "PropertyChangeNotAllowed",
                        f"Changing property 'galleryImageVersion.properties.{prop}' is not allowed.",
                        target=f"galleryImageVersion.properties.{prop}",
                    )
        if "tags" in body:
            existing.tags = dict(body.get("tags") or {})
        return self._update_publishing(ctx, existing, publishing, regions, status=200)

    def _update_publishing(
        self,
        ctx: RequestContext,
        version: GalleryImageVersion,
        publishing: dict[str, Any],
        regions: list[RegionReplication] | None,
        *,
        status: int,
    ) -> Reply:
        if version.provisioning_state in ("Creating", "Updating"):
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Gallery image version '{version.name}' is {version.provisioning_state.lower()}; wait for the "
                "previous operation to complete before updating it.",
            )
        op = self.start_op(
            ctx,
            family="capsOperations",
            location=version.location,
            resource_id=version.id,
            sub=version.image.gallery.subscription,
        )
        if "excludeFromLatest" in publishing:
            version.exclude_from_latest = bool(publishing["excludeFromLatest"])
        if publishing.get("endOfLifeDate"):
            version.end_of_life_date = publishing["endOfLifeDate"]
        if publishing.get("replicaCount"):
            version.replica_count = int(publishing["replicaCount"])
        added: list[RegionReplication] = []
        if regions is not None:
            current = {r.region: r for r in version.regions}
            removed = [r for r in version.regions if r.region not in {n.region for n in regions}]
            if removed and not version.allow_deletion_of_replicated_locations:
                raise invalid_parameter(
                    "Removing replicated regions is not allowed because safetyProfile.allowDeletionOfReplicatedLocations "
                    "is false.",
                    "galleryImageVersion.properties.publishingProfile.targetRegions",
                )
            new_list: list[RegionReplication] = []
            for r in regions:
                if r.region in current:
                    kept = current[r.region]
                    kept.regional_replica_count = r.regional_replica_count
                    kept.exclude_from_latest = r.exclude_from_latest
                    kept.storage_account_type = r.storage_account_type
                    new_list.append(kept)
                else:
                    new_list.append(r)
                    added.append(r)
            version.regions = new_list
        if added:
            version.provisioning_state = "Updating"
            failing = self._failing_regions(ctx)
            full = self.latency.replication_s(version.total_bytes)
            for r in added:
                r.start = self.lifecycle.now()
                r.duration_s = full

                def done(_at: float, region: RegionReplication = r) -> None:
                    if region not in version.regions:
                        return
                    region.state = "Failed" if region.region in failing else "Completed"
                    region.details = failing.get(region.region, "")
                    if all(x.state != "Replicating" for x in version.regions):
                        if any(x.state == "Failed" for x in added):
                            version.provisioning_state = "Failed"
                            op.fail(
                                "ReplicationFailed",
                                f"Replication of gallery image version '{version.name}' failed.",
                            )
                        else:
                            version.provisioning_state = "Succeeded"
                            op.succeed()

                self.lifecycle.schedule(full, done)
        else:
            op.succeed()
        return self.accepted(ctx, op, status=status, body=version.to_arm(), location=False)

    def patch_version(
        self,
        ctx: RequestContext,
        sub: str,
        rg: str,
        gallery: str,
        image: str,
        name: str,
        body: dict[str, Any],
    ) -> Reply:
        version = self.get_version(sub, rg, gallery, image, name)
        props = body.get("properties") or {}
        if props.get("storageProfile"):
            raise invalid_parameter(
                "Parameter 'galleryImageVersion.properties.storageProfile' is not allowed.",
                "galleryImageVersion.properties.storageProfile",
            )
        publishing = props.get("publishingProfile") or {}
        regions = None
        if "targetRegions" in publishing:
            regions = self._target_regions(
                version.location, publishing, "galleryImageVersion.properties.publishingProfile"
            )
        if "tags" in body:
            version.tags = dict(body.get("tags") or {})
        return self._update_publishing(ctx, version, publishing, regions, status=200)

    def delete_version(
        self, ctx: RequestContext, sub: str, rg: str, gallery: str, image: str, name: str
    ) -> Reply:
        version = self.get_version(sub, rg, gallery, image, name)
        self.versions.pop(version.id.lower())
        version.regions = []
        op = self.start_op(
            ctx,
            family="capsOperations",
            location=version.location,
            resource_id=version.id,
            sub=version.image.gallery.subscription,
        )
        self.lifecycle.schedule(self.latency.gallery_delete_s, lambda _a: op.succeed())
        return self.accepted(ctx, op)

    # ------------------------------------------------------------------ inspection

    def state(self) -> dict[str, Any]:
        return {
            "resourceGroups": [g.to_arm() for g in self.rgs.values()],
            "virtualMachines": [
                {
                    "id": vm.id,
                    "powerState": vm.power,
                    "provisioningState": vm.provisioning_state,
                    "generalized": vm.generalized,
                    "guestState": vm.guest_state or "normal",
                    "runCommandInProgress": vm.run_command_busy,
                }
                for vm in self.vms.values()
            ],
            "disks": [
                {
                    "id": d.id,
                    "diskState": d.disk_state(self.vm_power_of(d)),
                    "provisioningState": d.provisioning_state,
                    "managedBy": d.managed_by,
                    "activeAccess": d.access is not None,
                    "deletePending": d.delete_pending,
                    "blob": d.blob_name,
                }
                for d in self.disks.values()
            ],
            "galleries": [g.id for g in self.galleries.values()],
            "images": [i.id for i in self.images.values()],
            "imageVersions": [
                {
                    "id": v.id,
                    "provisioningState": v.provisioning_state,
                    "replication": v.to_arm(replication_fractions=self.replication_fractions(v))[
                        "properties"
                    ]["replicationStatus"],
                }
                for v in self.versions.values()
            ],
        }
