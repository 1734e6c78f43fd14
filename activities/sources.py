"""The read-only activity of the non-VM sources: ``read_source`` (a managed image, snapshots, VHD blobs).

It answers what the source is (OS type, generation, OS state, disks with their LUNs and sizes, region)
and every problem with it as an actionable sentence, instead of raising, so preflight can list them
all before anything is created. A VHD blob is read with the app's identity: its properties and its
last 512 bytes (the footer), through the Blob SDK, only at the account's blob endpoint of this cloud
(``shared.source_intake.vhd_uri_problem``, checked again here so a replayed input cannot redirect it).
Only failures that say nothing about the source (throttling that outlasted retries, 5xx) are raised.
"""

from __future__ import annotations

import math
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.mgmt.core.exceptions import ARMErrorFormat

from activities import source_checks
from activities._common import activity, as_dict, azure_call, azure_code, get_or_none, props
from shared import clients
from shared.activity_types import READ_SOURCE
from shared.endpoints import ACCOUNT_PLACEHOLDER, UntrustedEndpointError
from shared.errors import CaptureError
from shared.ids import ResourceId, disk_key
from shared.settings import get_settings
from shared.source_intake import vhd_uri_problem
from shared.sources import ImageSource, SourceDisk, SourceFacts, VhdSet


def _gib(size_bytes: int) -> int:
    return max(1, math.ceil(size_bytes / 1024**3))


@activity(READ_SOURCE)
def read_source(inp: ImageSource) -> SourceFacts:
    """What the source is and every problem with it (nothing is changed)."""
    if inp.managed_image_id is not None:
        return _managed_image(inp.managed_image_id)
    if inp.snapshots is not None:
        return _snapshots(inp)
    if inp.vhds is not None:
        return _vhds(inp, inp.vhds)
    raise CaptureError("read_source reads no VM source", step="read_source", code="InvalidActivityInput")


def _managed_image(image_id: str) -> SourceFacts:
    rid = ResourceId.parse(image_id)
    label = f"managed image {rid.name}"
    image = get_or_none(
        lambda: as_dict(clients.compute(rid.subscription_id).images.get(rid.resource_group, rid.name)),
        step="read the managed image",
        resource=image_id,
    )
    if image is None:
        return SourceFacts(
            kind="managedImage",
            id=image_id,
            name=rid.name,
            exists=False,
            problems=[
                f"the {label} does not exist in resource group {rid.resource_group} (or the app's identity "
                "cannot read it: it needs Microsoft.Compute/images/read there): check the id"
            ],
        )
    p = props(image)
    storage = p.get("storageProfile") or {}
    os_disk = storage.get("osDisk") or {}
    problems: list[str] = []
    if str(p.get("provisioningState") or "Succeeded") != "Succeeded":
        problems.append(
            f"the {label} is {p.get('provisioningState')}, not Succeeded: wait until it is created, then "
            "send the request again"
        )
    disks = [SourceDisk(key="os", name=rid.name, id=image_id, size_gb=int(os_disk.get("diskSizeGB") or 0))]
    for d in storage.get("dataDisks") or []:
        lun, size = int(d.get("lun") or 0), int(d.get("diskSizeGB") or 0)
        disks.append(
            SourceDisk(key=disk_key(lun), lun=lun, name=f"{rid.name} LUN {lun}", id=image_id, size_gb=size)
        )
        problem = source_checks.data_disk_problem(f"the {label}", lun, size)
        if problem:
            problems.append(problem)
    return SourceFacts(
        kind="managedImage",
        id=str(image.get("id") or image_id),
        name=rid.name,
        location=str(image.get("location") or "") or None,
        os_type=os_disk.get("osType"),
        # Azure's default for an image that does not say (older images): V1.
        hyper_v_generation=p.get("hyperVGeneration") or "V1",
        os_state=os_disk.get("osState") or "Generalized",
        disks=disks,
        problems=problems,
    )


def _snapshot(snapshot_id: str, key: str, lun: int | None) -> tuple[SourceDisk, dict[str, Any] | None]:
    rid = ResourceId.parse(snapshot_id)
    snap = get_or_none(
        lambda: as_dict(clients.compute(rid.subscription_id).snapshots.get(rid.resource_group, rid.name)),
        step="read the snapshot",
        resource=snapshot_id,
    )
    size = int(props(snap or {}).get("diskSizeGB") or 0)
    return SourceDisk(key=key, lun=lun, name=rid.name, id=snapshot_id, size_gb=size), snap


def _snapshots(inp: ImageSource) -> SourceFacts:
    assert inp.snapshots is not None
    os_disk, os_snap = _snapshot(inp.snapshots.os, "os", None)
    problems: list[str] = []
    disks = [os_disk]
    found = [(os_disk, os_snap)]
    for d in inp.snapshots.data:
        disk, snap = _snapshot(d.id, disk_key(d.lun), d.lun)
        disks.append(disk)
        found.append((disk, snap))
        problem = source_checks.data_disk_problem(f"snapshot {disk.name}", d.lun, disk.size_gb)
        if problem and snap is not None:
            problems.append(problem)
    locations = set()
    for disk, snap in found:
        if snap is None:
            problems.append(
                f"the snapshot {disk.name} does not exist (or the app's identity cannot read it: it needs "
                "Microsoft.Compute/snapshots/read there): check the id"
            )
            continue
        state = str(props(snap).get("provisioningState") or "Succeeded")
        if state != "Succeeded":
            problems.append(
                f"the snapshot {disk.name} is {state}, not Succeeded: wait for it, then send again"
            )
        locations.add(str(snap.get("location") or ""))
    p = props(os_snap or {})
    os_type, generation = p.get("osType"), p.get("hyperVGeneration")
    problems += _declared_traits(os_disk.name, inp, os_type, generation, os_snap is not None)
    if len(locations) > 1:
        problems.append(
            f"the snapshots are in several regions ({', '.join(sorted(locations))}): an image version's "
            "disks come from its own region; copy them into one region first"
        )
    return SourceFacts(
        kind="snapshots",
        id=inp.snapshots.os,
        name=os_disk.name,
        exists=os_snap is not None,
        location=next(iter(locations)) if len(locations) == 1 else None,
        os_type=inp.os_type or os_type,
        hyper_v_generation=inp.hyper_v_generation or generation or "V1",
        os_state=inp.os_state,
        disks=disks,
        problems=problems,
    )


def _declared_traits(
    name: str, inp: ImageSource, os_type: str | None, generation: str | None, exists: bool
) -> list[str]:
    """What the OS snapshot says against what the request says (source.osType / hyperVGeneration)."""
    if not exists:
        return []
    out = []
    if os_type is None and inp.os_type is None:
        out.append(f"the snapshot {name} records no OS type: send source.osType (Linux or Windows)")
    if os_type and inp.os_type and os_type.lower() != inp.os_type.lower():
        out.append(
            f"the snapshot {name} is {os_type} but source.osType says {inp.os_type}: send the right one"
        )
    if generation and inp.hyper_v_generation and generation != inp.hyper_v_generation:
        out.append(
            f"the snapshot {name} is Hyper-V {generation} but source.hyperVGeneration says "
            f"{inp.hyper_v_generation}: send the right one"
        )
    return out


def _vhds(inp: ImageSource, vhds: VhdSet) -> SourceFacts:
    storage = get_settings().storage_endpoints
    account = vhds.account_name
    base = storage.pattern.replace(ACCOUNT_PLACEHOLDER, account)
    disks: list[SourceDisk] = []
    location, problems = _account_location(vhds.storage_account_id)
    if location is None and problems:
        return SourceFacts(kind="vhds", id=vhds.os.uri, name=account, exists=False, problems=problems)
    for lun, uri in vhds.blobs():
        problem = vhd_uri_problem(uri, account, storage)
        if problem:  # a replayed input from before the rule: no token goes to it
            raise UntrustedEndpointError(
                f"refused to read the VHD source {uri.split('?')[0][:200]}: it {problem}", step="read_source"
            )
        path = uri[len(base) + 1 :]
        container, _, blob = path.partition("/")
        size, found = _vhd_blob(base, container, blob, path)
        disks.append(
            SourceDisk(
                key=disk_key(lun),
                lun=lun,
                name=path,
                id=uri,
                size_gb=_gib(max(size - 512, 1)),
                size_bytes=size,
            )
        )
        problems += found
        if lun is not None and not found:
            problem = source_checks.data_disk_problem(f"VHD {path}", lun, _gib(max(size - 512, 1)))
            problems += [problem] if problem else []
    return SourceFacts(
        kind="vhds",
        id=vhds.os.uri,
        name=disks[0].name,
        location=location,
        os_type=inp.os_type,
        hyper_v_generation=inp.hyper_v_generation,
        os_state=inp.os_state,
        disks=disks,
        problems=problems,
    )


STORAGE_API_VERSION = "2023-05-01"


def _account_location(account_id: str) -> tuple[str | None, list[str]]:
    """(the storage account's region, problems): an ARM GET of the account (no keys are read). A refused
    read leaves the region unknown: the permission check then names what the identity lacks."""
    rid = ResourceId.parse(account_id)
    request = HttpRequest("GET", account_id, params={"api-version": STORAGE_API_VERSION})
    with azure_call("read the VHDs' storage account", account_id):
        response = clients.arm_send(rid.subscription_id, request)
        if response.status_code == 404:
            return None, [
                f"the storage account {rid.name} does not exist in resource group {rid.resource_group}: "
                "check source.vhds.storageAccountId"
            ]
        if response.status_code == 403:
            return None, []  # the permission preflight names the missing action and its role
        if response.status_code != 200:
            raise HttpResponseError(response=response, error_format=ARMErrorFormat)
        return str(response.json().get("location") or "") or None, []


def _vhd_blob(account_url: str, container: str, blob: str, label: str) -> tuple[int, list[str]]:
    """(length, problems) of one VHD blob: its type, length and last 512 bytes, read with the app's identity."""
    client = clients.verified_blob_service(account_url).get_blob_client(container, blob)
    with azure_call("read the VHD blob", f"{account_url}/{label}"):
        try:
            properties = client.get_blob_properties()
            length = int(properties.size or 0)
            start = max(0, length - source_checks.FOOTER_SIZE)
            footer = client.download_blob(offset=start, length=length - start).readall() if length else b""
        except ResourceNotFoundError:
            return 0, [
                f"blob {label} does not exist in the storage account: check the URI (container and name)"
            ]
        except HttpResponseError as exc:
            if exc.status_code != 403:
                raise
            return 0, [
                f"the app's identity may not read blob {label} ({azure_code(exc) or 'AuthorizationFailure'}): "
                "assign it Storage Blob Data Reader on the storage account (and the role Image Pipeline VHD "
                "Source, which lets the gallery read the blob), then send the request again"
            ]
    kind = str(getattr(properties.blob_type, "value", properties.blob_type) or "")
    return length, source_checks.vhd_problems(label, kind, length, footer)
