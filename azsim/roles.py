"""Built-in Azure role definitions azsim enforces, with their real action lists.

Source: Microsoft Learn "Azure built-in roles" (MicrosoftDocs/azure-docs
``articles/role-based-access-control/built-in-roles.md`` and ``built-in-roles/compute.md``,
``built-in-roles/storage.md``; the ``permissions`` JSON of each role). Only roles a VM-capture
workload plausibly uses are listed; actions of other resource providers are kept verbatim so a
role is never broader or narrower here than in Azure.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class RoleDefinition:
    name: str
    id: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()
    description: str = ""

    def allows(self, action: str, *, data_action: bool = False) -> bool:
        """True if this role grants ``action`` (ARM matching: case-insensitive, '*' wildcards)."""
        allow, deny = (
            (self.data_actions, self.not_data_actions) if data_action else (self.actions, self.not_actions)
        )
        a = action.lower()
        return any(fnmatchcase(a, p.lower()) for p in allow) and not any(
            fnmatchcase(a, p.lower()) for p in deny
        )


_COMMON = (
    "Microsoft.Authorization/*/read",
    "Microsoft.Insights/alertRules/*",
    "Microsoft.Resources/deployments/*",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
)

BUILTIN_ROLES: tuple[RoleDefinition, ...] = (
    RoleDefinition(
        name="Owner",
        id="8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        actions=("*",),
        description="Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
    ),
    RoleDefinition(
        name="User Access Administrator",
        id="18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        actions=("*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"),
        description="Lets you manage user access to Azure resources.",
    ),
    RoleDefinition(
        # Its action list is not in the repository's verified sources (docs/azsim-arm.md#role-assignments).
        name="Role Based Access Control Administrator",
        id="f58310d9-a9f6-439a-9e8d-f62e7b41a168",
        actions=(
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "*/read",
            "Microsoft.Support/*",
        ),
        description="Manage access to Azure resources by assigning roles using Azure RBAC. This role does not allow "
        "you to manage access using other ways, such as Azure Policy.",
    ),
    RoleDefinition(
        name="Contributor",
        id="b24988ac-6180-42a0-ab88-20f7382dd24c",
        actions=("*",),
        not_actions=(
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
            "Microsoft.Purview/consents/write",
            "Microsoft.Purview/consents/delete",
        ),
        description="Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC.",
    ),
    RoleDefinition(
        name="Reader",
        id="acdd72a7-3385-48ef-bd42-f606fba81ae7",
        actions=("*/read",),
        description="View all resources, but does not allow you to make any changes.",
    ),
    RoleDefinition(
        name="Virtual Machine Contributor",
        id="9980e02c-c2be-4d73-94e8-173b1dc7cf3c",
        actions=(
            "Microsoft.Authorization/*/read",
            "Microsoft.Compute/availabilitySets/*",
            "Microsoft.Compute/locations/*",
            "Microsoft.Compute/virtualMachines/*",
            "Microsoft.Compute/virtualMachineScaleSets/*",
            "Microsoft.Compute/disks/write",
            "Microsoft.Compute/disks/read",
            "Microsoft.Compute/disks/delete",
            "Microsoft.DevTestLab/schedules/*",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Network/applicationGateways/backendAddressPools/join/action",
            "Microsoft.Network/loadBalancers/backendAddressPools/join/action",
            "Microsoft.Network/loadBalancers/inboundNatPools/join/action",
            "Microsoft.Network/loadBalancers/inboundNatRules/join/action",
            "Microsoft.Network/loadBalancers/probes/join/action",
            "Microsoft.Network/loadBalancers/read",
            "Microsoft.Network/locations/*",
            "Microsoft.Network/networkInterfaces/*",
            "Microsoft.Network/networkSecurityGroups/join/action",
            "Microsoft.Network/networkSecurityGroups/read",
            "Microsoft.Network/publicIPAddresses/join/action",
            "Microsoft.Network/publicIPAddresses/read",
            "Microsoft.Network/virtualNetworks/read",
            "Microsoft.Network/virtualNetworks/subnets/join/action",
            "Microsoft.RecoveryServices/locations/*",
            "Microsoft.RecoveryServices/Vaults/backupFabrics/backupProtectionIntent/write",
            "Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/*/read",
            "Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/read",
            "Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/write",
            "Microsoft.RecoveryServices/Vaults/backupPolicies/read",
            "Microsoft.RecoveryServices/Vaults/backupPolicies/write",
            "Microsoft.RecoveryServices/Vaults/read",
            "Microsoft.RecoveryServices/Vaults/usages/read",
            "Microsoft.RecoveryServices/Vaults/write",
            "Microsoft.ResourceHealth/availabilityStatuses/read",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.SqlVirtualMachine/*",
            "Microsoft.Storage/storageAccounts/listKeys/action",
            "Microsoft.Storage/storageAccounts/read",
            "Microsoft.Support/*",
        ),
        description="Lets you manage virtual machines, but not access to them, and not the virtual network or "
        "storage account they're connected to.",
    ),
    RoleDefinition(
        name="Disk Snapshot Contributor",
        id="7efff54f-a5b4-42b5-a1c5-5411624893ce",
        actions=(
            "Microsoft.Authorization/*/read",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Compute/snapshots/delete",
            "Microsoft.Compute/snapshots/write",
            "Microsoft.Compute/snapshots/read",
            "Microsoft.Compute/snapshots/beginGetAccess/action",
            "Microsoft.Compute/snapshots/endGetAccess/action",
            "Microsoft.Compute/disks/beginGetAccess/action",
            "Microsoft.Storage/storageAccounts/listkeys/action",
            "Microsoft.Storage/storageAccounts/write",
            "Microsoft.Storage/storageAccounts/read",
            "Microsoft.Storage/storageAccounts/delete",
        ),
        description="Provides permission to backup vault to manage disk snapshots.",
    ),
    RoleDefinition(
        name="Compute Gallery Artifacts Publisher",
        id="85a2d0d9-2eba-4c9c-b355-11c2cc0788ab",
        actions=(
            "Microsoft.Compute/galleries/*",
            "Microsoft.Compute/locations/capsOperations/read",
            "Microsoft.Compute/locations/communityGalleries/*",
            "Microsoft.Compute/locations/sharedGalleries/*",
            "Microsoft.Compute/images/*",
            "Microsoft.Compute/virtualMachines/write",
            "Microsoft.Compute/disks/write",
            *_COMMON,
        ),
        not_actions=("Microsoft.Compute/galleries/share/action",),
        description="This is the role for publishing gallery artifacts.",
    ),
    RoleDefinition(
        name="Compute Gallery Image Reader",
        id="cf7c76d2-98a3-4358-a134-615aa78bf44d",
        actions=(
            "Microsoft.Compute/galleries/images/read",
            "Microsoft.Compute/galleries/images/versions/read",
        ),
        description="This is the role for reading gallery images.",
    ),
    RoleDefinition(
        name="Data Operator for Managed Disks",
        id="959f8984-c045-4866-89c7-12bf9737be2e",
        actions=(),
        data_actions=(
            "Microsoft.Compute/disks/download/action",
            "Microsoft.Compute/disks/upload/action",
            "Microsoft.Compute/snapshots/download/action",
            "Microsoft.Compute/snapshots/upload/action",
        ),
        description="Provides permissions to upload data to empty managed disks, read, or export data of managed "
        "disks (not attached to running VMs) and snapshots using SAS URIs and Azure AD authentication.",
    ),
    RoleDefinition(
        name="Storage Blob Data Contributor",
        id="ba92f5b4-2d11-453d-a403-e96b0029c9fe",
        actions=(
            "Microsoft.Storage/storageAccounts/blobServices/containers/delete",
            "Microsoft.Storage/storageAccounts/blobServices/containers/read",
            "Microsoft.Storage/storageAccounts/blobServices/containers/write",
            "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
        ),
        data_actions=(
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/move/action",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action",
        ),
        description="Read, write, and delete Azure Storage containers and blobs.",
    ),
    RoleDefinition(
        name="Storage Blob Data Owner",
        id="b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
        actions=(
            "Microsoft.Storage/storageAccounts/blobServices/containers/*",
            "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
        ),
        data_actions=("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*",),
        description="Provides full access to Azure Storage blob containers and data, including assigning POSIX "
        "access control.",
    ),
    RoleDefinition(
        name="Storage Blob Data Reader",
        id="2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
        actions=(
            "Microsoft.Storage/storageAccounts/blobServices/containers/read",
            "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
        ),
        data_actions=("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",),
        description="Read and list Azure Storage containers and blobs.",
    ),
)
