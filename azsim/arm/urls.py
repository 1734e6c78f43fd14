"""ARM routes as data: method + path pattern -> ARM action (for RBAC), operation type (for ARM
throttling), Compute throttling policy and handler name in ``azsim.arm.responses``.

Path patterns are matched case-insensitively (ARM paths are); the named group ``scope`` is the
resource (or container) the action is authorised on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from azsim.network.routes import NETWORK_ROUTES

S = r"/subscriptions/(?P<sub>[^/]+)"
RG = S + r"/resourceGroups/(?P<rg>[^/]+)"
C = RG + r"/providers/Microsoft\.Compute"
VM = C + r"/virtualMachines/(?P<vm>[^/]+)"
GAL = C + r"/galleries/(?P<gallery>[^/]+)"
IMG = GAL + r"/images/(?P<image>[^/]+)"
VER = IMG + r"/versions/(?P<version>[^/]+)"
# A role assignment's scope: the subscription, a resource group or a resource in it.
RA_SCOPE = S + r"(?:/resourceGroups/[^/]+(?:/providers/.+?)?)?"
RA = r"/providers/Microsoft\.Authorization/roleAssignments"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    action: str
    handler: str
    kind: str  # ARM operation type: reads | writes | deletes
    crp: str | None = None  # Compute RP throttling policy
    authorize: bool = True


def _r(
    method: str, path: str, action: str, handler: str, crp: str | None = None, *, authorize: bool = True
) -> Route:
    kind = {"GET": "reads", "HEAD": "reads", "DELETE": "deletes"}.get(method, "writes")
    return Route(
        method, re.compile(f"^(?P<scope>{path})$", re.IGNORECASE), action, handler, kind, crp, authorize
    )


def _list(
    parent: str, suffix: str, action: str, handler: str, crp: str | None = None, *, authorize: bool = True
) -> Route:
    """GET of a collection: authorised on the parent scope (a subscription-wide list is filtered instead)."""
    pattern = re.compile(f"^(?P<scope>{parent}){suffix}$", re.IGNORECASE)
    return Route("GET", pattern, action, handler, "reads", crp, authorize)


def _action(path: str, action: str, handler: str, crp: str | None) -> Route:
    """POST {resource}/{verb}: authorised on the resource, not on the verb path."""
    return Route(
        "POST",
        re.compile(f"^(?P<scope>{path})/{re.escape(handler.split('_', 1)[1])}$", re.IGNORECASE),
        action,
        handler,
        "writes",
        crp,
    )


MC = "Microsoft.Compute"
RGS = "Microsoft.Resources/subscriptions/resourceGroups"
PERMISSIONS_READ = "Microsoft.Authorization/permissions/read"

ROUTES: tuple[Route, ...] = (
    # Async operation status / monitor URLs (not RBAC-checked: ARM lets the caller of an operation poll it).
    # Each family has its own action in Azure's operations list (disks and snapshots poll DiskOperations,
    # galleries capsOperations, VMs operations).
    *(
        _r(
            "GET",
            S + rf"/providers/Microsoft\.Compute/locations/(?P<loc>[^/]+)/(?P<family>{family})/(?P<op>[^/]+)",
            f"{MC}/locations/{family}/read",
            "get_operation",
            "GetOperation",
            authorize=False,
        )
        for family in ("operations", "DiskOperations", "capsOperations")
    ),
    # Resource groups
    # ARM lists only the resource groups the caller can read (no 403 for the subscription-wide list).
    _list(S, r"/resourcegroups", f"{RGS}/read", "list_resource_groups", authorize=False),
    # Subscription locations: the world's regions. Any principal with a role in the subscription may list
    # them (see Authorizer.is_allowed), as ARM lets it read the subscription itself.
    _list(S, r"/locations", "Microsoft.Resources/subscriptions/locations/read", "list_locations"),
    # The subscription itself (its tenantId): readable by any principal with a role in it, like its locations.
    _r("GET", S, "Microsoft.Resources/subscriptions/read", "get_subscription"),
    _r("GET", RG, f"{RGS}/read", "get_resource_group"),
    _r("HEAD", RG, f"{RGS}/read", "head_resource_group"),
    _r("PUT", RG, f"{RGS}/write", "put_resource_group"),
    # Virtual machines
    _list(
        S,
        r"/providers/Microsoft\.Compute/virtualMachines",
        f"{MC}/virtualMachines/read",
        "list_all_vms",
        "HighCostGet",
        authorize=False,
    ),
    _list(
        RG,
        r"/providers/Microsoft\.Compute/virtualMachines",
        f"{MC}/virtualMachines/read",
        "list_vms",
        "HighCostGet",
    ),
    _r("GET", VM, f"{MC}/virtualMachines/read", "get_vm", "LowCostGet"),
    _r("PUT", VM, f"{MC}/virtualMachines/write", "put_vm", "PutVM"),
    _r("PATCH", VM, f"{MC}/virtualMachines/write", "patch_vm", "PutVM"),
    _r("DELETE", VM, f"{MC}/virtualMachines/delete", "delete_vm", "DeleteVM"),
    Route(
        "GET",
        re.compile(f"^(?P<scope>{VM})/instanceView$", re.IGNORECASE),
        f"{MC}/virtualMachines/instanceView/read",
        "get_instance_view",
        "reads",
        "LowCostGet",
    ),
    _action(VM, f"{MC}/virtualMachines/deallocate/action", "vm_deallocate", "DeleteVM"),
    _action(VM, f"{MC}/virtualMachines/powerOff/action", "vm_powerOff", "UpdateVM"),
    _action(VM, f"{MC}/virtualMachines/start/action", "vm_start", "UpdateVM"),
    _action(VM, f"{MC}/virtualMachines/restart/action", "vm_restart", "UpdateVM"),
    _action(VM, f"{MC}/virtualMachines/generalize/action", "vm_generalize", "UpdateVM"),
    _action(VM, f"{MC}/virtualMachines/runCommand/action", "vm_runCommand", "UpdateVM"),
    # Disks
    _list(
        S,
        r"/providers/Microsoft\.Compute/disks",
        f"{MC}/disks/read",
        "list_all_disks",
        "GetDisks",
        authorize=False,
    ),
    _list(RG, r"/providers/Microsoft\.Compute/disks", f"{MC}/disks/read", "list_disks", "GetDisks"),
    _r("GET", C + r"/disks/(?P<name>[^/]+)", f"{MC}/disks/read", "get_disk", "GetDisks"),
    _r("PUT", C + r"/disks/(?P<name>[^/]+)", f"{MC}/disks/write", "put_disk", "CreateUpdateDisks"),
    _r("PATCH", C + r"/disks/(?P<name>[^/]+)", f"{MC}/disks/write", "patch_disk", "CreateUpdateDisks"),
    _r("DELETE", C + r"/disks/(?P<name>[^/]+)", f"{MC}/disks/delete", "delete_disk", "DeleteDisks"),
    _action(
        C + r"/disks/(?P<name>[^/]+)",
        f"{MC}/disks/beginGetAccess/action",
        "disk_beginGetAccess",
        "CreateUpdateDisks",
    ),
    _action(
        C + r"/disks/(?P<name>[^/]+)",
        f"{MC}/disks/endGetAccess/action",
        "disk_endGetAccess",
        "CreateUpdateDisks",
    ),
    # Snapshots
    _list(
        S,
        r"/providers/Microsoft\.Compute/snapshots",
        f"{MC}/snapshots/read",
        "list_all_snapshots",
        "GetDisks",
        authorize=False,
    ),
    _list(
        RG, r"/providers/Microsoft\.Compute/snapshots", f"{MC}/snapshots/read", "list_snapshots", "GetDisks"
    ),
    _r("GET", C + r"/snapshots/(?P<name>[^/]+)", f"{MC}/snapshots/read", "get_snapshot", "GetDisks"),
    _r(
        "PUT", C + r"/snapshots/(?P<name>[^/]+)", f"{MC}/snapshots/write", "put_snapshot", "CreateUpdateDisks"
    ),
    _r(
        "PATCH",
        C + r"/snapshots/(?P<name>[^/]+)",
        f"{MC}/snapshots/write",
        "patch_snapshot",
        "CreateUpdateDisks",
    ),
    _r(
        "DELETE",
        C + r"/snapshots/(?P<name>[^/]+)",
        f"{MC}/snapshots/delete",
        "delete_snapshot",
        "DeleteDisks",
    ),
    _action(
        C + r"/snapshots/(?P<name>[^/]+)",
        f"{MC}/snapshots/beginGetAccess/action",
        "snapshot_beginGetAccess",
        "CreateUpdateDisks",
    ),
    _action(
        C + r"/snapshots/(?P<name>[^/]+)",
        f"{MC}/snapshots/endGetAccess/action",
        "snapshot_endGetAccess",
        "CreateUpdateDisks",
    ),
    # Managed images
    _list(
        S,
        r"/providers/Microsoft\.Compute/images",
        f"{MC}/images/read",
        "list_all_managed_images",
        authorize=False,
    ),
    _list(RG, r"/providers/Microsoft\.Compute/images", f"{MC}/images/read", "list_managed_images"),
    _r("GET", C + r"/images/(?P<name>[^/]+)", f"{MC}/images/read", "get_managed_image"),
    # Storage accounts: only the GET of one (a VHD source's region), no keys.
    _r(
        "GET",
        RG + r"/providers/Microsoft\.Storage/storageAccounts/(?P<name>[^/]+)",
        "Microsoft.Storage/storageAccounts/read",
        "get_storage_account",
    ),
    _r("PUT", C + r"/images/(?P<name>[^/]+)", f"{MC}/images/write", "put_managed_image"),
    _r("DELETE", C + r"/images/(?P<name>[^/]+)", f"{MC}/images/delete", "delete_managed_image"),
    # Galleries
    _list(
        S,
        r"/providers/Microsoft\.Compute/galleries",
        f"{MC}/galleries/read",
        "list_all_galleries",
        authorize=False,
    ),
    _list(RG, r"/providers/Microsoft\.Compute/galleries", f"{MC}/galleries/read", "list_galleries"),
    _r("GET", GAL, f"{MC}/galleries/read", "get_gallery"),
    _r("PUT", GAL, f"{MC}/galleries/write", "put_gallery"),
    _r("PATCH", GAL, f"{MC}/galleries/write", "patch_gallery"),
    _r("DELETE", GAL, f"{MC}/galleries/delete", "delete_gallery"),
    _list(GAL, r"/images", f"{MC}/galleries/images/read", "list_images"),
    _r("GET", IMG, f"{MC}/galleries/images/read", "get_image"),
    _r("PUT", IMG, f"{MC}/galleries/images/write", "put_image"),
    _r("PATCH", IMG, f"{MC}/galleries/images/write", "patch_image"),
    _r("DELETE", IMG, f"{MC}/galleries/images/delete", "delete_image"),
    _list(IMG, r"/versions", f"{MC}/galleries/images/versions/read", "list_versions"),
    _r("GET", VER, f"{MC}/galleries/images/versions/read", "get_version"),
    _r("PUT", VER, f"{MC}/galleries/images/versions/write", "put_version"),
    _r("PATCH", VER, f"{MC}/galleries/images/versions/write", "patch_version"),
    _r("DELETE", VER, f"{MC}/galleries/images/versions/delete", "delete_version"),
    # The caller's own permissions at a subscription, resource group or resource (azsim/arm/permissions.py).
    # Not RBAC-checked: any caller may read what it holds itself. A resource scope is
    # {group}/providers/{namespace}/{type}/{name}[/{type}/{name}...].
    *(
        _list(
            parent,
            r"/providers/Microsoft\.Authorization/permissions",
            PERMISSIONS_READ,
            "list_permissions",
            authorize=False,
        )
        for parent in (S, RG, RG + r"/providers/(?P<ns>[^/]+)(?:/[^/]+/[^/]+)+")
    ),
    # Role assignments (Microsoft.Authorization) at any scope in a subscription
    _r(
        "GET",
        f"(?P<ascope>{RA_SCOPE}){RA}",
        "Microsoft.Authorization/roleAssignments/read",
        "list_role_assignments",
    ),
    *(
        _r(
            method,
            f"(?P<ascope>{RA_SCOPE}){RA}/(?P<name>[^/]+)",
            f"Microsoft.Authorization/roleAssignments/{verb}",
            handler,
        )
        for method, verb, handler in (
            ("GET", "read", "get_role_assignment"),
            ("PUT", "write", "put_role_assignment"),
            ("DELETE", "delete", "delete_role_assignment"),
        )
    ),
    # Microsoft.Network (virtual networks, subnets, network interfaces): azsim/network/routes.py
    *(
        _list(path, suffix, action, handler, authorize=kind != "listAll")
        if kind in ("list", "listAll")
        else _r(method, path, action, handler)
        for kind, method, path, suffix, action, handler in NETWORK_ROUTES
    ),
)


def match(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for route in ROUTES:
        if route.method != method:
            continue
        m = route.pattern.match(path)
        if m:
            return route, {k: v for k, v in m.groupdict().items() if v is not None}
    return None


def path_known(path: str) -> bool:
    """True if some route has this path (for 405 vs 404)."""
    return any(r.pattern.match(path) for r in ROUTES)
