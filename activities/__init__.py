"""Every Azure side effect of the capture, one activity per Azure thing, registered on one Blueprint.

``function_app.py`` does ``app.register_functions(activities.bp)``. Each activity takes
``payload`` = ``<Input>.to_wire()`` and returns ``<Result>.to_wire()`` (types in ``shared.contracts``);
orchestrators call them by the names below. Modules by Azure concern:

- ``virtual_machines``: get_vm_facts, get_power_state, start_deallocate, generalize_vm, start_guest_prepare,
  get_guest_prepare_status
- ``preflight``: check_gallery, check_export_target, list_regions
- ``permissions``: check_permissions
- ``snapshots``: start_snapshot, get_snapshot, revoke_snapshot_access, delete_snapshot,
  get_snapshot_deletion
- ``gallery``: ensure_definition, start_image_version, get_version_status, delete_image_version
- ``exports``: start_export, get_copy_status, abort_copy
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import azure.durable_functions as df

from activities import exports, gallery, permissions, preflight, snapshots, virtual_machines

ACTIVITIES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    fn.__name__: fn
    for fn in (
        virtual_machines.get_vm_facts,
        virtual_machines.get_power_state,
        virtual_machines.start_deallocate,
        virtual_machines.generalize_vm,
        virtual_machines.start_guest_prepare,
        virtual_machines.get_guest_prepare_status,
        preflight.check_gallery,
        preflight.check_export_target,
        preflight.list_regions,
        permissions.check_permissions,
        snapshots.start_snapshot,
        snapshots.get_snapshot,
        snapshots.revoke_snapshot_access,
        snapshots.delete_snapshot,
        snapshots.get_snapshot_deletion,
        gallery.ensure_definition,
        gallery.start_image_version,
        gallery.get_version_status,
        gallery.delete_image_version,
        exports.start_export,
        exports.get_copy_status,
        exports.abort_copy,
    )
}

bp = df.Blueprint()
for _fn in ACTIVITIES.values():
    # The decorator records the function on the blueprint; the module-level function stays a plain callable.
    bp.activity_trigger(input_name="payload")(_fn)

__all__ = ["ACTIVITIES", "bp"]
