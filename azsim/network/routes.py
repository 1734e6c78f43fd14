"""Microsoft.Network routes as data, registered by ``azsim.arm.urls`` next to the Compute routes.

Each entry: (kind, method, path pattern, ARM action, handler name). ``kind`` "list" entries are GETs
of a collection under ``path`` (authorised on the parent), "listAll" entries subscription-wide lists
(filtered by RBAC instead), "item" entries are resource operations.
"""

from __future__ import annotations

S = r"/subscriptions/(?P<sub>[^/]+)"
RG = S + r"/resourceGroups/(?P<rg>[^/]+)"
N = RG + r"/providers/Microsoft\.Network"
VNET = N + r"/virtualNetworks/(?P<vnet>[^/]+)"
NIC = N + r"/networkInterfaces/(?P<nic>[^/]+)"
MN = "Microsoft.Network"

# (kind, method, path, suffix for lists, action, handler)
NETWORK_ROUTES: tuple[tuple[str, str, str, str, str, str], ...] = (
    (
        "list",
        "GET",
        RG,
        r"/providers/Microsoft\.Network/virtualNetworks",
        f"{MN}/virtualNetworks/read",
        "list_vnets",
    ),
    ("item", "GET", VNET, "", f"{MN}/virtualNetworks/read", "get_vnet"),
    ("list", "GET", VNET, r"/subnets", f"{MN}/virtualNetworks/subnets/read", "list_subnets"),
    (
        "item",
        "GET",
        VNET + r"/subnets/(?P<subnet>[^/]+)",
        "",
        f"{MN}/virtualNetworks/subnets/read",
        "get_subnet",
    ),
    # NetworkInterfaces_ListAll: filtered to what the caller may read (as ARM does), never refused.
    (
        "listAll",
        "GET",
        S,
        r"/providers/Microsoft\.Network/networkInterfaces",
        f"{MN}/networkInterfaces/read",
        "list_all_nics",
    ),
    (
        "list",
        "GET",
        RG,
        r"/providers/Microsoft\.Network/networkInterfaces",
        f"{MN}/networkInterfaces/read",
        "list_nics",
    ),
    ("item", "GET", NIC, "", f"{MN}/networkInterfaces/read", "get_nic"),
    ("item", "PUT", NIC, "", f"{MN}/networkInterfaces/write", "put_nic"),
    ("item", "DELETE", NIC, "", f"{MN}/networkInterfaces/delete", "delete_nic"),
)
