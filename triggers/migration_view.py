"""Reading a migration back: its root's plan and state, and its batches' entries, as one view.

``GET /api/migrations/{id}``, the cancel endpoint and a re-post of a finished migration all read it
here. The root's input holds the plan (every image with its definition and capture id) once it has
listed the images; the batches' custom statuses hold the entries of the images they run (their
outputs once they ended), and the root's output holds every entry once the migration ended.
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df
import azure.functions as func

from shared.instances import InstanceSnapshot
from shared.migration_status import (
    BatchProgress,
    ImageEntry,
    MigrationInput,
    MigrationProgress,
    MigrationView,
    count,
    merge_entries,
)
from triggers.status_reader import read_instance


def migration_url(req: func.HttpRequest, migration_id: str) -> str:
    """The status URL of a migration, from any request under ``…/migrations`` (query dropped)."""
    base = req.url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    return base.rsplit("/migrations", 1)[0] + f"/migrations/{migration_id}"


def migration_links(req: func.HttpRequest, migration_id: str) -> dict[str, str]:
    url = migration_url(req, migration_id)
    return {"migrationStatusUri": url, "cancelPostUri": f"{url}/cancel"}


def _model(cls: Any, value: Any) -> Any:
    if not isinstance(value, dict):
        return None
    try:
        return cls.from_wire(value)
    except ValueError:
        return None


def root_input(root: InstanceSnapshot) -> MigrationInput | None:
    return _model(MigrationInput, root.input)


def root_progress(root: InstanceSnapshot) -> MigrationProgress | None:
    return _model(MigrationProgress, root.custom_status)


async def batch_entries(client: df.DurableOrchestrationClient, batch_id: str) -> BatchProgress | None:
    snap = await read_instance(client, batch_id)
    if snap is None:
        return None
    done = snap.runtime_status == "Completed" and isinstance(snap.output, dict)
    return _model(BatchProgress, snap.output if done else snap.custom_status)


async def entries_of(
    client: df.DurableOrchestrationClient, root: InstanceSnapshot, inp: MigrationInput | None
) -> list[ImageEntry]:
    """Every image of the migration's current run, as far as it got."""
    output = root.output if root.runtime_status == "Completed" else None
    if isinstance(output, dict) and isinstance(output.get("images"), list):
        return [ImageEntry.from_wire(e) for e in output["images"]]
    if inp is None:
        return []
    progress = root_progress(root)
    reported: list[ImageEntry] = []
    for batch_id in progress.batches if progress else []:
        batch = await batch_entries(client, batch_id)
        reported += batch.entries if batch else []
    return merge_entries(inp.plan, reported)


async def read_view(
    client: df.DurableOrchestrationClient, migration_id: str, req: func.HttpRequest | None = None
) -> tuple[MigrationView, InstanceSnapshot, list[ImageEntry]] | None:
    root = await read_instance(client, migration_id, with_input=True)
    if root is None:
        return None
    inp = root_input(root)
    progress = root_progress(root)
    entries = await entries_of(client, root, inp)
    state: str = progress.state if progress else "listing"
    if root.runtime_status in ("Failed", "Terminated"):
        state = root.runtime_status.lower()
    view = MigrationView(
        id=migration_id,
        run_id=inp.run_id if inp else None,
        runtime_status=root.runtime_status,
        state=state,
        scope=inp.request.scope if inp else None,
        gallery=inp.request.gallery.to_wire() if inp else None,
        delete_source_after=inp.request.delete_source_after if inp else None,
        counts=count(entries),
        images=entries,
        cancel_requested=bool(progress and progress.cancel_requested),
        error=progress.error if progress else None,
        started=progress.started if progress else root.created_time,
        ended=progress.ended if progress else None,
        **(migration_links(req, migration_id) if req is not None else {}),
    )
    return view, root, entries
