"""Gallery activities: ensure the gallery and image definition, start an image version, read its replication.

Creating a gallery or a definition is short, so ``ensure_definition`` waits for it. An image
version replicates for minutes to hours: ``start_image_version`` returns once Azure accepted it,
and the orchestrator polls ``get_version_status`` per region.
"""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute import models as cm

from activities import compat, lro
from activities._common import (
    activity,
    as_dict,
    azure_call,
    azure_code,
    get_or_none,
    parse_id,
    props,
)
from activities.image_versions import next_free, version_body, version_key, version_parts, version_status
from shared import clients
from shared.activity_types import (
    DELETE_IMAGE_VERSION,
    ENSURE_DEFINITION,
    GET_VERSION_STATUS,
    START_IMAGE_VERSION,
)
from shared.azure_errors import translate_azure_error
from shared.contracts import (
    DefinitionInput,
    DefinitionResult,
    Done,
    VersionInput,
    VersionRef,
    VersionStatus,
)
from shared.errors import AzureOperationError, PreflightError, TransientAzureError
from shared.ids import TAG_RUN_ID, made_by_run


def _gallery_id(sub: str, rg: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/galleries/{name}"


@activity(ENSURE_DEFINITION)
def ensure_definition(inp: DefinitionInput) -> DefinitionResult:
    """Create the gallery and the image definition when missing (and allowed); never change existing ones."""
    sub = inp.gallery.subscription_id or inp.vm.subscription_id
    rg, gname, dname = inp.gallery.resource_group, inp.gallery.name, inp.definition.name
    compute = clients.compute(sub)
    gid = _gallery_id(sub, rg, gname)
    did = f"{gid}/images/{dname}"

    gallery = get_or_none(
        lambda: as_dict(compute.galleries.get(rg, gname)), step="read the gallery", resource=gid
    )
    gallery_created = False
    if gallery is None:
        if not inp.gallery.create_if_missing:
            raise PreflightError(
                f"the gallery {gname} does not exist in resource group {rg}: create it or set "
                "gallery.createIfMissing to true",
                step="ensure_definition",
                resource=gid,
                code="GalleryNotFound",
            )
        with azure_call("create the gallery", gid):
            body = {"location": inp.location, "tags": dict(inp.tags), "properties": {}}
            gallery = as_dict(compute.galleries.begin_create_or_update(rg, gname, cm.Gallery(body)).result())
        gallery_created = True

    definition = get_or_none(
        lambda: as_dict(compute.gallery_images.get(rg, gname, dname)),
        step="read the image definition",
        resource=did,
    )
    definition_created = False
    if definition is None:
        if not inp.definition.create_if_missing:
            raise PreflightError(
                f"the image definition {dname} does not exist in gallery {gname}: create it or set "
                "imageDefinition.createIfMissing to true",
                step="ensure_definition",
                resource=did,
                code="ImageDefinitionNotFound",
            )
        # A definition lives where its gallery lives.
        location = str(gallery.get("location") or inp.location)
        body = compat.definition_body(inp.definition, inp.vm, location, inp.tags, inp.os_state)
        with azure_call("create the image definition", did):
            definition = as_dict(
                compute.gallery_images.begin_create_or_update(
                    rg, gname, dname, cm.GalleryImage(body)
                ).result()
            )
        definition_created = True
    return DefinitionResult(
        gallery_id=str(gallery.get("id") or gid),
        definition_id=str(definition.get("id") or did),
        gallery_created=gallery_created,
        definition_created=definition_created,
    )


# Azure's answers to a PUT of a version that another capture created first (its source differs).
_TAKEN_CODES = {"propertychangenotallowed", "conflict", "operationnotallowed", "imageversionexists"}
# How many versions ``auto`` tries before giving up: one per capture that took the candidate first.
AUTO_ATTEMPTS = 64


@activity(START_IMAGE_VERSION)
def start_image_version(inp: VersionInput) -> VersionStatus:
    """PUT the image version from the snapshots and return once Azure accepted it (no waiting).

    With ``inp.auto`` the version is chosen here, at publish time: the next free patch of the
    definition (at least ``inp.version``, preflight's candidate). A candidate another capture took
    first (listed, or Azure refuses the PUT because its source differs) moves on to the next patch,
    so concurrent captures into one definition get distinct versions. A version of this run that
    ended ``Failed`` is deleted first (the caller retries until it is gone), then created again.
    """
    sub = (
        inp.gallery.subscription_id
        or parse_id(inp.os_snapshot_id, field="osSnapshotId", step="start_image_version").subscription_id
    )
    rg, gname, dname = inp.gallery.resource_group, inp.gallery.name, inp.definition_name
    versions = clients.compute(sub).gallery_image_versions
    base = f"{_gallery_id(sub, rg, gname)}/images/{dname}/versions"
    if not inp.auto:
        return _create_version(inp, sub, inp.version, f"{base}/{inp.version}", explicit=True)
    with azure_call("list the image versions", base.rsplit("/", 1)[0]):
        listed = [as_dict(v) for v in versions.list_by_gallery_image(rg, gname, dname)]
    ours = [v for v in listed if made_by_run(v.get("tags")) == inp.run_id]
    if ours:
        name = str(ours[0]["name"])
        return _create_version(inp, sub, name, f"{base}/{name}", explicit=True)
    candidate = next_free(listed, inp.version)
    for _ in range(AUTO_ATTEMPTS):
        key = version_key(candidate)
        if key is None or key[2] > _INT32_MAX:
            break
        status = _create_version(inp, sub, candidate, f"{base}/{candidate}", explicit=False)
        if status is not None:
            return status
        candidate = f"{key[0]}.{key[1]}.{key[2] + 1}"
    raise AzureOperationError(
        f"no free patch version after {candidate} in image definition {dname}: the patch number would "
        f"exceed {_INT32_MAX}, or {AUTO_ATTEMPTS} candidates were taken by other captures",
        step="start_image_version",
        resource=base.rsplit("/", 1)[0],
        code="NoFreeImageVersion",
        advice="Send the capture again with an explicit version (a new minor version, e.g. 1.1.0).",
    )


_INT32_MAX = 2**31 - 1


def _create_version(inp: VersionInput, sub: str, name: str, vid: str, *, explicit: bool) -> Any:
    """Create version ``name`` (or find it made by this run). ``None`` when another capture has it (auto)."""
    rg, gname, dname = inp.gallery.resource_group, inp.gallery.name, inp.definition_name
    versions = clients.compute(sub).gallery_image_versions
    existing = get_or_none(
        lambda: as_dict(versions.get(rg, gname, dname, name, expand="ReplicationStatus")),
        step="read the image version",
        resource=vid,
    )
    if existing is not None:
        return _existing_version(inp, existing, sub, name, vid, explicit=explicit)
    try:
        accepted = lro.start(
            versions.begin_create_or_update,
            rg,
            gname,
            dname,
            name,
            cm.GalleryImageVersion(version_body(inp)),
        )
    except HttpResponseError as exc:
        if not explicit and (azure_code(exc) or "").lower() in _TAKEN_CODES:
            return None  # another capture created this version first: take the next patch
        raise translate_azure_error(exc, step="create the image version", resource=vid) from None
    created = get_or_none(
        lambda: as_dict(versions.get(rg, gname, dname, name, expand="ReplicationStatus")),
        step="read the image version",
        resource=vid,
    )
    if created is None:  # accepted but not visible (yet): get_version_status reads the operation
        return VersionStatus(version_id=vid, exists=False, operation_url=accepted.operation_url)
    if made_by_run(created.get("tags")) != inp.run_id:
        if not explicit:
            return None
        raise AzureOperationError(
            f"version {name} of image definition {inp.definition_name} was created by another capture at "
            "the same time",
            step="start_image_version",
            resource=vid,
            code="ImageVersionExists",
            advice='Choose another version, or use "auto".',
        )
    return version_status(created, vid, accepted.operation_url)


def _existing_version(
    inp: VersionInput, existing: dict[str, Any], sub: str, name: str, vid: str, *, explicit: bool
) -> Any:
    """A version ``name`` that exists already: this run's (its status, or deleted when its create failed),
    or another capture's (``None`` for auto, refused when the version was asked for)."""
    owner = made_by_run(existing.get("tags"))
    if owner != inp.run_id:
        if not explicit:
            return None
        raise AzureOperationError(
            f"version {name} of image definition {inp.definition_name} already exists and was not made by "
            f'this capture run (tag {TAG_RUN_ID}={owner!r}): choose another version, or use "auto"',
            step="start_image_version",
            resource=vid,
            code="ImageVersionExists",
        )
    state = str(props(existing).get("provisioningState") or "").lower()
    if state == "deleting":
        raise TransientAzureError(
            f"the failed image version {vid} of this capture is still being deleted",
            step="start_image_version",
            resource=vid,
            code="ImageVersionDeleting",
        )
    if state != "failed":
        return version_status(existing, vid, None)
    # Our own version whose create failed: delete it; the orchestrator calls again once it is gone.
    versions = clients.compute(sub).gallery_image_versions
    with azure_call("delete the failed image version", vid):
        lro.start(
            versions.begin_delete, inp.gallery.resource_group, inp.gallery.name, inp.definition_name, name
        )
    raise TransientAzureError(
        f"the image version {vid} of this capture ended Failed; it is being deleted to be created again",
        step="start_image_version",
        resource=vid,
        code="ImageVersionRecreating",
    )


@activity(GET_VERSION_STATUS)
def get_version_status(inp: VersionRef) -> VersionStatus:
    """Provisioning and per-region replication state ($expand=ReplicationStatus); ``exists=False`` once gone."""
    sub, rg, gname, dname, ver = version_parts(inp.version_id, "get_version_status")
    versions = clients.compute(sub).gallery_image_versions
    version = get_or_none(
        lambda: as_dict(versions.get(rg, gname, dname, ver, expand="ReplicationStatus")),
        step="read the image version",
        resource=inp.version_id,
    )
    if version is None:
        return _missing_version(sub, inp)
    return version_status(version, inp.version_id, inp.operation_url)


def _missing_version(sub: str, inp: VersionRef) -> VersionStatus:
    """A version Azure does not (or no longer) know: still being accepted, or its create failed."""
    with azure_call("read the image version's create operation", inp.version_id):
        outcome = lro.read_operation(sub, inp.operation_url)
    if outcome is None:
        return VersionStatus(version_id=inp.version_id, exists=False)
    if lro.failed(outcome):
        return VersionStatus(
            version_id=inp.version_id,
            exists=False,
            provisioning_state="Failed",
            error=f"{outcome.code}: {outcome.message}",
            operation_url=inp.operation_url,
            failure=outcome,
        )
    state = "Creating" if outcome.status.lower() not in ("succeeded", "unknown") else None
    return VersionStatus(
        version_id=inp.version_id, exists=False, provisioning_state=state, operation_url=inp.operation_url
    )


@activity(DELETE_IMAGE_VERSION)
def delete_image_version(inp: VersionRef) -> Done:
    """Start deleting the image version (it may take minutes); ``get_version_status`` says when it is gone."""
    sub, rg, gname, dname, ver = version_parts(inp.version_id, "delete_image_version")
    versions = clients.compute(sub).gallery_image_versions
    existing = get_or_none(
        lambda: as_dict(versions.get(rg, gname, dname, ver)),
        step="read the image version",
        resource=inp.version_id,
    )
    if existing is None:
        return Done(resource_id=inp.version_id, changed=False)
    with azure_call("delete the image version", inp.version_id):
        try:
            accepted = lro.start(versions.begin_delete, rg, gname, dname, ver)
        except ResourceNotFoundError:
            return Done(resource_id=inp.version_id, changed=False)
    return Done(resource_id=inp.version_id, changed=True, operation_url=accepted.operation_url)
