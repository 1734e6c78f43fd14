"""The pure part of a migration: which images go where, in which batch, with how many at a time.

No I/O and no clock: the root calls these with what ``list_managed_images`` answered.
"""

from __future__ import annotations

from shared.errors import ErrorInfo
from shared.migration_status import (
    BATCH_SIZE,
    MAX_IMAGES,
    ImageEntry,
    ManagedImageFacts,
    MigrationInput,
)
from shared.migrations import child_capture_id, definition_name_problem, render_definition_name


def _failed(entry: ImageEntry, code: str, message: str, advice: str) -> ImageEntry:
    error = ErrorInfo.terminal("plan", code, message, resource=entry.image_id, advice=advice)
    return entry.model_copy(update={"state": "failed", "error": error, "capture_id": None})


def plan_images(inp: MigrationInput, images: list[ManagedImageFacts]) -> list[ImageEntry]:
    """One entry per image: pending (to capture), completed by an earlier run, or failed with advice."""
    req = inp.request
    earlier = {e.image_id.lower(): e for e in inp.earlier}
    entries: list[ImageEntry] = []
    for image in images:
        name = render_definition_name(req.definition_name, image.name, image.resource_group)
        entry = ImageEntry(
            image_id=image.id,
            name=image.name,
            resource_group=image.resource_group,
            definition=name,
            capture_id=child_capture_id(image.id),
            size_gib=image.size_gib,
        )
        before = earlier.pop(image.id.lower(), None)
        if before is not None:
            entries.append(before)
            continue
        problem = definition_name_problem(name)
        if problem:
            entry = _failed(
                entry,
                "InvalidDefinitionName",
                f"The naming rule {req.definition_name!r} gives image {image.name}: {problem}.",
                "Choose a definitionName rule that gives valid names, or migrate this image on its own.",
            )
        elif (image.provisioning_state or "Succeeded").lower() != "succeeded":
            entry = _failed(
                entry,
                "ImageNotReady",
                f"The managed image {image.name} is {image.provisioning_state}, not Succeeded: "
                "Azure makes no image version from it.",
                "Wait until the image is Succeeded (or delete it), then post the migration again.",
            )
        entries.append(entry)
    entries = _refuse_shared_definitions(entries, req.definition_name)
    # Completed earlier, since deleted with deleteSourceAfter "verified": still part of the migration.
    entries.extend(earlier.values())
    return entries


def _refuse_shared_definitions(entries: list[ImageEntry], rule: str) -> list[ImageEntry]:
    """Two images the rule names alike (same name in two groups) would share one definition: refuse both."""
    seen: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        seen.setdefault(e.definition.lower(), []).append(i)
    out = list(entries)
    for indices in seen.values():
        if len(indices) < 2:
            continue
        names = ", ".join(f"{entries[i].resource_group}/{entries[i].name}" for i in indices)
        for i in indices:
            if out[i].state == "pending":
                out[i] = _failed(
                    out[i],
                    "DefinitionNameTaken",
                    f"The naming rule {rule!r} gives the images {names} the same definition "
                    f"{out[i].definition!r}; each image needs a definition of its own.",
                    "Use a rule with {resourceGroup}, e.g. '{resourceGroup}-{image}', or migrate one resource "
                    "group at a time.",
                )
    return out


def too_large(total: int, scope: str) -> ErrorInfo | None:
    if total <= MAX_IMAGES:
        return None
    return ErrorInfo.terminal(
        "list",
        "MigrationTooLarge",
        f"The scope {scope} holds {total} managed images; one migration moves at most {MAX_IMAGES}.",
        resource=scope,
        advice="Migrate one resource group at a time (scope /subscriptions/<id>/resourceGroups/<name>).",
    )


def batches(entries: list[ImageEntry]) -> list[list[ImageEntry]]:
    """The pending entries in batches of at most ``BATCH_SIZE``, each entry told its batch.

    Largest first, dealt round-robin over the batches: the batches start their captures interleaved
    (``migrate_batch``), so the images start in order of size and the longest one is never last.
    """
    pending = sorted(
        (e for e in entries if e.state == "pending"), key=lambda e: (-e.size_gib, e.image_id.lower())
    )
    count = -(-len(pending) // BATCH_SIZE)
    out: list[list[ImageEntry]] = [[] for _ in range(count)]
    for r, e in enumerate(pending):
        out[r % count].append(e.model_copy(update={"batch": r % count}))
    return out


def shares(max_parallel: int, sizes: list[int]) -> list[int]:
    """How many captures each of the batches that start first may run at once: ``max_parallel`` dealt
    round-robin over at most ``max_parallel`` batches, none above its size (each gets at least 1). Later
    batches take over the share of a batch that ended."""
    first = sizes[: max(1, min(len(sizes), max_parallel))]
    caps = [0] * len(first)
    left = max(max_parallel, 1)
    while left > 0 and any(c < s for c, s in zip(caps, first, strict=True)):
        for i, size in enumerate(first):
            if left > 0 and caps[i] < size:
                caps[i] += 1
                left -= 1
    return [max(1, c) for c in caps]
