"""HTTP API of the migration of managed images: ``POST /api/migrations``, ``GET /api/migrations/{id}``.

A migration moves every managed image of a scope (a resource group or a subscription) into a gallery,
one capture per image (``orchestrators.migration``). Its id comes from what it moves and where to
(``shared.migrations.migration_instance_id``), so posting it again is safe:

- **202** a new migration (or the next run of one that ended: images completed by earlier runs are
  not captured again, ``resumed: true``);
- **200** the same migration is running already: nothing new was started, its id and status URL;
- **409** ``MigrationRunning``: it is running with other options (regions, deleteSourceAfter…);
- **400** every invalid field, **413** a body over ``MAX_BODY_BYTES``.

``GET /api/migrations/{id}`` answers the counts (done / failed / running / pending / canceled) and
every image: its definition, version, state, error (with the capture's advice) and its capture id,
whose own status is ``GET /api/captures/{captureId}``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from orchestrators import names
from shared.api_bodies import ErrorDetail
from shared.ids import new_run_id
from shared.migration_api import MigrationAlreadyRunning, MigrationRunning
from shared.migration_status import ImageEntry, MigrationInput
from shared.migrations import changed_options, is_migration_id, migration_instance_id, validate_migration
from shared.settings import get_settings
from triggers.http_helpers import configuration_error, error_body, json_response, read_request
from triggers.migration_view import migration_links, read_view
from triggers.status_reader import read_instance

log = logging.getLogger(__name__)
migrations_bp = df.Blueprint()


def migration_not_found(migration_id: str) -> func.HttpResponse:
    shown = migration_id[:100]
    return json_response(error_body("MigrationNotFound", f"There is no migration with id {shown!r}."), 404)


async def _earlier(client: df.DurableOrchestrationClient, migration_id: str) -> list[ImageEntry]:
    """The images earlier runs completed (a new run does not capture them again)."""
    read = await read_view(client, migration_id)
    if read is None:
        return []
    view, _, entries = read
    return [
        e.model_copy(update={"earlier_run": e.earlier_run or view.run_id})
        for e in entries
        if e.state == "completed"
    ]


def _running_answer(req: func.HttpRequest, mid: str, current: Any, posted: Any) -> func.HttpResponse:
    running = (current.input or {}).get("request") if isinstance(current.input, dict) else None
    differ = changed_options(running or {}, posted)
    links = migration_links(req, mid)
    if differ:
        message = (
            f"Migration {mid} is running with other {', '.join(differ)}: nothing was started. Wait for it to "
            "end (or cancel it), then post again to run it with these options."
        )
        refused = MigrationRunning(
            error=ErrorDetail(code="MigrationRunning", message=message),
            id=mid,
            runtime_status=current.runtime_status,
            **links,
        )
        return json_response(refused.to_wire(), 409)
    running_now = MigrationAlreadyRunning(
        id=mid,
        runtime_status=current.runtime_status,
        message="This migration is running already: nothing new was started. Follow migrationStatusUri.",
        **links,
    )
    return json_response(running_now.to_wire(), 200, headers={"Location": links["migrationStatusUri"]})


@migrations_bp.route(route="migrations", methods=["POST"])
@migrations_bp.durable_client_input(client_name="client")
async def post_migration(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    request = read_request(req, validate_migration)
    if isinstance(request, func.HttpResponse):
        return request
    try:
        settings = get_settings()
    except ValueError as exc:  # a malformed app setting (shared.settings names it)
        log.error("cannot start a migration: %s", exc)
        return configuration_error(exc)
    mid = migration_instance_id(request)
    current = await read_instance(client, mid, with_input=True)
    if current is not None and current.active:
        return _running_answer(req, mid, current, request)
    earlier = await _earlier(client, mid) if current is not None else []
    previous = current.input.get("runId") if current is not None and isinstance(current.input, dict) else None
    run_id = new_run_id(mid, datetime.now(UTC), previous if isinstance(previous, str) else None)
    payload = MigrationInput(
        migration_id=mid,
        run_id=run_id,
        request=request,
        policy=settings.policy,
        max_parallel=settings.migration_max_parallel,
        start_spacing_seconds=settings.migration_start_spacing_seconds,
        earlier=earlier,
    ).to_wire()
    try:
        await client.start_new(names.MIGRATE_IMAGES, mid, payload)
    except Exception:  # lost a race with another post of the same migration
        again = await read_instance(client, mid, with_input=True)
        if again is not None and again.active:
            return _running_answer(req, mid, again, request)
        raise
    log.info("migration %s started for %s", mid, request.scope)
    links = migration_links(req, mid)
    return json_response(
        {
            "id": mid,
            "runId": run_id,
            "resumed": current is not None,
            "earlierCompleted": len(earlier),
            **links,
        },
        202,
        headers={"Location": links["migrationStatusUri"], "Retry-After": "10"},
    )


@migrations_bp.route(route="migrations/{id}", methods=["GET"])
@migrations_bp.durable_client_input(client_name="client")
async def get_migration(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    mid = req.route_params.get("id", "")
    if not is_migration_id(mid):  # checked before the id reaches the Durable client's URLs
        return migration_not_found(mid)
    read = await read_view(client, mid, req)
    if read is None:
        return migration_not_found(mid)
    return json_response(read[0].to_wire(), 200)
