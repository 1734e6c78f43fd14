"""Thin ARM handlers: read parameters, call one backend method, shape the reply.

Each handler is named in ``azsim.arm.urls.ROUTES`` and takes ``(backend, request)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azsim.arm.permissions import PERMISSIONS_HANDLERS
from azsim.compute.backend import ComputeBackend
from azsim.core.context import Reply, RequestContext
from azsim.core.errors import ArmError
from azsim.core.lro import OperationStore, retry_headers
from azsim.network.handlers import NETWORK_HANDLERS


@dataclass
class ArmRequest:
    params: dict[str, str]
    body: dict[str, Any]
    ctx: RequestContext
    ctx_action: str = ""

    def __getitem__(self, key: str) -> str:
        return self.params[key]


Handler = Callable[[ComputeBackend, ArmRequest], Reply]


def _listing(items: list[dict[str, Any]]) -> Reply:
    return Reply(200, {"value": items})


def _expand(req: ArmRequest) -> str:
    return req.ctx.query.get("$expand", "").lower()


# --- operations -------------------------------------------------------------------------


def get_operation(b: ComputeBackend, req: ArmRequest) -> Reply:
    ops: OperationStore = b.ops
    op = ops.get(req["op"])
    if (
        op is None
        or op.subscription.lower() != req["sub"].lower()
        or op.family.lower() != req["family"].lower()
    ):
        raise ArmError(404, "NotFound", f"The operation '{req['op']}' could not be found.")
    poll = retry_headers(b.lifecycle.real(b.latency.poll_interval_s))
    if req.ctx.query.get("monitor", "").lower() == "true":
        if not op.done:
            return Reply(202, None, poll)
        if op.status != "Succeeded":
            err = op.error or {"code": op.status, "message": f"The operation ended {op.status}."}
            raise ArmError(400, err["code"], err["message"])
        if op.result is not None:
            return Reply(200, op.result)
        return Reply(200, op.resource_view() if op.resource_view is not None else None)
    return Reply(200, op.status_body(), poll if not op.done else {})


# --- subscription locations ---------------------------------------------------------------


def list_locations(b: ComputeBackend, req: ArmRequest) -> Reply:
    from azsim.compute.regions import location

    return _listing([location(req["sub"], r) for r in b.world.regions])


# --- resource groups ----------------------------------------------------------------------


def list_resource_groups(b: ComputeBackend, req: ArmRequest) -> Reply:
    groups = b.list_resource_groups(req["sub"])
    return _listing([g.to_arm() for g in groups if req.ctx.allowed(req.ctx_action, g.id)])


def get_resource_group(b: ComputeBackend, req: ArmRequest) -> Reply:
    return Reply(200, b.require_rg(req["sub"], req["rg"]).to_arm())


def head_resource_group(b: ComputeBackend, req: ArmRequest) -> Reply:
    return Reply(204 if b.rgs.get((req["sub"].lower(), req["rg"].lower())) else 404, None)


def put_resource_group(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.put_resource_group(req["sub"], req["rg"], req.body)


# --- virtual machines ---------------------------------------------------------------------


def list_all_vms(b: ComputeBackend, req: ArmRequest) -> Reply:
    vms = b.list_vms(req["sub"], None)
    return _listing([vm.to_arm(b.disks) for vm in vms if req.ctx.allowed(req.ctx_action, vm.id)])


def list_vms(b: ComputeBackend, req: ArmRequest) -> Reply:
    return _listing([vm.to_arm(b.disks) for vm in b.list_vms(req["sub"], req["rg"])])


def get_vm(b: ComputeBackend, req: ArmRequest) -> Reply:
    vm = b.get_vm(req["sub"], req["rg"], req["vm"])
    return Reply(200, vm.to_arm(b.disks, instance_view="instanceview" in _expand(req)))


def get_instance_view(b: ComputeBackend, req: ArmRequest) -> Reply:
    return Reply(200, b.get_vm(req["sub"], req["rg"], req["vm"]).instance_view(b.disks))


def put_vm(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.put_vm(req.ctx, req["sub"], req["rg"], req["vm"], req.body)


def patch_vm(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.patch_vm(req.ctx, req["sub"], req["rg"], req["vm"], req.body)


def delete_vm(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.delete_vm(req.ctx, req["sub"], req["rg"], req["vm"])


def vm_deallocate(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.vm_action(req.ctx, req["sub"], req["rg"], req["vm"], "deallocate")


def vm_powerOff(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.vm_action(req.ctx, req["sub"], req["rg"], req["vm"], "powerOff")


def vm_start(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.vm_action(req.ctx, req["sub"], req["rg"], req["vm"], "start")


def vm_restart(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.vm_action(req.ctx, req["sub"], req["rg"], req["vm"], "restart")


def vm_generalize(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.generalize(req["sub"], req["rg"], req["vm"])


def vm_runCommand(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.run_command(req.ctx, req["sub"], req["rg"], req["vm"], req.body)


# --- disks and snapshots --------------------------------------------------------------------


def _list_managed(kind: str) -> Handler:
    def handler(b: ComputeBackend, req: ArmRequest) -> Reply:
        return _listing([b.disk_json(d) for d in b.list_managed(kind, req["sub"], req["rg"])])

    return handler


def _list_all_managed(kind: str) -> Handler:
    """Subscription-wide list: only what the caller may read (ARM filters, it does not refuse)."""

    def handler(b: ComputeBackend, req: ArmRequest) -> Reply:
        disks = b.list_managed(kind, req["sub"], None)
        return _listing([b.disk_json(d) for d in disks if req.ctx.allowed(req.ctx_action, d.id)])

    return handler


def _get_managed(kind: str) -> Handler:
    def handler(b: ComputeBackend, req: ArmRequest) -> Reply:
        return Reply(200, b.disk_json(b.get_managed(kind, req["sub"], req["rg"], req["name"])))

    return handler


def _put_managed(kind: str) -> Handler:
    def handler(b: ComputeBackend, req: ArmRequest) -> Reply:
        return b.put_managed(req.ctx, kind, req["sub"], req["rg"], req["name"], req.body)

    return handler


def _patch_managed(kind: str) -> Handler:
    def handler(b: ComputeBackend, req: ArmRequest) -> Reply:
        return b.patch_managed(req.ctx, kind, req["sub"], req["rg"], req["name"], req.body)

    return handler


def _delete_managed(kind: str) -> Handler:
    def handler(b: ComputeBackend, req: ArmRequest) -> Reply:
        return b.delete_managed(req.ctx, kind, req["sub"], req["rg"], req["name"])

    return handler


def _grant(kind: str) -> Handler:
    def handler(b: ComputeBackend, req: ArmRequest) -> Reply:
        return b.begin_get_access(req.ctx, kind, req["sub"], req["rg"], req["name"], req.body)

    return handler


def _revoke(kind: str) -> Handler:
    def handler(b: ComputeBackend, req: ArmRequest) -> Reply:
        return b.end_get_access(req.ctx, kind, req["sub"], req["rg"], req["name"])

    return handler


list_disks, get_disk, put_disk, delete_disk = (
    _list_managed("disks"),
    _get_managed("disks"),
    _put_managed("disks"),
    _delete_managed("disks"),
)
list_snapshots, get_snapshot, put_snapshot, delete_snapshot = (
    _list_managed("snapshots"),
    _get_managed("snapshots"),
    _put_managed("snapshots"),
    _delete_managed("snapshots"),
)
list_all_disks, list_all_snapshots = _list_all_managed("disks"), _list_all_managed("snapshots")
patch_disk, patch_snapshot = _patch_managed("disks"), _patch_managed("snapshots")
disk_beginGetAccess, disk_endGetAccess = _grant("disks"), _revoke("disks")
snapshot_beginGetAccess, snapshot_endGetAccess = _grant("snapshots"), _revoke("snapshots")


# --- galleries ----------------------------------------------------------------------------


def list_galleries(b: ComputeBackend, req: ArmRequest) -> Reply:
    return _listing([g.to_arm() for g in b.list_galleries(req["sub"], req["rg"])])


def list_all_galleries(b: ComputeBackend, req: ArmRequest) -> Reply:
    galleries = b.list_galleries(req["sub"], None)
    return _listing([g.to_arm() for g in galleries if req.ctx.allowed(req.ctx_action, g.id)])


def list_managed_images(b: ComputeBackend, req: ArmRequest) -> Reply:
    return _listing([i.to_arm() for i in b.list_managed_images(req["sub"], req["rg"])])


def list_all_managed_images(b: ComputeBackend, req: ArmRequest) -> Reply:
    images = b.list_managed_images(req["sub"], None)
    return _listing([i.to_arm() for i in images if req.ctx.allowed(req.ctx_action, i.id)])


def get_storage_account(b: ComputeBackend, req: ArmRequest) -> Reply:
    return Reply(200, b.get_storage_account(req["sub"], req["rg"], req["name"]))


def get_managed_image(b: ComputeBackend, req: ArmRequest) -> Reply:
    return Reply(200, b.get_managed_image(req["sub"], req["rg"], req["name"]).to_arm())


def put_managed_image(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.put_managed_image(req.ctx, req["sub"], req["rg"], req["name"], req.body)


def delete_managed_image(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.delete_managed_image(req.ctx, req["sub"], req["rg"], req["name"])


def get_gallery(b: ComputeBackend, req: ArmRequest) -> Reply:
    return Reply(200, b.get_gallery(req["sub"], req["rg"], req["gallery"]).to_arm())


def put_gallery(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.put_gallery(req.ctx, req["sub"], req["rg"], req["gallery"], req.body)


def patch_gallery(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.patch_gallery(req.ctx, req["sub"], req["rg"], req["gallery"], req.body)


def delete_gallery(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.delete_gallery(req.ctx, req["sub"], req["rg"], req["gallery"])


def list_images(b: ComputeBackend, req: ArmRequest) -> Reply:
    return _listing([i.to_arm() for i in b.list_images(req["sub"], req["rg"], req["gallery"])])


def get_image(b: ComputeBackend, req: ArmRequest) -> Reply:
    return Reply(200, b.get_image(req["sub"], req["rg"], req["gallery"], req["image"]).to_arm())


def put_image(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.put_image(req.ctx, req["sub"], req["rg"], req["gallery"], req["image"], req.body)


def patch_image(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.patch_image(req.ctx, req["sub"], req["rg"], req["gallery"], req["image"], req.body)


def delete_image(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.delete_image(req.ctx, req["sub"], req["rg"], req["gallery"], req["image"])


def _version_json(b: ComputeBackend, req: ArmRequest, version: Any) -> dict[str, Any]:
    fractions = b.replication_fractions(version) if "replicationstatus" in _expand(req) else None
    body: dict[str, Any] = version.to_arm(replication_fractions=fractions)
    return body


def list_versions(b: ComputeBackend, req: ArmRequest) -> Reply:
    versions = b.list_versions(req["sub"], req["rg"], req["gallery"], req["image"])
    return _listing([_version_json(b, req, v) for v in versions])


def get_version(b: ComputeBackend, req: ArmRequest) -> Reply:
    version = b.get_version(req["sub"], req["rg"], req["gallery"], req["image"], req["version"])
    return Reply(200, _version_json(b, req, version))


def put_version(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.put_version(
        req.ctx, req["sub"], req["rg"], req["gallery"], req["image"], req["version"], req.body
    )


def patch_version(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.patch_version(
        req.ctx, req["sub"], req["rg"], req["gallery"], req["image"], req["version"], req.body
    )


def delete_version(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.delete_version(req.ctx, req["sub"], req["rg"], req["gallery"], req["image"], req["version"])


# --- role assignments (Microsoft.Authorization) ---------------------------------------------


def list_role_assignments(b: ComputeBackend, req: ArmRequest) -> Reply:
    found = b.list_role_assignments(req["sub"], req["ascope"], req.ctx.query.get("$filter", ""))
    return _listing([ra.to_arm() for ra in found])


def get_role_assignment(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.get_role_assignment(req["sub"], req["ascope"], req["name"])


def put_role_assignment(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.put_role_assignment(req.ctx, req["sub"], req["ascope"], req["name"], req.body)


def delete_role_assignment(b: ComputeBackend, req: ArmRequest) -> Reply:
    return b.delete_role_assignment(req["sub"], req["ascope"], req["name"])


HANDLERS: dict[str, Handler] = {
    name: fn
    for name, fn in globals().items()
    if callable(fn)
    and not name.startswith("_")
    and getattr(fn, "__module__", None) == __name__
    and name[0].islower()
}
HANDLERS.update(NETWORK_HANDLERS)
HANDLERS.update(PERMISSIONS_HANDLERS)
