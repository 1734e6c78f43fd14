"""Thin Microsoft.Network handlers (same contract as ``azsim.arm.responses``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from azsim.core.context import Reply

if TYPE_CHECKING:
    from azsim.arm.responses import ArmRequest
    from azsim.compute.backend import ComputeBackend


def list_vnets(b: ComputeBackend, req: ArmRequest) -> Reply:
    return Reply(200, {"value": [v.to_arm() for v in b.list_vnets(req["sub"], req["rg"])]})


def get_vnet(b: ComputeBackend, req: ArmRequest) -> Reply:
    return Reply(200, b.get_vnet(req["sub"], req["rg"], req["vnet"]).to_arm())


def list_subnets(b: ComputeBackend, req: ArmRequest) -> Reply:
    vnet = b.get_vnet(req["sub"], req["rg"], req["vnet"])
    return Reply(200, {"value": [s.to_arm() for s in vnet.subnets.values()]})


def get_subnet(b: ComputeBackend, req: ArmRequest) -> Reply:
    return Reply(200, b.get_subnet(req["sub"], req["rg"], req["vnet"], req["subnet"]).to_arm())


def list_nics(b: ComputeBackend, req: ArmRequest) -> Reply:
    return Reply(200, {"value": [n.to_arm() for n in b.list_nics(req["sub"], req["rg"])]})


def list_all_nics(b: ComputeBackend, req: ArmRequest) -> Reply:
    """Subscription-wide: only the NICs the caller may read (ARM filters, it does not refuse)."""
    nics = b.list_nics(req["sub"], None)
    return Reply(200, {"value": [n.to_arm() for n in nics if req.ctx.allowed(req.ctx_action, n.id)]})


def get_nic(b: ComputeBackend, req: ArmRequest) -> Reply:
    return Reply(200, b.get_nic(req["sub"], req["rg"], req["nic"]).to_arm())


def put_nic(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.put_nic(req.ctx, req["sub"], req["rg"], req["nic"], req.body)


def delete_nic(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.delete_nic(req.ctx, req["sub"], req["rg"], req["nic"])


NETWORK_HANDLERS = {
    f.__name__: f
    for f in (
        list_vnets,
        get_vnet,
        list_subnets,
        get_subnet,
        list_nics,
        list_all_nics,
        get_nic,
        put_nic,
        delete_nic,
    )
}
