"""Virtual machines: power actions and their transitions, generalize, Run Command (the guest model
in ``guest``), delete with each disk's and NIC's ``deleteOption``; create is ``vm_create``."""

from __future__ import annotations

from typing import Any

from azsim.compute import guest
from azsim.compute.models import VirtualMachine, rid
from azsim.compute.vm_create import VmCreation
from azsim.core.context import Reply, RequestContext
from azsim.core.errors import ArmError, invalid_parameter, operation_not_allowed
from azsim.core.lro import Operation


class VirtualMachines(VmCreation):
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
        if not vm.agent_ready:
            # No agent has reported yet: nothing picks the command up, and the operation times out.
            op = self.start_op(
                ctx, family="operations", location=vm.location, resource_id=vm.id, sub=vm.subscription
            )
            self.lifecycle.schedule(
                self.latency.run_command_s,
                lambda _a: op.fail(
                    "VMAgentStatusCommunicationError",
                    f"VM '{vm.name}' has not reported status for VM agent or extensions. Please verify the VM "
                    "has a running VM agent, and can establish outbound connections to Azure storage.",
                ),
            )
            return self.accepted(ctx, op)
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
            self._release_vm_resources(vm)
            self.vms.pop(vm.id.lower(), None)
            op.succeed()

        self.lifecycle.schedule(self.latency.vm_delete_s, gone)
        return self.accepted(ctx, op)

    def _release_vm_resources(self, vm: VirtualMachine) -> None:
        """Detach or delete (per ``deleteOption``) the VM's disks and NICs as the VM goes."""
        disks = [
            (vm.os_disk_id, vm.os_disk_delete_option),
            *[(r.disk_id, r.delete_option) for r in vm.data_disks],
        ]
        for disk_id, option in disks:
            d = self.disks.get(disk_id.lower())
            if d is None or not d.managed_by or d.managed_by.lower() != vm.id.lower():
                continue
            d.managed_by = None
            if option == "Delete":
                if d.access is not None:
                    self.disk_store.revoke(d.blob_name, d.access.access_id)
                    if d.access.expiry_entry is not None:
                        d.access.expiry_entry.cancelled = True
                self.disks.pop(d.id.lower(), None)
                self.disk_store.delete_blob(d.blob_name)
                self._blobs.discard(d.blob_name)
        for ref in vm.nics:
            nic = self.nic_by_id(ref.nic_id)
            if nic is None or (nic.virtual_machine or "").lower() != vm.id.lower():
                continue
            self.detach_nic(nic)
            if ref.delete_option == "Delete":
                self.remove_nic(nic)

    def patch_vm(self, ctx: RequestContext, sub: str, rg: str, name: str, body: dict[str, Any]) -> Reply:
        vm = self.get_vm(sub, rg, name)
        return self.patch_tags(
            ctx, vm, body, family="operations", sub=vm.subscription, view=lambda: vm.to_arm(self.disks)
        )
