"""Gallery image versions: create, re-PUT and PATCH rules, replication to target regions over time,
delete."""

from __future__ import annotations

import re
from typing import Any

from azsim.compute.models import GIB, DiskImage, GalleryImageVersion, RegionReplication
from azsim.compute.regions import normalize
from azsim.compute.state import canonical_id, dig
from azsim.compute.version_rules import VersionRules
from azsim.compute.version_sources import VersionSources
from azsim.core.clock import utc_iso
from azsim.core.context import Reply, RequestContext
from azsim.core.errors import ArmError, invalid_parameter
from azsim.core.lro import Operation

_VERSION_NAME = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_INT32_MAX = 2**31 - 1


class ImageVersions(VersionSources, VersionRules):
    """Image version operations."""

    def list_versions(self, sub: str, rg: str, gallery: str, image: str) -> list[GalleryImageVersion]:
        img = self.get_image(sub, rg, gallery, image)
        return [v for v in self.versions.values() if v.image is img]

    def replication_fractions(self, version: GalleryImageVersion) -> dict[str, float]:
        return {
            r.region: (self.lifecycle.fraction(r.start, r.duration_s) if r.start is not None else 0.0)
            for r in version.regions
        }

    def put_version(
        self,
        ctx: RequestContext,
        sub: str,
        rg: str,
        gallery: str,
        image_name: str,
        name: str,
        body: dict[str, Any],
    ) -> Reply:
        image = self.get_image(sub, rg, gallery, image_name)
        m = _VERSION_NAME.match(name)
        if not m or any(int(p) > _INT32_MAX for p in m.groups()):
            raise invalid_parameter(
                f"The gallery image version name '{name}' is invalid. It must follow the Major(int32).Minor(int32)."
                "Patch(int32) format.",
                "galleryImageVersionName",
            )
        location = self._check_region(body.get("location"))
        if location != image.location:
            raise invalid_parameter(
                f"The location '{location}' of gallery image version '{name}' must match the location "
                f"'{image.location}' of gallery image '{image.name}'.",
                "galleryImageVersion.location",
            )
        props = body.get("properties") or {}
        publishing = props.get("publishingProfile") or {}
        regions = self._target_regions(
            location, publishing, "galleryImageVersion.properties.publishingProfile"
        )
        source, os_disk, data_disks, traits = self._resolve_source(ctx, props)
        my_id = f"{image.id}/versions/{name}"
        existing = self.versions.get(my_id.lower())
        if existing is not None:
            return self._re_put_version(
                ctx, existing, source, os_disk, data_disks, publishing, props, body, regions
            )
        deferred_failure = self._check_against_definition(image, traits, location)
        version = GalleryImageVersion(
            image=image,
            name=name,
            location=location,
            source=source,
            os_disk=os_disk,
            data_disks=data_disks,
            regions=regions,
            replica_count=int(publishing.get("replicaCount") or 1),
            exclude_from_latest=bool(publishing.get("excludeFromLatest", False)),
            end_of_life_date=publishing.get("endOfLifeDate"),
            storage_account_type=publishing.get("storageAccountType") or "Standard_LRS",
            replication_mode=publishing.get("replicationMode") or "Full",
            published_date=utc_iso(),
            allow_deletion_of_replicated_locations=bool(
                dig(props, "safetyProfile", "allowDeletionOfReplicatedLocations") is not False
            ),
            tags=dict(body.get("tags") or {}),
            total_bytes=int(traits.get("total_bytes") or int(traits["total_gib"]) * GIB),
            guest=self._source_guest(os_disk.source_id),
            block_deletion_before_end_of_life=bool(
                dig(props, "safetyProfile", "blockDeletionBeforeEndOfLife") is True
            ),
        )
        self.versions[my_id.lower()] = version
        op = self.start_op(
            ctx, family="capsOperations", location=location, resource_id=my_id, sub=image.gallery.subscription
        )
        if deferred_failure is not None:
            # Accepted, then the operation fails with Conflict at once (docs/azure-facts.md#image-versions).
            def mismatch(_at: float) -> None:
                version.provisioning_state = "Failed"
                for r in version.regions:
                    r.state, r.details = "Failed", deferred_failure
                op.fail("Conflict", deferred_failure)

            self.lifecycle.schedule(0, mismatch)
            return self.accepted(ctx, op, status=201, body=version.to_arm(), final=version.to_arm)
        too_big = traits.get("replication_failure")
        extra = {r.region: too_big for r in version.regions} if too_big else {}
        self._start_replication(ctx, version, version.regions, op, extra)
        return self.accepted(ctx, op, status=201, body=version.to_arm(), final=version.to_arm)

    def _failing_regions(self, ctx: RequestContext) -> dict[str, str]:
        return {
            normalize(e.region): e.message
            for e in ctx.effects
            if getattr(e, "type", None) == "replicationFailure"
        }

    def _start_replication(
        self,
        ctx: RequestContext,
        version: GalleryImageVersion,
        regions: list[RegionReplication],
        op: Operation,
        extra_failures: dict[str, str] | None = None,
    ) -> None:
        failing = {**self._failing_regions(ctx), **(extra_failures or {})}
        full = self.latency.replication_s(version.total_bytes)
        source_region = next((r for r in regions if r.region == version.location), None)
        others = [r for r in regions if r is not source_region]

        def finish_if_done() -> None:
            states = {r.state for r in version.regions}
            if "Replicating" in states:
                return
            if "Failed" in states:
                version.provisioning_state = "Failed"
                failed = [r.region for r in version.regions if r.state == "Failed"]
                op.fail(
                    "ReplicationFailed",
                    f"Replication of gallery image version '{version.name}' failed in region(s) "
                    f"'{', '.join(failed)}'. {'; '.join(r.details for r in version.regions if r.details)}",
                )
            else:
                version.provisioning_state = "Succeeded"
                op.succeed()

        def start(region: RegionReplication, seconds: float, base: float | None) -> None:
            region.start = self.lifecycle.now() if base is None else base
            region.duration_s = seconds
            region.state = "Replicating"

            def done(at: float) -> None:
                if region not in version.regions:
                    return
                if region.region in failing:
                    region.state = "Failed"
                    region.details = failing[region.region]
                else:
                    region.state = "Completed"
                if region is source_region:
                    for other in others:
                        start(other, full, at)
                finish_if_done()

            self.lifecycle.schedule(seconds, done, base=region.start)

        for r in regions:
            r.state = "Replicating"
            r.start = None
        if source_region is not None:
            start(source_region, full * self.latency.source_region_fraction, None)
        else:
            for other in others:
                start(other, full, None)

    def _re_put_version(
        self,
        ctx: RequestContext,
        existing: GalleryImageVersion,
        source: dict[str, str],
        os_disk: DiskImage,
        data_disks: list[DiskImage],
        publishing: dict[str, Any],
        props: dict[str, Any],
        body: dict[str, Any],
        regions: list[RegionReplication],
    ) -> Reply:
        """Re-PUT: a source change is PropertyChangeNotAllowed, adding or changing data disks is refused,
        anything else updates."""
        if existing.source:
            old_key, old_id = next(iter(existing.source.items()))
            new_id = source.get(old_key) or os_disk.source_id
            if new_id.lower() != old_id.lower():
                prop = (
                    "storageProfile.source.virtualMachineId"
                    if old_key == "virtualMachineId"
                    else "storageProfile.source.id"
                )
                raise ArmError(
                    409,
                    "PropertyChangeNotAllowed",
                    f"Changing property 'galleryImageVersion.properties.{prop}' is not allowed.",
                    target=f"galleryImageVersion.properties.{prop}",
                )
        else:
            if source or os_disk.source_id.lower() != existing.os_disk.source_id.lower():
                prop = "storageProfile.osDiskImage.source.id"
                raise ArmError(
                    409,
                    "PropertyChangeNotAllowed",
                    f"Changing property 'galleryImageVersion.properties.{prop}' is not allowed.",
                    target=f"galleryImageVersion.properties.{prop}",
                )
            old = {d.lun: d.source_id.lower() for d in existing.data_disks}
            new = {d.lun: d.source_id.lower() for d in data_disks}
            if old.keys() != new.keys():
                raise ArmError(
                    409,
                    "OperationNotAllowed",
                    "Adding new Data Disks or changing the LUN of a Data Disk in an existing Image version is not allowed.",
                )
            for lun, sid in new.items():
                if old[lun] != sid:
                    prop = f"storageProfile.dataDiskImages[lun={lun}].source.id"
                    raise ArmError(
                        409,
                        "PropertyChangeNotAllowed",
                        f"Changing property 'galleryImageVersion.properties.{prop}' is not allowed.",
                        target=f"galleryImageVersion.properties.{prop}",
                    )
        if "tags" in body:
            existing.tags = dict(body.get("tags") or {})
        self._apply_safety(existing, props)
        return self._update_publishing(ctx, existing, publishing, regions, status=200)

    def _update_publishing(
        self,
        ctx: RequestContext,
        version: GalleryImageVersion,
        publishing: dict[str, Any],
        regions: list[RegionReplication] | None,
        *,
        status: int,
    ) -> Reply:
        if version.provisioning_state in ("Creating", "Updating"):
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Gallery image version '{version.name}' is {version.provisioning_state.lower()}; wait for the "
                "previous operation to complete before updating it.",
            )
        op = self.start_op(
            ctx,
            family="capsOperations",
            location=version.location,
            resource_id=version.id,
            sub=version.image.gallery.subscription,
        )
        if "excludeFromLatest" in publishing:
            version.exclude_from_latest = bool(publishing["excludeFromLatest"])
        if publishing.get("endOfLifeDate"):
            version.end_of_life_date = publishing["endOfLifeDate"]
        if publishing.get("replicaCount"):
            version.replica_count = int(publishing["replicaCount"])
        added: list[RegionReplication] = []
        if regions is not None:
            current = {r.region: r for r in version.regions}
            removed = [r for r in version.regions if r.region not in {n.region for n in regions}]
            if removed and not version.allow_deletion_of_replicated_locations:
                raise invalid_parameter(
                    "Removing replicated regions is not allowed because safetyProfile.allowDeletionOfReplicatedLocations "
                    "is false.",
                    "galleryImageVersion.properties.publishingProfile.targetRegions",
                )
            new_list: list[RegionReplication] = []
            for r in regions:
                if r.region in current:
                    kept = current[r.region]
                    kept.regional_replica_count = r.regional_replica_count
                    kept.exclude_from_latest = r.exclude_from_latest
                    kept.storage_account_type = r.storage_account_type
                    new_list.append(kept)
                else:
                    new_list.append(r)
                    added.append(r)
            version.regions = new_list
        if added:
            version.provisioning_state = "Updating"
            failing = self._failing_regions(ctx)
            full = self.latency.replication_s(version.total_bytes)
            for r in added:
                r.start = self.lifecycle.now()
                r.duration_s = full

                def done(_at: float, region: RegionReplication = r) -> None:
                    if region not in version.regions:
                        return
                    region.state = "Failed" if region.region in failing else "Completed"
                    region.details = failing.get(region.region, "")
                    if all(x.state != "Replicating" for x in version.regions):
                        if any(x.state == "Failed" for x in added):
                            version.provisioning_state = "Failed"
                            op.fail(
                                "ReplicationFailed",
                                f"Replication of gallery image version '{version.name}' failed.",
                            )
                        else:
                            version.provisioning_state = "Succeeded"
                            op.succeed()

                self.lifecycle.schedule(full, done)
        else:
            op.succeed()
        return self.accepted(ctx, op, status=status, body=version.to_arm(), final=version.to_arm)

    def patch_version(
        self,
        ctx: RequestContext,
        sub: str,
        rg: str,
        gallery: str,
        image: str,
        name: str,
        body: dict[str, Any],
    ) -> Reply:
        version = self.get_version(sub, rg, gallery, image, name)
        props = body.get("properties") or {}
        self._check_patched_sources(version, props.get("storageProfile") or {})
        publishing = props.get("publishingProfile") or {}
        regions = None
        if "targetRegions" in publishing:
            regions = self._target_regions(
                version.location, publishing, "galleryImageVersion.properties.publishingProfile"
            )
        if "tags" in body:
            version.tags = dict(body.get("tags") or {})
        self._apply_safety(version, props)
        return self._update_publishing(ctx, version, publishing, regions, status=200)

    def _check_patched_sources(self, version: GalleryImageVersion, storage: dict[str, Any]) -> None:
        """A PATCH may carry the storage profile (the spec's own update example does); its sources must
        be the version's own: a different one is a property change, refused as on re-PUT."""
        prefix = "galleryImageVersion.properties.storageProfile"
        sent: list[tuple[str, Any, str]] = []
        src = storage.get("source") or {}
        for key in ("virtualMachineId", "id"):
            if src.get(key):
                sent.append((f"{prefix}.source.{key}", src[key], next(iter(version.source.values()), "")))
        if dig(storage, "osDiskImage", "source", "id"):
            sent.append(
                (
                    f"{prefix}.osDiskImage.source.id",
                    storage["osDiskImage"]["source"]["id"],
                    version.os_disk.source_id,
                )
            )
        by_lun = {d.lun: d.source_id for d in version.data_disks}
        for i, ddi in enumerate(storage.get("dataDiskImages") or []):
            if isinstance(ddi, dict) and dig(ddi, "source", "id"):
                sent.append(
                    (
                        f"{prefix}.dataDiskImages[{i}].source.id",
                        ddi["source"]["id"],
                        by_lun.get(ddi.get("lun"), ""),
                    )
                )
        for target, new, old in sent:
            if canonical_id(str(new)).lower() != old.lower():
                raise ArmError(
                    409,
                    "PropertyChangeNotAllowed",
                    f"Changing property '{target}' is not allowed.",
                    target=target,
                )

    def delete_version(
        self, ctx: RequestContext, sub: str, rg: str, gallery: str, image: str, name: str
    ) -> Reply:
        parent = self.get_image(sub, rg, gallery, image)
        version = self.versions.get(f"{parent.id}/versions/{name}".lower())
        if version is None:
            return Reply(204, None)  # DELETE of a missing resource: the spec's 204
        self._check_delete_allowed(version)
        self.versions.pop(version.id.lower())
        version.regions = []
        op = self.start_op(
            ctx,
            family="capsOperations",
            location=version.location,
            resource_id=version.id,
            sub=version.image.gallery.subscription,
        )
        self.lifecycle.schedule(self.latency.gallery_delete_s, lambda _a: op.succeed())
        return self.accepted(ctx, op)
