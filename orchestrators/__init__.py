"""Deterministic orchestrators: no I/O, clock, environment or randomness; all waiting on durable timers.

``bp`` carries ``capture_image`` (the capture: ``orchestrators.capture``), ``publish_version`` and
``export_disk`` (its long-running branches, each bounding its own history with continue-as-new); ``migrate_images`` and ``migrate_batch`` (``orchestrators.migration``:
the migration of many managed images, one ``capture_image`` per image).
"""

from orchestrators import capture, export_disk, migration, publish_version
from orchestrators.blueprint import bp

__all__ = ["bp", "capture", "export_disk", "migration", "publish_version"]
