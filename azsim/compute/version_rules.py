"""Image version rules beyond create/replicate: which version "latest" of a definition is in a region,
the safety profile (updates, and a delete it blocks), and the guest a version carries from its source.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from azsim.compute.guest import GuestImage, guest_of_disk
from azsim.compute.models import GalleryImage, GalleryImageVersion
from azsim.compute.state import ComputeState, canonical_id
from azsim.core.clock import wall_time
from azsim.core.errors import ArmError, invalid_parameter


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in name.split("."))


def _region_excluded(version: GalleryImageVersion, region: str) -> bool:
    """The regional flag takes precedence over the version's publishingProfile.excludeFromLatest."""
    for r in version.regions:
        if r.region == region:
            return r.exclude_from_latest or version.exclude_from_latest
    return version.exclude_from_latest


def not_available_in_region(resource_id: str, region: str) -> ArmError:
    return invalid_parameter(
        f"The gallery image {resource_id} is not available in {region} region. Please contact image owner to "
        "replicate to this region, or change your requested region.",
        "imageReference",
    )


class VersionRules(ComputeState):
    """Latest resolution, safety profile and the guest of a version's source."""

    def _source_guest(self, os_disk_source_id: str) -> GuestImage:
        disk = self.disks.get(canonical_id(os_disk_source_id).lower())
        return guest_of_disk(disk, self.vms) if disk is not None else GuestImage()

    def latest_version(self, image: GalleryImage, region: str) -> GalleryImageVersion:
        """The highest version not excluded from latest (in ``region``); Azure's error when there is none."""
        candidates = [
            v
            for v in self.versions.values()
            if v.image is image and v.provisioning_state != "Failed" and not _region_excluded(v, region)
        ]
        if not candidates:
            raise invalid_parameter(
                f'There is no latest image version exists for "{image.id}"', "imageReference.id"
            )
        return max(candidates, key=lambda v: _version_key(v.name))

    def _apply_safety(self, version: GalleryImageVersion, props: dict[str, Any]) -> None:
        safety = props.get("safetyProfile")
        if not isinstance(safety, dict) or version.provisioning_state in ("Creating", "Updating"):
            return  # an update while one runs is refused by the publishing update that follows
        if "allowDeletionOfReplicatedLocations" in safety:
            version.allow_deletion_of_replicated_locations = bool(
                safety["allowDeletionOfReplicatedLocations"]
            )
        if "blockDeletionBeforeEndOfLife" in safety:
            version.block_deletion_before_end_of_life = bool(safety["blockDeletionBeforeEndOfLife"])

    def _check_delete_allowed(self, version: GalleryImageVersion) -> None:
        """safetyProfile.blockDeletionBeforeEndOfLife: no delete while the end-of-life date is ahead
        (the message is ours: docs/azsim-arm.md)."""
        if not version.block_deletion_before_end_of_life:
            return
        eol = _parse_date(version.end_of_life_date)
        now = dt.datetime.fromtimestamp(wall_time(self.lifecycle.clock), dt.UTC)
        if eol is None or eol > now:
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Gallery image version '{version.id}' cannot be deleted before its end of life date "
                f"('{version.end_of_life_date or 'not set'}') because safetyProfile.blockDeletionBeforeEndOfLife "
                "is true.",
            )


def _parse_date(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def image_reference_target(image_id: str) -> tuple[str, str | None]:
    """(definition id, version name or None for latest) of an imageReference.id, lower-cased keys kept."""
    text = canonical_id(image_id).rstrip("/")
    parts = text.split("/")
    lowered = [p.lower() for p in parts]
    if len(parts) >= 2 and lowered[-2] == "versions":
        return "/".join(parts[:-2]), parts[-1]
    return text, None
