"""The stages of a capture whose source is not a VM: a managed image, snapshots, or VHD blobs.

preflight (read the source; the gallery, definition, regions and permissions) → publish (the version
made from the source itself) → release stages → cleanup (nothing: the source is used as it is).
No guest step, no generalize, no snapshots, no export. Deterministic, like every orchestrator module:
what a source is comes from ``read_source`` (activities.sources), what it means from the pure functions here.
"""

from __future__ import annotations

from orchestrators.capture.branches import publish_branches, publish_input
from orchestrators.capture.rules import region_name, region_problems, target_regions
from orchestrators.capture.run import CaptureRun
from orchestrators.models import PublishVersionInput
from orchestrators.retrying import Gen, StepFailed
from shared.activity_types import CHECK_GALLERY, CHECK_PERMISSIONS, LIST_REGIONS, READ_SOURCE
from shared.contracts import DiskFacts, GalleryCheckInput, GalleryCheckResult, OsState, RegionsInput, VmFacts
from shared.errors import ErrorInfo
from shared.permissions import CapturePlanNeeds, PermissionsCheckInput, missing_permissions_error
from shared.requests import CaptureRequest
from shared.sources import SourceFacts, VersionSource
from shared.status import DiskProgress, RegionProgress, Stage

_LABEL = {"managedImage": "managed image", "snapshots": "snapshot", "vhds": "VHD"}


def source_label(found: SourceFacts) -> str:
    """How messages name the source: ``managed image legacy-web``, ``snapshot snap-os``, ``VHD vhds/a.vhd``."""
    return f"{_LABEL.get(found.kind, found.kind)} {found.name}"


def source_os_state(req: CaptureRequest, found: SourceFacts | None = None) -> OsState:
    """The image's OS state: a managed image's own (always Generalized), else source.osState (default
    Generalized)."""
    if found is not None and found.kind == "managedImage":
        return "Specialized" if found.os_state == "Specialized" else "Generalized"
    return req.image_source.os_state or "Generalized"


def source_vm_facts(found: SourceFacts, location: str) -> VmFacts:
    """The source's traits in the shape the gallery activities read (check_gallery, ensure_definition).

    A managed image, a snapshot or a VHD holds no VM guest state: its security type is Standard and its
    architecture x64 (managed images are x64 only; an Arm64 snapshot or VHD is not modelled).
    """
    disks = [DiskFacts(key=d.key, lun=d.lun, name=d.name, id=d.id, size_gb=d.size_gb) for d in found.disks]
    return VmFacts(
        id=found.id,
        name=source_label(found),
        resource_group="",
        subscription_id="",
        location=region_name(location),
        os_type=found.os_type or "Linux",
        hyper_v_generation=found.hyper_v_generation or "V1",
        security_type="Standard",
        architecture="x64",
        power_state="none",
        generalized=found.os_state != "Specialized",
        os_disk=disks[0],
        data_disks=disks[1:],
    )


def location_problems(found: SourceFacts, gallery: str, gallery_location: str | None) -> list[str]:
    """A source in another region than the existing gallery (the version is made in the gallery's region
    from a source in that region)."""
    if (
        not found.location
        or not gallery_location
        or region_name(found.location) == region_name(gallery_location)
    ):
        return []
    where, there = region_name(found.location), region_name(gallery_location)
    return [
        f"{source_label(found)} is in {where} but gallery {gallery} is in {there}: an image version is "
        f"made in its gallery's region from a source in that region. Use a gallery in {where} (a new "
        f"gallery name lets the capture create one there), or copy the source to {there}"
    ]


def preflight(run: CaptureRun) -> Gen[None]:
    """Read the source, check the gallery, the definition's fit, the regions and the permissions."""
    req, calls = run.req, run.calls(Stage.PREFLIGHT)
    found = run.source = yield from calls.run(READ_SOURCE, req.image_source)
    run.progress.disks = [
        DiskProgress(key=d.key, name=d.name, lun=d.lun, size_gb=d.size_gb) for d in found.disks
    ]
    label = source_label(found)
    if not found.exists:
        raise StepFailed(ErrorInfo.preflight_failed(req.source_id, found.problems, label))
    asked = [r.name for r in req.target_regions]
    facts = source_vm_facts(found, found.location or (asked[0] if asked else ""))
    os_state = source_os_state(req, found)
    gallery = CHECK_GALLERY.bind(
        GalleryCheckInput(
            gallery=run.gallery,
            definition=req.image_definition,
            version=req.version,
            vm=facts,
            os_state=os_state,
            run_id=run.run_id,
            source_kind=req.source_kind,
        )
    )
    regions = LIST_REGIONS.bind(RegionsInput(subscription_id=req.gallery_subscription_id))
    answers = yield from calls.gather(gallery, regions)
    gcheck = run.gallery_check = answers[gallery]
    if not found.location:  # a VHD: made where the gallery is (the storage account must be there too)
        facts = facts.model_copy(update={"location": region_name(gcheck.gallery_location or facts.location)})
    run.facts = facts
    problems = (
        found.problems + gcheck.problems + location_problems(found, req.gallery.name, gcheck.gallery_location)
    )
    problems += region_problems(
        req.target_regions,
        facts,
        req.gallery.name,
        gcheck.gallery_location,
        req.gallery_subscription_id,
        answers[regions].regions,
    )
    if not facts.location:
        problems.append(
            "a VHD source names no region: send targetRegions (the first is where the version is made)"
        )
    if problems:
        raise StepFailed(ErrorInfo.preflight_failed(req.source_id, problems, label))
    yield from _check_permissions(run, gcheck)
    run.regions = target_regions(req.target_regions, facts.location, gcheck.gallery_location)
    run.progress.regions = [RegionProgress(region=r.name) for r in run.regions]
    run.progress.image_version = gcheck.resolved_version


def _check_permissions(run: CaptureRun, gcheck: GalleryCheckResult) -> Gen[None]:
    """The source's and the gallery's actions, held by the identity at their scopes (shared.permissions)."""
    req = run.req
    source = req.image_source
    scope = source.vhds.storage_account_id if source.vhds is not None else req.source_id
    needs = CapturePlanNeeds(
        source_vm_id=scope,
        source_kind=req.source_kind,
        gallery_group_id=f"/subscriptions/{req.gallery_subscription_id}/resourceGroups/{req.gallery.resource_group}",
        create_if_missing=not gcheck.gallery_exists or gcheck.definition is None,
    )
    found = yield from run.calls(Stage.PREFLIGHT).run(CHECK_PERMISSIONS, PermissionsCheckInput(plan=needs))
    if found.missing:
        raise StepFailed(missing_permissions_error(found.missing, resource=req.source_id))


def source_publish_input(run: CaptureRun) -> PublishVersionInput:
    """What ``publish_version`` needs for this source: the definition from the source's traits, the
    version's storage profile from the source itself (shared.sources.VersionSource)."""
    found, source = run.source, run.req.image_source
    assert found is not None
    snapshots = {d.key: d.id for d in found.disks} if source.snapshots is not None else {}
    base = publish_input(run, os_state=source_os_state(run.req, found), snapshot_ids=snapshots)
    version = base.version
    if source.managed_image_id is not None:
        version = version.model_copy(update={"source": VersionSource(managed_image_id=found.id)})
    elif source.vhds is not None:
        blobs = VersionSource(storage_account_id=source.vhds.storage_account_id, vhds=found.disks)
        version = version.model_copy(update={"source": blobs})
    return base.model_copy(update={"version": version})


def publish(run: CaptureRun) -> Gen[None]:
    """The version from the source (``publish_version``, as a VM capture's); no export branch."""
    yield from publish_branches(run, source_publish_input(run), [])


def skip_cleanup(run: CaptureRun) -> str | None:
    return f"nothing to clean up: the {_LABEL.get(run.req.source_kind, 'source')} is used as it is"


def cleanup(run: CaptureRun) -> Gen[None]:
    return
    yield
