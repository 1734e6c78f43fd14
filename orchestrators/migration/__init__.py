"""Orchestrators of the migration of managed images into a gallery (``POST /api/migrations``).

``migrate_images`` (``root``) lists the managed images of the scope, plans each one (its definition and
capture id, ``plan``) and runs them in batches; ``migrate_batch`` (``batch``) runs one batch: one
``capture_image`` sub-orchestration per image (``source: {"managedImageId": …}``), at most its share
of ``MIGRATION_MAX_PARALLEL`` at a time, and deletes a source image once its version is verified when
the request says ``deleteSourceAfter: "verified"`` (``children``). See docs/migrations.md.
"""

from orchestrators.migration.batch import migrate_batch
from orchestrators.migration.root import migrate_images

__all__ = ["migrate_batch", "migrate_images"]
