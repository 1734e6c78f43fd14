"""Virtual machines: power actions and their transitions, generalize, Run Command (the guest model
in ``guest``), create from an attached OS disk, delete."""

from __future__ import annotations

import re
from typing import Any

from azsim.compute import guest
from azsim.compute.models import DataDiskRef, ManagedDisk, VirtualMachine, rid
from azsim.compute.regions import normalize
from azsim.compute.state import ComputeState, canonical_id, dig
from azsim.core.clock import utc_iso
from azsim.core.context import Reply, RequestContext
from azsim.core.errors import ArmError, invalid_parameter, operation_not_allowed, resource_not_found
from azsim.core.lro import Operation


class VirtualMachines(ComputeState):
    """Virtual machine operations."""

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
                op.succeed()  # no-op (unverified in Azure: docs/azure-facts.md#power-actions)
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
            # waagent kills itself: the command never reports, it stays InProgress
            # (docs/azure-facts.md#run-command-and-generalization).
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
            # an exit code (docs/azure-facts.md#run-command-and-generalization). Which one is seeded.
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
            new_os = dig(props, "storageProfile", "osDisk", "managedDisk", "id")
            if new_os and new_os.lower() != existing.os_disk_id.lower():
                raise ArmError(
                    409,
                    "PropertyChangeNotAllowed",
                    "Changing property 'osDisk.managedDisk.id' is not allowed.",
                    target="osDisk.managedDisk.id",
                )
            if "tags" in body:
                existing.tags = dict(body.get("tags") or {})
            size = dig(props, "hardwareProfile", "vmSize")
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
            return self.accepted(
                ctx,
                op,
                status=200,
                body=existing.to_arm(self.disks),
                final=lambda: existing.to_arm(self.disks),
            )
        location = self._check_region(body.get("location"))
        vm_size = dig(props, "hardwareProfile", "vmSize")
        if not vm_size:
            raise invalid_parameter(
                "Required parameter 'hardwareProfile.vmSize' is missing (null).", "hardwareProfile.vmSize"
            )
        os_disk = dig(props, "storageProfile", "osDisk") or {}
        create_option = str(os_disk.get("createOption") or "")
        if create_option.lower() != "attach":
            raise invalid_parameter(
                f"azsim creates VMs only from an existing OS disk (createOption 'Attach'); got '{create_option}'.",
                "osDisk.createOption",
            )
        os_type = os_disk.get("osType")
        if os_type not in ("Linux", "Windows"):
            raise invalid_parameter("Required parameter 'osDisk.osType' is missing (null).", "osDisk.osType")
        disk_id = dig(os_disk, "managedDisk", "id")
        if not disk_id:
            raise invalid_parameter(
                "Required parameter 'osDisk.managedDisk.id' is missing (null).", "osDisk.managedDisk.id"
            )
        disk = self._attachable_disk(str(disk_id), location, vm_id)
        data_refs: list[tuple[int, ManagedDisk]] = []
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
            data_refs.append(
                (lun, self._attachable_disk(str(dig(dd, "managedDisk", "id") or ""), location, vm_id))
            )
        security = dig(props, "securityProfile", "securityType") or disk.security_type or "Standard"
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
        return self.accepted(
            ctx, op, status=201, body=vm.to_arm(self.disks), final=lambda: vm.to_arm(self.disks)
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
        group = self.require_rg(sub, rg)
        vm = self.vms.get(
            rid(group.subscription, group.name, f"Microsoft.Compute/virtualMachines/{name}").lower()
        )
        if vm is None:
            return Reply(204, None)  # DELETE of a missing resource: the spec's 204
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

    def patch_vm(self, ctx: RequestContext, sub: str, rg: str, name: str, body: dict[str, Any]) -> Reply:
        vm = self.get_vm(sub, rg, name)
        return self.patch_tags(
            ctx, vm, body, family="operations", sub=vm.subscription, view=lambda: vm.to_arm(self.disks)
        )
