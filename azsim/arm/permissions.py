"""``GET {scope}/providers/Microsoft.Authorization/permissions``: the caller's own permissions at a scope.

Azure answers ``{"value": [{"actions", "notActions", "dataActions", "notDataActions"}, ...]}`` for the
caller, from the role assignments that apply at the scope (a subscription, a resource group or a
resource). Reading one's own permissions needs no role, so the route is not RBAC-checked: a caller with
no assignment there gets an empty list. The entries come from the same role model that authorises every
other request (``azsim.core.rbac``), so a client that matches them as ARM does agrees with azsim's 403s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from azsim.core.context import Reply
from azsim.core.rbac import Authorizer

if TYPE_CHECKING:
    from azsim.arm.responses import ArmRequest
    from azsim.compute.backend import ComputeBackend


def list_permissions(b: ComputeBackend, req: ArmRequest) -> Reply:
    if "rg" in req.params:
        b.require_rg(req["sub"], req["rg"])
    # Role assignments come from the world only (none are created at run time): the same list the
    # pipeline's Authorizer holds, without sharing its decision log (a read of permissions decides nothing).
    entries = Authorizer(b.world).permissions(req.ctx.principal, req["scope"])
    return Reply(200, {"value": entries})


PERMISSIONS_HANDLERS = {"list_permissions": list_permissions}
