"""Gallery activities: ensure the gallery and image definition, start an image version, read its replication.

Creating a gallery or a definition is short, so ``ensure_definition`` waits for it. An image
version replicates for minutes to hours: ``start_image_version`` returns once Azure accepted it,
and the orchestrator polls ``get_version_status`` per region.
"""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.core.pipeline import PipelineResponse
from azure.core.rest import HttpRequest
from azure.mgmt.compute import models as cm

from activities import compat
from activities._common import activity, as_dict, azure_call, get_or_none, norm_region, parse_id, props
from shared import clients
from shared.contracts import (
    DefinitionInput,
    DefinitionResult,
    Done,
    RegionReplication,
    VersionInput,
    VersionRef,
    VersionStatus,
)
from shared.errors import AzureOperationError, PreflightError
from shared.ids import TAG_RUN_ID, made_by_run, ownership_tags
from shared.redaction import redact


def _gallery_id(sub: str, rg: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/galleries/{name}"


@activity(DefinitionInput)
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
        body = compat.definition_body(inp.definition, inp.vm, location, inp.tags)
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


def _version_parts(version_id: str, step: str) -> tuple[str, str, str, str, str]:
    """(subscription, resource group, gallery, definition, version) of an image version id."""
    parts = version_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    shape = (
        "subscriptions",
        None,
        "resourcegroups",
        None,
        "providers",
        "microsoft.compute",
        "galleries",
        None,
        "images",
        None,
        "versions",
        None,
    )
    if len(parts) != len(shape) or any(
        want and got != want for got, want in zip(lowered, shape, strict=True)
    ):
        raise AzureOperationError(
            f"{version_id!r} is not an image version id (…/galleries/<g>/images/<d>/versions/<v>)",
            step=step,
            code="InvalidActivityInput",
        )
    return parts[1], parts[3], parts[7], parts[9], parts[11]


def _operation_error(sub: str, operation_url: str | None) -> str | None:
    """Azure's code + message from a failed operation's status monitor, if we know its URL."""
    if not operation_url:
        return None
    try:
        response = clients.compute(sub).send_request(HttpRequest("GET", operation_url))
        body = response.json() if response.status_code == 200 else {}
    except Exception:
        return None  # the error text is a nicety; the Failed state is already known
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and (error.get("code") or error.get("message")):
        return f"{error.get('code')}: {error.get('message')}"
    return None


def _status(version: dict[str, Any], version_id: str, operation_url: str | None) -> VersionStatus:
    p = props(version)
    provisioning = p.get("provisioningState")
    replication = p.get("replicationStatus") or {}
    regions: list[RegionReplication] = []
    for entry in replication.get("summary") or []:
        regions.append(
            RegionReplication(
                region=norm_region(str(entry.get("region") or "")),
                state=str(entry.get("state") or "Unknown"),
                progress=int(entry.get("progress") or 0),
                details=redact(str(entry["details"])) if entry.get("details") else None,
            )
        )
    if not regions:
        for target in (p.get("publishingProfile") or {}).get("targetRegions") or []:
            regions.append(
                RegionReplication(region=norm_region(str(target.get("name") or "")), state="Unknown")
            )
    error = None
    if str(provisioning).lower() == "failed":
        sub = version_id.strip("/").split("/")[1]
        error = _operation_error(sub, operation_url)
        failed = [f"{r.region}: {r.details or r.state}" for r in regions if r.state.lower() == "failed"]
        if not error and failed:
            error = "replication failed in " + "; ".join(failed)
        error = error or "Azure reports provisioningState Failed without details"
    return VersionStatus(
        version_id=str(version.get("id") or version_id),
        exists=True,
        provisioning_state=str(provisioning) if provisioning else None,
        aggregated_state=replication.get("aggregatedState"),
        regions=regions,
        error=redact(error) if error else None,
        operation_url=operation_url,
    )


def _target_regions(inp: VersionInput) -> list[dict[str, Any]]:
    regions = list(inp.target_regions)
    out: list[dict[str, Any]] = []
    for r in regions:
        entry: dict[str, Any] = {"name": r.name, "regionalReplicaCount": r.replica_count}
        if r.storage_account_type:
            entry["storageAccountType"] = r.storage_account_type
        out.append(entry)
    # Azure requires the version's own location among its target regions.
    if norm_region(inp.location) not in {norm_region(r.name) for r in regions}:
        out.insert(0, {"name": norm_region(inp.location), "regionalReplicaCount": 1})
    return out


@activity(VersionInput)
def start_image_version(inp: VersionInput) -> VersionStatus:
    """PUT the image version from the snapshots and return once Azure accepted it (no waiting)."""
    sub = (
        inp.gallery.subscription_id
        or parse_id(inp.os_snapshot_id, field="osSnapshotId", step="start_image_version").subscription_id
    )
    rg, gname, dname = inp.gallery.resource_group, inp.gallery.name, inp.definition_name
    vid = f"{_gallery_id(sub, rg, gname)}/images/{dname}/versions/{inp.version}"
    versions = clients.compute(sub).gallery_image_versions
    existing = get_or_none(
        lambda: as_dict(versions.get(rg, gname, dname, inp.version, expand="ReplicationStatus")),
        step="read the image version",
        resource=vid,
    )
    if existing is not None:
        owner = made_by_run(existing.get("tags"))
        if owner != inp.capture_id:
            raise AzureOperationError(
                f"version {inp.version} of image definition {dname} already exists and was not made by this "
                f'capture run (tag {TAG_RUN_ID}={owner!r}): choose another version, or use "auto"',
                step="start_image_version",
                resource=vid,
                code="ImageVersionExists",
            )
        return _status(existing, vid, None)

    publishing: dict[str, Any] = {
        "targetRegions": _target_regions(inp),
        "excludeFromLatest": inp.exclude_from_latest,
    }
    if inp.end_of_life_date:
        eol = inp.end_of_life_date
        publishing["endOfLifeDate"] = eol if "T" in eol else f"{eol}T00:00:00Z"
    storage: dict[str, Any] = {"osDiskImage": {"source": {"id": inp.os_snapshot_id}}}
    if inp.data_snapshots:
        storage["dataDiskImages"] = [
            {"lun": d.lun, "source": {"id": d.snapshot_id}}
            for d in sorted(inp.data_snapshots, key=lambda d: d.lun)
        ]
    body = {
        "location": inp.location,
        "tags": ownership_tags(inp.capture_id, inp.tags),
        "properties": {"publishingProfile": publishing, "storageProfile": storage},
    }
    captured: dict[str, str] = {}

    def keep_operation(response: PipelineResponse[Any, Any]) -> None:
        op = response.http_response.headers.get("Azure-AsyncOperation")
        if op and response.http_request.method == "PUT":
            captured["operation"] = op

    with azure_call("create the image version", vid):
        poller = versions.begin_create_or_update(
            rg,
            gname,
            dname,
            inp.version,
            cm.GalleryImageVersion(body),
            polling=False,
            raw_response_hook=keep_operation,
        )
        created = as_dict(poller.result())
    return _status(created, vid, captured.get("operation"))


@activity(VersionRef)
def get_version_status(inp: VersionRef) -> VersionStatus:
    """Provisioning and per-region replication state ($expand=ReplicationStatus); ``exists=False`` once gone."""
    sub, rg, gname, dname, ver = _version_parts(inp.version_id, "get_version_status")
    versions = clients.compute(sub).gallery_image_versions
    version = get_or_none(
        lambda: as_dict(versions.get(rg, gname, dname, ver, expand="ReplicationStatus")),
        step="read the image version",
        resource=inp.version_id,
    )
    if version is None:
        return VersionStatus(version_id=inp.version_id, exists=False)
    return _status(version, inp.version_id, inp.operation_url)


@activity(VersionRef)
def delete_image_version(inp: VersionRef) -> Done:
    """Start deleting the image version (it may take minutes); ``get_version_status`` says when it is gone."""
    sub, rg, gname, dname, ver = _version_parts(inp.version_id, "delete_image_version")
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
            versions.begin_delete(rg, gname, dname, ver, polling=False)
        except ResourceNotFoundError:
            return Done(resource_id=inp.version_id, changed=False)
    return Done(resource_id=inp.version_id, changed=True)
