"""The answers of the migration API (``triggers.http_migrations``, ``triggers.migration_cancel``) and their
OpenAPI operations (``shared.openapi`` adds ``MODELS`` and ``paths()`` to its document)."""

from __future__ import annotations

from pydantic import Field
from pydantic.json_schema import JsonSchemaMode

from shared.api_bodies import ErrorDetail
from shared.bounded_json import MAX_BODY_BYTES
from shared.migration_status import MigrationView
from shared.migrations import MigrationRequest
from shared.model_base import WireModel
from shared.openapi_parts import JSON, UNAUTHORIZED, Schema, header, id_parameter, json_answer, ref


class MigrationAccepted(WireModel):
    """202: a migration run started: follow ``migrationStatusUri`` (also in ``Location``)."""

    id: str = Field(
        description="The migration id: the same for the same scope, gallery, naming rule and version."
    )
    run_id: str = Field(description="This run's id.")
    resumed: bool = Field(description="True when an earlier run of this migration ended before this one.")
    earlier_completed: int = Field(description="Images earlier runs completed: not captured again.")
    migration_status_uri: str
    cancel_post_uri: str


class MigrationAlreadyRunning(WireModel):
    """200: this migration is running already; nothing new was started."""

    id: str
    runtime_status: str
    message: str
    migration_status_uri: str
    cancel_post_uri: str


class MigrationRunning(WireModel):
    """409 ``MigrationRunning``: it runs with other options; nothing was started."""

    error: ErrorDetail
    id: str
    runtime_status: str
    migration_status_uri: str
    cancel_post_uri: str


class MigrationCancelAccepted(WireModel):
    """202: the cancel was raised to the migration, its batches and their running captures."""

    id: str
    runtime_status: str
    message: str
    migration_status_uri: str


class MigrationAlreadyFinished(WireModel):
    """409 ``MigrationAlreadyFinished``: the migration ended; nothing to cancel."""

    error: ErrorDetail
    id: str
    runtime_status: str | None = None
    migration_status_uri: str


MODELS: tuple[tuple[type[WireModel], JsonSchemaMode], ...] = (
    (MigrationRequest, "validation"),
    (MigrationAccepted, "serialization"),
    (MigrationAlreadyRunning, "serialization"),
    (MigrationRunning, "serialization"),
    (MigrationView, "serialization"),
    (MigrationCancelAccepted, "serialization"),
    (MigrationAlreadyFinished, "serialization"),
)


def _answer(description: str, model: str, location: bool = False) -> Schema:
    headers = {"Location": header("The migration's status URL.")} if location else None
    return json_answer(description, ref(model), headers)


_NOT_FOUND = _answer("There is no migration with that id (code MigrationNotFound).", "ErrorBody")
_TOO_LARGE = _answer(f"The body is larger than {MAX_BODY_BYTES} bytes.", "FieldErrors")
_ID = id_parameter(
    "The migration id (`migration-<scope>-<hash>`, from a 202 or 200 answer). Any other id is 404."
)
EXAMPLE = {
    "summary": "Every managed image of a resource group into a gallery, the sources deleted once verified",
    "value": {
        "scope": "/subscriptions/89d0a3c1-7028-549c-b21b-dc72b5b9bb42/resourceGroups/rg-legacy-images",
        "gallery": {"resourceGroup": "rg-images", "name": "galLegacy"},
        "definitionName": "{image}",
        "targetRegions": [{"name": "westeurope"}, {"name": "eastus2"}],
        "deleteSourceAfter": "verified",
    },
}


def _post() -> Schema:
    return {
        "operationId": "startMigration",
        "summary": "Migrate every managed image of a resource group or subscription into a gallery",
        "description": "One capture per image (source managedImageId), at most MIGRATION_MAX_PARALLEL at once. "
        "Posting the same migration again resumes it: while it runs nothing new starts (200); after it "
        "ended, a new run captures only the images not completed yet (202).",
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": ref("MigrationRequest"), "examples": {"resourceGroup": EXAMPLE}}},
        },
        "responses": {
            "200": _answer(
                "The same migration is running: nothing new was started.", "MigrationAlreadyRunning", True
            ),
            "202": _answer("A run of the migration started.", "MigrationAccepted", True),
            "400": _answer("The request is invalid: every invalid field and why.", "FieldErrors"),
            "401": UNAUTHORIZED,
            "409": _answer(
                "The migration runs with other options (code MigrationRunning).", "MigrationRunning"
            ),
            "413": _TOO_LARGE,
            "500": _answer("An app setting is malformed (code ConfigurationError).", "ErrorBody"),
        },
    }


def paths() -> dict[str, Schema]:
    get = {
        "operationId": "getMigration",
        "summary": "A migration's progress: counts and every image's definition, version, state and error",
        "parameters": [_ID],
        "responses": {
            "200": _answer("The migration.", "MigrationView"),
            "401": UNAUTHORIZED,
            "404": _NOT_FOUND,
        },
    }
    cancel = {
        "operationId": "cancelMigration",
        "summary": "Cancel a migration: no capture starts any more, the running ones are canceled",
        "parameters": [_ID],
        "requestBody": {"required": False, "content": {JSON: {"schema": ref("CancelRequest")}}},
        "responses": {
            "202": _answer("The cancel was requested; follow migrationStatusUri.", "MigrationCancelAccepted"),
            "400": _answer("The body nests too deeply.", "FieldErrors"),
            "401": UNAUTHORIZED,
            "404": _NOT_FOUND,
            "409": _answer(
                "The migration already ended (code MigrationAlreadyFinished).", "MigrationAlreadyFinished"
            ),
            "413": _TOO_LARGE,
        },
    }
    return {
        "/api/migrations": {"post": _post()},
        "/api/migrations/{id}": {"get": get},
        "/api/migrations/{id}/cancel": {"post": cancel},
    }
