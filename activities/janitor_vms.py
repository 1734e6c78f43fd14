"""The janitor's VMs, network interfaces and managed disks: what a clone or a boot test left behind.

A capture by clone (``activities/clones.py``) makes a VM, its NIC and disk copies in the build group; a
boot test (``activities/boot_tests.py``) a VM and its NIC in the test group. Each carries the run's
ownership tags (``shared.ids.ownership_tags``: ``image-pipeline:run-id``, ``image-pipeline:capture-id``);
the OS disk a boot-test VM makes from the image is untagged and goes with the VM (``deleteOption:
Delete``). A terminated or crashed run leaves them; ``activities.janitor`` lists them through
:func:`machine_lists`, reads one again with :func:`current` and deletes it with :func:`delete`.

Deletes are started, not waited for (``lro.start``): a VM's delete takes its NIC and disks along, so the
scan lists VMs first, then NICs, then disks, and a NIC or disk still attached to a VM is skipped (its VM's
delete removes it, or the next janitor pass does once it is detached).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from activities import lro
from activities._common import as_dict, azure_call, get_or_none, parse_id, props
from shared import clients
from shared.contracts import Done
from shared.ids import TAG_CAPTURE_ID
from shared.janitor import JanitorScope, Kind, Leftover, run_of, when_of

Lister = tuple[str, Callable[[], Iterable[Any]], Callable[[dict[str, Any]], Leftover | None]]


def attached_to(kind: Kind, resource: dict[str, Any]) -> str | None:
    """The VM a NIC (``properties.virtualMachine``) or a disk (``managedBy``) is attached to."""
    if kind == "networkInterface":
        vm = props(resource).get("virtualMachine")
        return str(vm.get("id")) if isinstance(vm, dict) and vm.get("id") else None
    if kind == "disk":
        return str(resource.get("managedBy") or "") or None
    return None


def _leftover(kind: Kind, resource: dict[str, Any]) -> Leftover | None:
    tags = resource.get("tags") or {}
    run = run_of(tags)
    if not run:
        return None
    p = props(resource)
    return Leftover(
        kind=kind,
        resource_id=str(resource.get("id") or ""),
        run_id=run,
        capture_id=tags.get(TAG_CAPTURE_ID),
        created=when_of(p.get("timeCreated")),  # NICs have none: their run's start counts
        provisioning_state=str(p.get("provisioningState") or "Unknown"),
        attached_to=attached_to(kind, resource),
    )


def machine_lists(scope: JanitorScope) -> list[Lister]:
    """VMs, NICs, disks of the scope, in the order they are cleaned (subscription-wide lists are
    filtered by ARM to what the app may read, as for snapshots)."""
    compute, network = clients.compute(scope.subscription_id), clients.network(scope.subscription_id)
    rg = scope.resource_group
    vms = partial(compute.virtual_machines.list, rg) if rg else compute.virtual_machines.list_all
    nics = partial(network.network_interfaces.list, rg) if rg else network.network_interfaces.list_all
    disks = partial(compute.disks.list_by_resource_group, rg) if rg else compute.disks.list
    return [
        ("virtual machines", vms, partial(_leftover, "virtualMachine")),
        ("network interfaces", nics, partial(_leftover, "networkInterface")),
        ("managed disks", disks, partial(_leftover, "disk")),
    ]


def current(leftover: Leftover) -> dict[str, Any] | None:
    """The VM, NIC or disk as it is now (None when gone)."""
    rid = leftover.resource_id
    r = parse_id(rid, field="resourceId", step="clean_leftover")
    sub, rg, name = r.subscription_id, r.resource_group, r.name
    if leftover.kind == "virtualMachine":
        vms = clients.compute(sub).virtual_machines
        return get_or_none(lambda: as_dict(vms.get(rg, name)), step="read the VM", resource=rid)
    if leftover.kind == "networkInterface":
        nics = clients.network(sub).network_interfaces
        return get_or_none(lambda: as_dict(nics.get(rg, name)), step="read the NIC", resource=rid)
    disks = clients.compute(sub).disks
    return get_or_none(lambda: as_dict(disks.get(rg, name)), step="read the disk", resource=rid)


def changed(leftover: Leftover, now: dict[str, Any]) -> str | None:
    """Why the janitor must not delete it any more: attached to a VM, or already deleting."""
    vm = attached_to(leftover.kind, now)
    if vm:
        return f"it is attached to the VM {vm}; left alone (the VM's delete or the next pass removes it)"
    if str(props(now).get("provisioningState") or "").lower() == "deleting":
        return "it is already deleting"
    return None


def delete(action: str, rid: str) -> Done:
    """Start the delete of a VM (its NIC and disks go with it by their deleteOption), a NIC or a disk."""
    r = parse_id(rid, field="resourceId", step="clean_leftover")
    if action == "deleteVm":
        begin: Callable[..., Any] = clients.compute(r.subscription_id).virtual_machines.begin_delete
        what = "delete the VM"
    elif action == "deleteNic":
        begin, what = clients.network(r.subscription_id).network_interfaces.begin_delete, "delete the NIC"
    else:
        begin, what = clients.compute(r.subscription_id).disks.begin_delete, "delete the disk"
    with azure_call(what, rid):
        try:
            accepted = lro.start(begin, r.resource_group, r.name)
        except ResourceNotFoundError:
            return Done(resource_id=rid, changed=False)
    return Done(resource_id=rid, changed=True, operation_url=accepted.operation_url)
