"""The Compute backend: resource state plus Azure's rules, methods named after ARM operations.

Composed, one module per resource family, of ``state`` (stores, world, shared lookups, LRO plumbing,
resource groups), ``vms``, ``disks`` (disks and snapshots), ``galleries`` (galleries and image
definitions) and ``versions`` (image versions, with their sources in ``version_sources``).
Every method runs under the simulator lock with due transitions already applied. Errors are
raised as ``ArmError`` with Azure's codes and texts (docs/azure-facts.md); where Azure's text is not
known the message is ours and says so in docs/azsim-arm.md.
Networking (virtual networks, subnets, NICs) is ``azsim.network.interfaces``, a base of ``vms``.
Managed images and VHD blob sources are ``images`` (a base of ``version_sources``).
Not modelled here: extensions other than Run Command, VM scale sets.
"""

from __future__ import annotations

from typing import Any

from azsim.authz.role_assignments import RoleAssignments
from azsim.compute.disks import DisksAndSnapshots
from azsim.compute.galleries import Galleries
from azsim.compute.versions import ImageVersions
from azsim.compute.vms import VirtualMachines


class ComputeBackend(RoleAssignments, VirtualMachines, DisksAndSnapshots, Galleries, ImageVersions):
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
                    "agentReady": vm.agent_ready and vm.power == "running",
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
            "networkInterfaces": [
                {"id": n.id, "virtualMachine": n.virtual_machine} for n in self.nics.values()
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
