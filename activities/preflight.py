"""Read-only preflight activities: is the gallery/definition/version usable, is the export target usable,
which regions does the subscription have.

They report problems as actionable sentences instead of raising, so the orchestrator can list every
problem at once and fail before anything irreversible happens. Only failures that say nothing
about the request (throttling that outlasted retries, 5xx) are raised, as transient errors.
"""

from __future__ import annotations

import uuid
from typing import Any

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.rest import HttpRequest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.core.exceptions import ARMErrorFormat

from activities import compat, source_checks
from activities._common import activity, as_dict, azure_call, azure_code, get_or_none
from shared import clients
from shared.activity_types import CHECK_EXPORT_TARGET, CHECK_GALLERY, LIST_REGIONS
from shared.contracts import (
    ExportCheckInput,
    ExportCheckResult,
    GalleryCheckInput,
    GalleryCheckResult,
    RegionsInput,
    RegionsResult,
)
from shared.ids import made_by_run
from shared.redaction import redact, strip_query
from shared.request_rules import parse_version
from shared.requests import VERSION_AUTO

_INT32_MAX = 2**31 - 1


def _version_key(name: str) -> tuple[int, int, int] | None:
    """The parts of an existing version's name (a candidate may exceed int32: preflight says so)."""
    try:
        return parse_version(name)
    except ValueError:
        parts = name.split(".")
        if len(parts) == 3 and all(p.isascii() and p.isdigit() for p in parts):
            return int(parts[0]), int(parts[1]), int(parts[2])
        return None


@activity(CHECK_GALLERY)
def check_gallery(inp: GalleryCheckInput) -> GalleryCheckResult:
    """Does the gallery exist, is the definition compatible with the VM, is the version free (or ours)?"""
    sub = inp.gallery.subscription_id or inp.vm.subscription_id
    rg, gname, dname = inp.gallery.resource_group, inp.gallery.name, inp.definition.name
    compute = clients.compute(sub)
    problems: list[str] = []
    gallery_res = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/galleries/{gname}"
    definition_res = f"{gallery_res}/images/{dname}"

    gallery = _read_gallery(compute, sub, rg, gname, gallery_res, problems)
    definition: dict[str, Any] | None = None
    if gallery is None:
        if not inp.gallery.create_if_missing:
            problems.append(
                f"the gallery {gname} does not exist in resource group {rg}: create it or set "
                "gallery.createIfMissing to true"
            )
    else:
        definition = get_or_none(
            lambda: as_dict(compute.gallery_images.get(rg, gname, dname)),
            step="read the image definition",
            resource=definition_res,
        )
    facts = compat.definition_facts(definition) if definition else None
    if facts is None and not inp.definition.create_if_missing:
        problems.append(
            f"the image definition {dname} does not exist in gallery {gname}: create it or set "
            "imageDefinition.createIfMissing to true"
        )
    if facts is not None and inp.source_kind != "vm":  # a managed image, snapshots or VHDs
        problems.extend(
            source_checks.definition_problems(f"{gname}/{dname}", facts, inp.vm, inp.os_state, inp.vm.name)
        )
    elif facts is not None:
        problems.extend(compat.problems(dname, facts, inp.vm, inp.os_state))

    versions: list[dict[str, Any]] = []
    if definition is not None:
        with azure_call("list the image versions", definition_res):
            versions = [
                as_dict(v) for v in compute.gallery_image_versions.list_by_gallery_image(rg, gname, dname)
            ]
    # Made by this very run (an earlier execution of it), not merely by an earlier capture of the same VM.
    ours = [v for v in versions if inp.run_id and made_by_run(v.get("tags")) == inp.run_id]
    resolved = _resolved_version(inp.version, versions, ours)
    existing = next((v for v in versions if str(v.get("name")) == resolved), None)
    is_ours = existing is not None and existing in ours
    problems.extend(_version_problems(dname, resolved, taken=existing is not None and not is_ours))
    return GalleryCheckResult(
        gallery_exists=gallery is not None,
        gallery_location=str(gallery.get("location")) if gallery else None,
        definition=facts,
        resolved_version=resolved,
        version_exists=existing is not None,
        version_is_ours=is_ours,
        problems=problems,
    )


def _read_gallery(
    compute: ComputeManagementClient, sub: str, rg: str, gname: str, gallery_res: str, problems: list[str]
) -> dict[str, Any] | None:
    """The gallery, or None when it (or its resource group, a problem added) does not exist."""
    with azure_call("read the gallery", gallery_res):
        try:
            return as_dict(compute.galleries.get(rg, gname))
        except ResourceNotFoundError as exc:
            if azure_code(exc) == "ResourceGroupNotFound":
                problems.append(
                    f"the resource group {rg} of gallery {gname} does not exist in subscription {sub}: "
                    "create it first (the capture creates galleries, not resource groups)"
                )
            return None


def _resolved_version(asked: str, versions: list[dict[str, Any]], ours: list[dict[str, Any]]) -> str:
    """The version the capture will publish: the one asked for, or for ``auto`` the one an earlier
    execution of this run picked, else the next patch after the highest existing version."""
    if asked != VERSION_AUTO:
        return asked
    if ours:
        return str(ours[0]["name"])
    keys = [k for k in (_version_key(str(v.get("name"))) for v in versions) if k is not None]
    return "1.0.0" if not keys else "{}.{}.{}".format(*max(keys)[:2], max(keys)[2] + 1)


def _version_problems(dname: str, resolved: str, *, taken: bool) -> list[str]:
    """Why ``resolved`` cannot be published: a patch past int32, or a version someone else made."""
    problems = []
    key = _version_key(resolved)
    if key is not None and key[2] > _INT32_MAX:
        problems.append(
            f"the next patch version after {key[0]}.{key[1]}.{key[2] - 1} of image definition {dname} would be "
            f"{resolved}, beyond Azure's limit of {_INT32_MAX} per part: send the capture with an explicit "
            f"version of a new minor (e.g. {key[0]}.{key[1] + 1}.0)"
        )
    if taken:
        problems.append(
            f"version {resolved} of image definition {dname} already exists: choose another version, "
            'or use "auto" for the next patch version'
        )
    return problems


# Storage RBAC permissions the export needs (Storage REST reference, "Authorize with Microsoft Entra ID").
_STORAGE = "Microsoft.Storage/storageAccounts/blobServices/containers"
_EXPORT_ROLE = "Storage Blob Data Contributor"
# A zero-length blob written and deleted by the check: proves the identity can write and read blobs.
PROBE_PREFIX = "imagepipeline-preflight-"


@activity(CHECK_EXPORT_TARGET)
def check_export_target(inp: ExportCheckInput) -> ExportCheckResult:
    """Can the app's identity use the container for the export? Creates the container if missing.

    Reading the container is not enough: ARM's Reader role may read containers but no blob data. So
    the check writes a zero-length probe blob, reads its properties (what ``start_export`` and the
    copy polling do) and deletes it again (best effort: a role without delete leaves the probe).
    """
    url = strip_query(inp.account_url)
    container = clients.blob_service(inp.account_url).get_container_client(inp.container)
    where = f"container {inp.container} of storage account {url}"
    exists = False
    step, permission = f"read the {where}", f"{_STORAGE}/read"
    try:
        try:
            container.get_container_properties()
            exists = True
        except ResourceNotFoundError as exc:
            if azure_code(exc) not in (None, "ContainerNotFound"):
                raise
        if not exists:
            step, permission = f"create the {where}", f"{_STORAGE}/write"
            try:
                container.create_container()
            except ResourceExistsError:
                pass  # created concurrently by an earlier execution: fine
            exists = True
        probe = container.get_blob_client(f"{PROBE_PREFIX}{uuid.uuid4().hex}")
        step, permission = f"write blobs into the {where}", f"{_STORAGE}/blobs/write"
        probe.upload_blob(b"", overwrite=True)
        step, permission = f"read blobs in the {where}", f"{_STORAGE}/blobs/read"
        probe.get_blob_properties()
        try:
            probe.delete_blob()
        except HttpResponseError:
            pass  # the export never deletes blobs; a leftover empty probe is harmless
        return ExportCheckResult(reachable=True, container_exists=True)
    except (ServiceRequestError, ServiceResponseError) as exc:
        return ExportCheckResult(
            reachable=False,
            container_exists=False,
            problem=f"could not reach the storage account {url}: {redact(str(exc))}. "
            "Check vhdExport.accountUrl and that the Function App can reach it (network rules, private endpoints).",
        )
    except HttpResponseError as exc:
        return _refused(exc, url, inp.container, step, permission, exists=exists)


def _refused(
    exc: HttpResponseError, url: str, container: str, step: str, permission: str, *, exists: bool
) -> ExportCheckResult:
    """What an error answer to the probe at ``step`` says about the export target (or re-raise it)."""
    where = f"container {container} of storage account {url}"
    if isinstance(exc, ClientAuthenticationError) and exc.status_code is None:
        # The credential failed before any request reached the account.
        return ExportCheckResult(
            reachable=False,
            container_exists=False,
            problem=f"the Function App could not get a token for storage account {url}: "
            f"{redact(str(exc))}. Check that its managed identity is enabled (and AZURE_CLIENT_ID "
            "names it, if user-assigned).",
        )
    if exc.status_code in (401, 403):
        problem = _denied(url, container, step, permission, exc)
        return ExportCheckResult(reachable=True, container_exists=exists, problem=problem)
    if exc.status_code in (400, 404):
        return ExportCheckResult(
            reachable=False,
            container_exists=False,
            problem=f"the {where} cannot be used: {azure_code(exc) or exc.status_code} "
            f"{redact(exc.reason or '')}. Check vhdExport.accountUrl and vhdExport.container.",
        )
    raise exc


def _denied(url: str, container: str, step: str, permission: str, exc: HttpResponseError) -> str:
    """Advice for a refused storage request: what was refused, the permission missing, the role to grant."""
    code = azure_code(exc) or str(exc.status_code)
    where = f"container {container} of storage account {url}"
    grant = (
        f"grant the Function App's identity the role {_EXPORT_ROLE} on that container or storage account "
        f"(scope <storage account resource id>[/blobServices/default/containers/{container}]); "
        "new role assignments can take a few minutes to apply"
    )
    if exc.status_code == 401:
        return (
            f"the storage account refused the Function App's identity for the {where} ({code}): check that "
            f"the account is in the app's tenant and allows Microsoft Entra authorization, then {grant}"
        )
    if code == "AuthorizationFailure":
        return (
            f"the Function App's identity may not {step} ({code}): the account's network "
            "rules or settings refuse the request; allow the Function App through the storage firewall "
            f"(or a private endpoint), and make sure it holds {permission}: {grant}"
        )
    return (
        f"the Function App's identity may not {step} ({code}): it lacks the permission {permission}; {grant}"
    )


# Subscriptions - List Locations (learn.microsoft.com/rest/api/resources/subscriptions/list-locations).
LOCATIONS_API_VERSION = "2022-12-01"


@activity(LIST_REGIONS)
def list_regions(inp: RegionsInput) -> RegionsResult:
    """The region names of the subscription (``GET /subscriptions/{id}/locations``), normalised and sorted.

    The SDK's typed client for this call (``SubscriptionClient``) lives in the separate package
    azure-mgmt-resource-subscriptions; the compute client's pipeline (same credential, endpoint, retry
    policy) sends the one GET instead, so the app needs no further dependency.
    """
    sub = inp.subscription_id
    where = f"/subscriptions/{sub}/locations"
    client = clients.compute(sub)
    names: set[str] = set()
    request: HttpRequest | None = HttpRequest("GET", where, params={"api-version": LOCATIONS_API_VERSION})
    with azure_call("list the subscription's regions", f"/subscriptions/{sub}"):
        while request is not None:
            response = client.send_request(request)
            if response.status_code != 200:
                raise HttpResponseError(response=response, error_format=ARMErrorFormat)
            body = response.json()
            for loc in body.get("value") or []:
                # Logical regions (e.g. "europe") and extended locations cannot host image replicas.
                if (
                    loc.get("type", "Region") == "Region"
                    and (loc.get("metadata") or {}).get("regionType", "Physical") == "Physical"
                ):
                    names.add(str(loc["name"]).replace(" ", "").lower())
            next_link = body.get("nextLink")
            request = HttpRequest("GET", next_link) if next_link else None
    return RegionsResult(regions=sorted(names))
