"""Every Azure side effect of the capture, one activity per Azure thing, registered on one Blueprint.

``function_app.py`` does ``app.register_functions(activities.bp)``. Each activity is declared once in
``shared.activity_types`` (name, input type, result type); its function here is decorated with that
declaration (``activities._common.activity``), takes ``payload`` = ``<Input>.to_wire()`` and returns
``<Result>.to_wire()``, and is registered under the declared name. Modules by Azure concern:

- ``virtual_machines``: get_vm_facts, get_power_state, start_deallocate, generalize_vm, start_guest_prepare
- ``preflight``: check_gallery, check_export_target, list_regions
- ``permissions``: check_permissions
- ``snapshots``: start_snapshot, get_snapshot, revoke_snapshot_access, delete_snapshot,
  get_snapshot_deletion
- ``gallery``: ensure_definition, start_image_version, get_version_status, delete_image_version
- ``exports``: start_export, get_copy_status, abort_copy
- ``retention``: list_definition_versions
- ``sharing``: assign_role (role assignments; reusable by any stage that grants access)
- ``marketplace``: check_marketplace, check_marketplace_vhds
- ``clones``: check_clone_target, ensure_clone_disk, ensure_clone_nic, create_clone_vm, get_clone_vm,
  delete_clone (captureMode "clone")
- ``sources``: read_source (a managed image, snapshots or VHD blobs as a capture's source)
- ``migrations``: list_managed_images, delete_managed_image (the migration of managed images)
- ``traces``: record_trace (the run's root and stage spans, ``shared.telemetry``)
- ``boot_tests``: start_boot_test, check_boot_test; ``boot_test_cleanup``: delete_boot_test,
  get_boot_test_leftovers, set_version_latest
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import azure.durable_functions as df

from activities import (
    boot_test_cleanup,
    boot_tests,
    clones,
    exports,
    gallery,
    marketplace,
    migrations,
    permissions,
    preflight,
    retention,
    sharing,
    snapshots,
    sources,
    traces,
    virtual_machines,
)
from activities._common import IMPLEMENTATIONS
from shared.activity_types import AZURE_ACTIVITIES

_MODULES = (
    virtual_machines,
    preflight,
    permissions,
    snapshots,
    gallery,
    clones,
    exports,
    traces,
    retention,
    sharing,
    marketplace,
    clones,
    boot_tests,
    boot_test_cleanup,
    sources,
    migrations,
)  # importing them fills IMPLEMENTATIONS


def _implementation(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    try:
        return IMPLEMENTATIONS[name]
    except KeyError:  # a declaration without a function: fail at import, not at the first capture
        raise RuntimeError(
            f"activity {name} is declared in shared.activity_types but not implemented"
        ) from None


ACTIVITIES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    a.name: _implementation(a.name) for a in AZURE_ACTIVITIES
}

bp = df.Blueprint()
for _name, _fn in ACTIVITIES.items():
    # The decorator records the function on the blueprint; the module-level function stays a plain callable.
    bp.activity_trigger(input_name="payload", activity=_name)(_fn)

__all__ = ["ACTIVITIES", "bp"]
