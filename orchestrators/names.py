"""Durable names of the orchestrators, in one place (activities are declared in ``shared.activity_types``).

Orchestrators call activities by their declared name (not by function object) so this package never
imports ``activities`` — the determinism boundary is visible at the import line.
"""

from __future__ import annotations

# Orchestrators (registered by orchestrators.bp). Stored histories and inputs use these names.
CAPTURE_IMAGE = "capture_image"
PUBLISH_VERSION = "publish_version"
EXPORT_DISK = "export_disk"
# The migration of managed images (orchestrators.migration): the root and its batches of captures.
MIGRATE_IMAGES = "migrate_images"
MIGRATE_BATCH = "migrate_batch"
