"""The janitor's Azure side: list what capture runs left (tagged snapshots, image versions, VMs, NICs and
disks), clean one.

``scan_leftovers`` lists, per scope (a subscription or one resource group), every snapshot and every image
version of every gallery, and every VM, network interface and managed disk (``activities.janitor_vms``:
clones and boot tests) whose tags name a pipeline run (``image-pipeline:run-id``, or for older runs
``image-pipeline:capture-id``). Untagged resources are not returned, so nothing below can touch them.
What cannot be listed is reported in ``errors`` and the scan goes on.

``clean_leftover`` carries out the actions ``shared.janitor.plan`` chose, through the capture's own
idempotent activities (``revoke_snapshot_access``, ``delete_snapshot``, ``delete_image_version``). Right
before acting it reads the resource again and does nothing if it changed hands (its run tag differs) or,
for a version, if it has become ``Succeeded`` since the scan. Blobs are never touched.

Both are plain callables with the activity wire wrapper (typed input, redacted errors); the janitor
timer calls them in-process (docs/janitor.md says why there is no janitor orchestration).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from azure.core.exceptions import HttpResponseError

from activities import gallery, janitor_vms, snapshots
from activities._common import activity, as_dict, get_or_none, parse_id, props
from shared import clients
from shared.azure_errors import translate_azure_error
from shared.contracts import Done, SnapshotRef, VersionRef
from shared.errors import CaptureError
from shared.ids import TAG_CAPTURE_ID, ResourceId
from shared.janitor import (
    MACHINE_KINDS,
    ActionResult,
    CleanInput,
    CleanResult,
    JanitorScope,
    Leftover,
    ScanInput,
    ScanResult,
    run_of,
    when_of,
)

TAG_DISK_KEY = snapshots.TAG_DISK_KEY


def _snapshot_leftover(snap: dict[str, Any]) -> Leftover | None:
    tags = snap.get("tags") or {}
    run = run_of(tags)
    if not run:
        return None
    p = props(snap)
    return Leftover(
        kind="snapshot",
        resource_id=str(snap.get("id") or ""),
        run_id=run,
        capture_id=tags.get(TAG_CAPTURE_ID),
        disk_key=tags.get(TAG_DISK_KEY),
        created=when_of(p.get("timeCreated")),
        provisioning_state=str(p.get("provisioningState") or "Unknown"),
        active_access=str(p.get("diskState") or "").lower().startswith("activesas"),
    )


def _version_leftover(version: dict[str, Any]) -> Leftover | None:
    tags = version.get("tags") or {}
    run = run_of(tags)
    if not run:
        return None
    p = props(version)
    return Leftover(
        kind="imageVersion",
        resource_id=str(version.get("id") or ""),
        run_id=run,
        capture_id=tags.get(TAG_CAPTURE_ID),
        created=when_of((p.get("publishingProfile") or {}).get("publishedDate")),
        provisioning_state=str(p.get("provisioningState") or "Unknown"),
    )


def _listed(
    what: str, where: str, call: Callable[[], Iterable[Any]], out: ScanResult
) -> list[dict[str, Any]]:
    """The listed resources as REST JSON; a refusal (403) goes to ``not_permitted``, other failures to
    ``errors``. A 403 is not an error: the app can only have made resources where it may write, and every
    role that may write a snapshot or a version may also read (list) it."""
    try:
        return [as_dict(x) for x in call()]
    except HttpResponseError as exc:
        if exc.status_code == 403:
            out.not_permitted.append(f"{what} in {where}")
            return []
        err = translate_azure_error(exc, step=f"list {what}", resource=where)
    except CaptureError as exc:
        err = exc
    except Exception as exc:
        err = translate_azure_error(exc, step=f"list {what}", resource=where)
    out.errors.append(f"could not list {what} in {where}: {err.info.message}")
    return []


def _scan_versions(sub: str, gallery: dict[str, Any], out: ScanResult) -> None:
    compute = clients.compute(sub)
    gid = str(gallery.get("id") or "")
    try:
        rg, gname = ResourceId.parse(gid).resource_group, str(gallery.get("name"))
    except ValueError:
        out.errors.append(f"a gallery with the unexpected id {gid!r} was not scanned")
        return
    out.scanned.append(gid)
    for image in _listed(
        "image definitions", gid, partial(compute.gallery_images.list_by_gallery, rg, gname), out
    ):
        iname = str(image.get("name"))
        versions = _listed(
            "image versions",
            f"{gid}/images/{iname}",
            partial(compute.gallery_image_versions.list_by_gallery_image, rg, gname, iname),
            out,
        )
        out.leftovers.extend(x for x in map(_version_leftover, versions) if x is not None)


def _scan_scope(scope: JanitorScope, out: ScanResult) -> None:
    """A subscription through its subscription-wide lists (ARM filters them to what the app may read),
    a resource group through its own lists."""
    compute = clients.compute(scope.subscription_id)
    where, rg = str(scope), scope.resource_group
    out.scanned.append(where)
    snaps = _listed(
        "snapshots",
        where,
        partial(compute.snapshots.list_by_resource_group, rg) if rg else compute.snapshots.list,
        out,
    )
    out.leftovers.extend(x for x in map(_snapshot_leftover, snaps) if x is not None)
    galleries = _listed(
        "galleries",
        where,
        partial(compute.galleries.list_by_resource_group, rg) if rg else compute.galleries.list,
        out,
    )
    for gal in galleries:
        _scan_versions(scope.subscription_id, gal, out)
    for what, call, leftover in janitor_vms.machine_lists(scope):  # VMs, then NICs, then disks
        out.leftovers.extend(x for x in map(leftover, _listed(what, where, call, out)) if x is not None)


@activity(ScanInput)
def scan_leftovers(inp: ScanInput) -> ScanResult:
    """Every tagged snapshot and image version in the scopes (untagged ones are never listed back)."""
    out = ScanResult(leftovers=[], scanned=[], errors=[], not_permitted=[])
    for scope in inp.scopes:
        _scan_scope(scope, out)
    return out


def _current(leftover: Leftover) -> dict[str, Any] | None:
    """The resource as it is now (None when gone)."""
    rid = leftover.resource_id
    if leftover.kind in MACHINE_KINDS:
        return janitor_vms.current(leftover)
    if leftover.kind == "snapshot":
        r = parse_id(rid, field="resourceId", step="clean_leftover")
        snaps = clients.compute(r.subscription_id).snapshots
        return get_or_none(
            lambda: as_dict(snaps.get(r.resource_group, r.name)), step="read the snapshot", resource=rid
        )
    parts = rid.strip("/").split("/")
    if len(parts) != 12:
        raise CaptureError(
            f"{rid} is not an image version id", step="clean_leftover", code="InvalidActivityInput"
        )
    sub, rg, gname, image, version = parts[1], parts[3], parts[7], parts[9], parts[11]
    versions = clients.compute(sub).gallery_image_versions
    return get_or_none(
        lambda: as_dict(versions.get(rg, gname, image, version)), step="read the image version", resource=rid
    )


def _changed_hands(leftover: Leftover, now: dict[str, Any] | None) -> str | None:
    if now is None:
        return "already gone"
    if run_of(now.get("tags")) != leftover.run_id:
        return "its run tag changed since the scan; left alone"
    state = str(props(now).get("provisioningState") or "")
    if leftover.kind == "imageVersion" and state.lower() == "succeeded":
        return "it became Succeeded since the scan; a finished image is never deleted"
    if leftover.kind in MACHINE_KINDS:
        return janitor_vms.changed(leftover, now)
    return None


_DOING = {
    "revokeAccess": ("revoked the export access (SAS)", "had no active access"),
    "deleteSnapshot": ("deleted the snapshot", "was already gone"),
    "deleteVersion": ("deleted the image version", "was already gone"),
    "deleteVm": ("started deleting the VM (its NIC and disks go with it)", "was already gone"),
    "deleteNic": ("started deleting the network interface", "was already gone"),
    "deleteDisk": ("started deleting the managed disk", "was already gone"),
}


def _do(action: str, rid: str) -> Done:
    if action == "revokeAccess":
        return Done.from_wire(snapshots.revoke_snapshot_access(SnapshotRef(snapshot_id=rid).to_wire()))
    if action == "deleteSnapshot":
        return Done.from_wire(snapshots.delete_snapshot(SnapshotRef(snapshot_id=rid).to_wire()))
    if action in ("deleteVm", "deleteNic", "deleteDisk"):
        return janitor_vms.delete(action, rid)
    return Done.from_wire(gallery.delete_image_version(VersionRef(version_id=rid).to_wire()))


@activity(CleanInput)
def clean_leftover(inp: CleanInput) -> CleanResult:
    """Carry out the planned actions on one leftover, in order; a failed action stops the ones after it."""
    lo = inp.leftover
    results: list[ActionResult] = []

    def record(action: Any, done: bool, detail: str) -> None:
        results.append(
            ActionResult(
                resource_id=lo.resource_id, run_id=lo.run_id, action=action, done=done, detail=detail
            )
        )

    if inp.dry_run:
        for action in inp.actions:
            record(action, False, f"dry run: would have {_DOING[action][0]}")
        return CleanResult(results=results)
    why_not = _changed_hands(lo, _current(lo))
    if why_not is not None:
        for action in inp.actions:
            record(action, False, f"skipped: {why_not}")
        return CleanResult(results=results)
    for action in inp.actions:
        try:
            done = _do(action, lo.resource_id)
        except CaptureError as exc:
            record(action, False, f"failed: {exc.info.message}")
            break
        yes, no = _DOING[action]
        record(action, done.changed, yes if done.changed else no)
    return CleanResult(results=results)
