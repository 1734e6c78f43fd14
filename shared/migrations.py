"""The migration request (``POST /api/migrations``), its validation, and the ids that make it resumable.

A migration moves every managed image (``Microsoft.Compute/images``) of a scope — a resource group or a
subscription — into a gallery: one capture per image (``source: {"managedImageId": …}``), each into a
definition named by ``definitionName``. Its id is derived from what it moves and where
(``migration_instance_id``: scope, gallery, naming rule, version), so posting the same migration again
finds the same instance; each image's capture id is its source's capture id (``child_capture_id``), so an image is never
captured twice at once.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator

from shared.field_errors import FieldError, bounded_errors, pydantic_errors
from shared.ids import resource_group_problem, subscription_id_problem
from shared.model_base import WireModel
from shared.request_rules import (
    DEFINITION_NAME,
    IDENTIFIER,
    IDENTIFIER_MAX,
    INTAKE,
    MAX_TAGS,
    VERSION_AUTO,
    IntakeVersion,
    is_intake,
)
from shared.requests import GalleryRef, TargetRegion, each_region_once
from shared.sources import ImageSource, source_capture_id

DeleteSourceAfter = Literal["never", "verified"]
# The placeholders of ``definitionName``; every other character is taken literally.
PLACEHOLDERS = ("image", "resourceGroup")
DEFAULT_DEFINITION_NAME = "{image}"
DEFAULT_PUBLISHER = "ImagePipeline"
DEFAULT_OFFER = "migrated"
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_LITERAL = re.compile(r"[A-Za-z0-9._-]*")
_SCOPE = re.compile(r"/subscriptions/([^/]+)(?:/resourceGroups/([^/]+))?", re.IGNORECASE)
MIGRATION_ID_MAX = 80
_MIGRATION_ID = re.compile(r"migration-[a-z0-9-]{1,70}")


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:limit].strip("-")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(p.lower() for p in parts).encode()).hexdigest()


def parse_scope(value: str) -> tuple[str, str | None]:
    """(subscription, resource group or None) of ``/subscriptions/<id>[/resourceGroups/<rg>]``."""
    m = _SCOPE.fullmatch(value.strip().rstrip("/"))
    if not m:
        raise ValueError(
            "must be a subscription id (/subscriptions/<id>) or a resource group id "
            "(/subscriptions/<id>/resourceGroups/<name>)"
        )
    return m.group(1), m.group(2)


def template_problem(template: str) -> str | None:
    """Why ``definitionName`` is not a usable naming rule, or None."""
    names = _PLACEHOLDER.findall(template)
    unknown = [n for n in names if n not in PLACEHOLDERS]
    if unknown:
        return f"unknown placeholder {{{unknown[0]}}}: use {{image}} and {{resourceGroup}}"
    literal = _PLACEHOLDER.sub("", template)
    if "{" in literal or "}" in literal or not _LITERAL.fullmatch(literal):
        return "besides {image} and {resourceGroup}, use only letters, digits, '.', '-' and '_'"
    if "image" not in names:
        return "must contain {image}: every image needs a definition of its own"
    return None


def render_definition_name(template: str, image_name: str, resource_group: str) -> str:
    """The definition name ``template`` gives an image (placeholders replaced; nothing else changed)."""
    values = {"image": image_name, "resourceGroup": resource_group}
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def definition_name_problem(name: str) -> str | None:
    if not DEFINITION_NAME.fullmatch(name):
        return (
            f"the definition name {name[:100]!r} is not valid in Azure (letters, digits, '.', '-' and '_', "
            "not at the ends, at most 80 characters)"
        )
    return None


class MigrationRequest(WireModel):
    """What to migrate (``scope``), where to (``gallery``, ``definitionName``), and what then."""

    scope: str
    gallery: GalleryRef
    definition_name: str = Field(
        default=DEFAULT_DEFINITION_NAME,
        description="The naming rule of the definitions: {image} (the managed image's name) and "
        "{resourceGroup} (its resource group), e.g. 'legacy-{image}'. Default: the image's name.",
    )
    publisher: str = DEFAULT_PUBLISHER  # the identifier of definitions the migration creates
    offer: str = DEFAULT_OFFER  # (their sku is the definition name)
    version: IntakeVersion = VERSION_AUTO
    target_regions: list[TargetRegion] = Field(default_factory=list)
    delete_source_after: DeleteSourceAfter = "never"
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("scope")
    @classmethod
    def _scope(cls, v: str, info: ValidationInfo) -> str:
        sub, rg = parse_scope(v)
        if is_intake(info):
            problems = [p for p in (subscription_id_problem(sub), rg and resource_group_problem(rg)) if p]
            if problems:
                raise ValueError("; ".join(problems))
        return f"/subscriptions/{sub}" + (f"/resourceGroups/{rg}" if rg else "")

    @field_validator("definition_name")
    @classmethod
    def _template(cls, v: str, info: ValidationInfo) -> str:
        problem = template_problem(v) if is_intake(info) else None
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("publisher", "offer")
    @classmethod
    def _identifier(cls, v: str, info: ValidationInfo) -> str:
        if is_intake(info) and not IDENTIFIER.fullmatch(v):
            raise ValueError(f"use 1-{IDENTIFIER_MAX} letters, digits, '.', '-' and '_'")
        return v

    @field_validator("target_regions")
    @classmethod
    def _regions(cls, v: list[TargetRegion]) -> list[TargetRegion]:
        return each_region_once(v, pick=min)  # the first by name

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > MAX_TAGS:
            raise ValueError(f"at most {MAX_TAGS} tags (Azure allows 50 and the pipeline adds its own)")
        return v

    @property
    def subscription_id(self) -> str:
        return parse_scope(self.scope)[0]

    @property
    def resource_group(self) -> str | None:
        return parse_scope(self.scope)[1]

    @property
    def gallery_subscription_id(self) -> str:
        return self.gallery.subscription_id or self.subscription_id


def validate_migration(data: Any) -> tuple[MigrationRequest | None, list[FieldError]]:
    """Validate a decoded JSON body: the request, or every field error with its path and reason."""
    if not isinstance(data, dict):
        return None, [FieldError(field="(body)", message="must be a JSON object")]
    try:
        return MigrationRequest.model_validate(data, context=INTAKE), []
    except ValidationError as exc:
        return None, bounded_errors(pydantic_errors(exc))


def migration_instance_id(req: MigrationRequest) -> str:
    """The orchestration instance id of a migration: what it moves and where to, case-folded.

    The options (regions, deleteSourceAfter, tags, identifier) are not part of it: posting the same
    migration with other options while it runs is refused (409), and after it ended starts its next run.
    """
    scope_sub, rg = parse_scope(req.scope)
    digest = _digest(
        req.scope,
        req.gallery_subscription_id,
        req.gallery.resource_group,
        req.gallery.name,
        req.definition_name,
        req.version,
    )[:12]
    readable = _slug(rg or f"sub-{scope_sub[:8]}", 40)
    return f"migration-{readable}-{digest}"


def is_migration_id(value: str) -> bool:
    return len(value) <= MIGRATION_ID_MAX and _MIGRATION_ID.fullmatch(value) is not None


def child_capture_id(image_id: str) -> str:
    """The capture id of one image: the capture id of its source (``shared.sources.source_capture_id``), so
    an image is never captured twice at once — by a migration, another migration, or a direct capture
    (Azure: a managed image makes one image version at a time)."""
    return source_capture_id(ImageSource(managed_image_id=image_id))


def batch_instance_id(migration_id: str, index: int) -> str:
    """The sub-orchestration that runs the ``index``-th batch of images of a migration run."""
    return f"{migration_id}:batch:{index}"


# The request fields that, changed, make a re-post a different migration run (see migration_instance_id).
OPTION_FIELDS = ("targetRegions", "deleteSourceAfter", "publisher", "offer", "tags")


def changed_options(running: dict[str, Any], posted: MigrationRequest) -> list[str]:
    """The option fields in which ``posted`` differs from the request of the running migration."""
    try:
        before = MigrationRequest.from_wire(running).to_wire()
    except ValueError:
        return []
    after = posted.to_wire()
    return [f for f in OPTION_FIELDS if before.get(f) != after.get(f)]
