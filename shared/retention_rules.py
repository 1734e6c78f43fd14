"""Which versions of an image definition retention deletes: a pure function of the versions as listed.

``retention.keepLatest: N`` keeps the N newest *usable* versions (provisioning Succeeded and replication
Completed in every region), the version this capture just made always among them, and deletes the older
usable ones, except a version that

- is still being created, updated or replicated (or ended Failed: the janitor's business, not ours);
- has ``safetyProfile.blockDeletionBeforeEndOfLife`` true and an end of life that has not passed (Azure
  refuses the delete);
- has ``safetyProfile.allowDeletionOfReplicatedLocations`` false: its owner protected its replicas. Azure
  documents the flag for removing regions, and whether it also blocks deleting the version is not known,
  so retention leaves such a version alone (our rule: docs/azure-facts.md, "Retention and sharing").

Newest means the latest ``publishedDate``, ties broken by the higher version number. A version already
``Deleting`` counts as deleted (a retry finds the deletion it started).
"""

from __future__ import annotations

from datetime import UTC, datetime

from shared.release_spec import KeptVersion, VersionFacts


def _version_key(name: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in name.split("."))
    except ValueError:
        return ()


def _when(text: str | None) -> datetime:
    if not text:
        return datetime.min.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def newest_first(versions: list[VersionFacts]) -> list[VersionFacts]:
    """The versions by ``publishedDate``, newest first; the higher version number first on a tie."""
    return sorted(versions, key=lambda v: (_when(v.published_date), _version_key(v.name)), reverse=True)


def _state(v: VersionFacts) -> str:
    return (v.provisioning_state or "").lower()


def usable(v: VersionFacts) -> bool:
    states = [s.lower() for s in v.region_states.values()]
    return _state(v) == "succeeded" and bool(states) and all(s == "completed" for s in states)


def protection(v: VersionFacts, now: datetime) -> str | None:
    """Why ``v`` may not be deleted although it is beyond the count, or None."""
    if not usable(v):
        pending = sorted(r for r, s in v.region_states.items() if s.lower() != "completed")
        if _state(v) == "failed":
            return "provisioning state Failed (retention deletes only usable versions)"
        if _state(v) != "succeeded":
            return f"provisioning state {v.provisioning_state or 'unknown'}: still being created or updated"
        return "still replicating to " + (", ".join(pending) or "its regions")
    if v.block_deletion_before_end_of_life and (
        v.end_of_life_date is None or _when(v.end_of_life_date) > now
    ):
        return "safetyProfile.blockDeletionBeforeEndOfLife is true and its end of life has not passed"
    if v.allow_deletion_of_replicated_locations is False:
        return "safetyProfile.allowDeletionOfReplicatedLocations is false (its replicas are protected)"
    return None


def retention_plan(
    versions: list[VersionFacts], keep_latest: int, current_id: str, now: datetime
) -> tuple[list[str], list[KeptVersion]]:
    """(ids to delete, oldest first; kept versions, newest first, with why) for ``keep_latest``; the version
    ``current_id`` is never deleted."""
    current = current_id.lower()
    delete: list[str] = []
    kept: list[KeptVersion] = []
    counted = 0
    ordered = newest_first(versions)
    # The new version counts first, wherever its publishedDate puts it.
    ordered.sort(key=lambda v: v.version_id.lower() != current)
    for v in ordered:
        if v.version_id.lower() == current:
            counted += 1
            kept.append(KeptVersion(version_id=v.version_id, reason="the version this capture made"))
            continue
        if _state(v) == "deleting":
            delete.append(v.version_id)
            continue
        if usable(v) and counted < keep_latest:
            counted += 1
            kept.append(KeptVersion(version_id=v.version_id, reason=f"among the {keep_latest} newest"))
            continue
        why = protection(v, now)
        if why is not None:
            kept.append(KeptVersion(version_id=v.version_id, reason=why))
        else:
            delete.append(v.version_id)
    return delete[::-1], kept
