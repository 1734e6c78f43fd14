"""Durable names of the activities and orchestrators, in one place.

Activities are called by name (not by function object) so this package never imports
``activities`` — the determinism boundary is visible at the import line.
"""

from __future__ import annotations

# Activities (registered by activities.bp).
GET_VM_FACTS = "get_vm_facts"
CHECK_GALLERY = "check_gallery"
CHECK_EXPORT_TARGET = "check_export_target"
LIST_REGIONS = "list_regions"
START_GUEST_PREPARE = "start_guest_prepare"
GET_POWER_STATE = "get_power_state"
START_DEALLOCATE = "start_deallocate"
GENERALIZE_VM = "generalize_vm"
START_SNAPSHOT = "start_snapshot"
GET_SNAPSHOT = "get_snapshot"
ENSURE_DEFINITION = "ensure_definition"
START_IMAGE_VERSION = "start_image_version"
GET_VERSION_STATUS = "get_version_status"
DELETE_IMAGE_VERSION = "delete_image_version"
START_EXPORT = "start_export"
GET_COPY_STATUS = "get_copy_status"
ABORT_COPY = "abort_copy"
REVOKE_SNAPSHOT_ACCESS = "revoke_snapshot_access"
DELETE_SNAPSHOT = "delete_snapshot"
GET_SNAPSHOT_DELETION = "get_snapshot_deletion"
PUBLISH_NOTICE = "publish_notice"  # activities.notices.bp

# Orchestrators (registered by orchestrators.bp).
CAPTURE_IMAGE = "capture_image"
PUBLISH_VERSION = "publish_version"
EXPORT_DISK = "export_disk"
