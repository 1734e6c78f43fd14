"""Compute state shared by the per-resource backends: the stores, the world they start from, the
lookups every resource needs (resource group, VM, disk, gallery, image, version), region checks and
LRO plumbing. The per-resource rules live in ``vms``, ``disks``, ``galleries`` and ``versions``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from azsim.compute.guest import GuestImage
from azsim.compute.models import (
    DataDiskRef,
    DiskImage,
    Gallery,
    GalleryImage,
    GalleryImageVersion,
    ManagedDisk,
    RegionReplication,
    ResourceGroup,
    VirtualMachine,
    rid,
)
from azsim.compute.regions import normalize
from azsim.core.clock import utc_iso
from azsim.core.context import Reply, RequestContext
from azsim.core.errors import (
    ArmError,
    invalid_parameter,
    resource_group_not_found,
    resource_not_found,
)
from azsim.core.latency import LatencyProfile
from azsim.core.lifecycle import Lifecycle
from azsim.core.lro import Operation, OperationStore, lro_headers
from azsim.interfaces import DiskStore
from azsim.world import World

SECURITY_COMPAT = {
    # image definition SecurityType feature -> source security types it accepts
    None: {"Standard"},
    "trustedlaunch": {"TrustedLaunch"},
    "trustedlaunchsupported": {"Standard", "TrustedLaunch"},
    "confidentialvm": {"ConfidentialVM"},
    "confidentialvmsupported": {"Standard", "ConfidentialVM"},
    "trustedlaunchandconfidentialvmsupported": {"Standard", "TrustedLaunch", "ConfidentialVM"},
}


def dig(body: dict[str, Any], *path: str) -> Any:
    cur: Any = body
    for p in path:
        cur = cur.get(p) if isinstance(cur, dict) else None
    return cur


def canonical_id(resource_id: str) -> str:
    """A resource id as a key: the spec's examples send ``subscriptions/...`` without the leading '/'."""
    text = resource_id.strip()
    return text if text.startswith("/") or not text else "/" + text


class ComputeState:
    """The resources of every kind, the lookups they share, LRO plumbing and resource groups."""

    def __init__(
        self,
        world: World,
        disk_store: DiskStore,
        lifecycle: Lifecycle,
        ops: OperationStore,
        latency: LatencyProfile,
        *,
        seed: int = 0,
    ) -> None:
        self.world = world
        self.disk_store = disk_store
        self.lifecycle = lifecycle
        self.ops = ops
        self.latency = latency
        self.seed = seed
        self.regions = {normalize(r) for r in world.regions}
        self.subscriptions = {s.id.lower() for s in world.subscriptions}
        self.rgs: dict[tuple[str, str], ResourceGroup] = {}
        self.vms: dict[str, VirtualMachine] = {}
        self.disks: dict[str, ManagedDisk] = {}  # disks and snapshots, by lower-case id
        self.galleries: dict[str, Gallery] = {}
        self.images: dict[str, GalleryImage] = {}
        self.versions: dict[str, GalleryImageVersion] = {}
        self._blob_counter = 0
        self._blobs: set[str] = set()
        self._load_world()

    # ------------------------------------------------------------------ world / reset

    def _new_blob_name(self, kind: str, rg: str, name: str) -> str:
        self._blob_counter += 1
        safe = re.sub(r"[^a-z0-9-]", "-", f"{kind}-{rg}-{name}".lower())
        blob = f"{safe}-{self._blob_counter}"
        self._blobs.add(blob)
        return blob

    def _load_world(self) -> None:
        w = self.world
        now = utc_iso()
        for rg_spec in w.resource_groups:
            sub = w.resource_group_subscription(rg_spec)
            self.rgs[(sub.lower(), rg_spec.name.lower())] = ResourceGroup(
                sub, rg_spec.name, normalize(rg_spec.location), dict(rg_spec.tags)
            )
        for index, spec in enumerate(w.virtual_machines):
            rg = self.rgs[(self._sub_of_rg(spec.resource_group), spec.resource_group.lower())]
            vm_id = rid(rg.subscription, rg.name, f"Microsoft.Compute/virtualMachines/{spec.name}")
            disk_ids: list[tuple[int | None, str]] = []
            for lun, dspec in [(None, spec.os_disk), *[(d.lun, d) for d in spec.data_disks]]:
                blob = self._new_blob_name("disk", rg.name, dspec.name)
                size = self.disk_store.create_disk_blob(
                    blob,
                    content_mib=dspec.content_mi_b,
                    seed=self.seed * 7919 + index,
                    vhd_format=dspec.vhd_format,
                )
                disk = ManagedDisk(
                    kind="disks",
                    subscription=rg.subscription,
                    resource_group=rg.name,
                    name=dspec.name,
                    location=normalize(spec.location),
                    sku=dspec.sku,
                    size_gib=dspec.size_gi_b,
                    blob_name=blob,
                    content_bytes=size,
                    os_type=spec.os_type if lun is None else None,
                    hyper_v_generation=spec.hyper_v_generation if lun is None else None,
                    security_type=spec.security_type if lun is None else None,
                    architecture=spec.architecture,
                    create_option="FromImage" if lun is None else "Empty",
                    managed_by=vm_id,
                    time_created=now,
                )
                self.disks[disk.id.lower()] = disk
                disk_ids.append((lun, disk.id))
            vm = VirtualMachine(
                subscription=rg.subscription,
                resource_group=rg.name,
                name=spec.name,
                location=normalize(spec.location),
                os_type=spec.os_type,
                hyper_v_generation=spec.hyper_v_generation,
                security_type=spec.security_type,
                architecture=spec.architecture,
                vm_size=spec.vm_size,
                power=spec.power_state,
                os_disk_id=disk_ids[0][1],
                data_disks=[DataDiskRef(lun, did) for lun, did in disk_ids[1:] if lun is not None],
                generalized=spec.generalized,
                guest_state="deprovisioned" if spec.guest_deprovisioned else "",
                image_guest=GuestImage("", spec.guest_prepare_fails),
                tags=dict(spec.tags),
                os_name=spec.os_name,
                os_version=spec.os_version,
                time_created=now,
            )
            self.vms[vm.id.lower()] = vm
        for g in w.galleries:
            rg = self.rgs[(self._sub_of_rg(g.resource_group), g.resource_group.lower())]
            gallery = Gallery(rg.subscription, rg.name, g.name, normalize(g.location), g.description)
            gallery.unique_name = f"{rg.subscription}-{g.name.upper()}"
            self.galleries[gallery.id.lower()] = gallery
            for img in g.images:
                features = [{"name": "SecurityType", "value": img.security_type}] if img.security_type else []
                image = GalleryImage(
                    gallery=gallery,
                    name=img.name,
                    location=gallery.location,
                    os_type=img.os_type,
                    os_state=img.os_state,
                    hyper_v_generation=img.hyper_v_generation,
                    architecture=img.architecture,
                    identifier={"publisher": img.publisher, "offer": img.offer, "sku": img.sku or img.name},
                    features=features,
                )
                self.images[image.id.lower()] = image
                for ver in img.versions:
                    regions = ver.target_regions or [gallery.location]
                    version = GalleryImageVersion(
                        image=image,
                        name=ver.name,
                        location=gallery.location,
                        source={},
                        os_disk=DiskImage(None, ver.os_disk_size_gi_b, "", "ReadWrite"),
                        data_disks=[DiskImage(lun, 32, "", "None") for lun in ver.data_disk_luns],
                        regions=[
                            RegionReplication(normalize(r), 1, "Standard_LRS", False, state="Completed")
                            for r in regions
                        ],
                        exclude_from_latest=ver.exclude_from_latest,
                        published_date=now,
                        provisioning_state="Succeeded",
                        # A world version is a well-made image unless the file says how its guest was left.
                        guest=GuestImage(
                            ver.guest_state
                            if ver.guest_state is not None
                            else ("sysprepped" if img.os_state == "Generalized" else ""),
                            ver.guest_prepare_fails,
                        ),
                    )
                    self.versions[version.id.lower()] = version

    def _sub_of_rg(self, rg_name: str) -> str:
        for (sub, name), _ in self.rgs.items():
            if name == rg_name.lower():
                return sub
        return self.world.default_subscription.id.lower()

    def reset(self) -> None:
        for blob in list(self._blobs):
            self.disk_store.delete_blob(blob)
        self._blobs.clear()
        self.rgs.clear()
        self.vms.clear()
        self.disks.clear()
        self.galleries.clear()
        self.images.clear()
        self.versions.clear()
        self._load_world()

    # ------------------------------------------------------------------ lookups

    def require_rg(self, sub: str, rg: str) -> ResourceGroup:
        found = self.rgs.get((sub.lower(), rg.lower()))
        if found is None:
            raise resource_group_not_found(rg)
        return found

    def _get(self, store: dict[str, Any], sub: str, rg: str, type_name: str, path: str, name: str) -> Any:
        group = self.require_rg(sub, rg)
        found = store.get(rid(group.subscription, group.name, path).lower())
        if found is None:
            raise resource_not_found(type_name, name, rg)
        return found

    def get_vm(self, sub: str, rg: str, name: str) -> VirtualMachine:
        vm: VirtualMachine = self._get(
            self.vms,
            sub,
            rg,
            "Microsoft.Compute/virtualMachines",
            f"Microsoft.Compute/virtualMachines/{name}",
            name,
        )
        return vm

    def get_managed(self, kind: str, sub: str, rg: str, name: str) -> ManagedDisk:
        disk: ManagedDisk = self._get(
            self.disks, sub, rg, f"Microsoft.Compute/{kind}", f"Microsoft.Compute/{kind}/{name}", name
        )
        if disk.kind != kind:
            raise resource_not_found(f"Microsoft.Compute/{kind}", name, rg)
        return disk

    def get_gallery(self, sub: str, rg: str, name: str) -> Gallery:
        g: Gallery = self._get(
            self.galleries,
            sub,
            rg,
            "Microsoft.Compute/galleries",
            f"Microsoft.Compute/galleries/{name}",
            name,
        )
        return g

    def get_image(self, sub: str, rg: str, gallery: str, name: str) -> GalleryImage:
        g = self.get_gallery(sub, rg, gallery)
        img = self.images.get(f"{g.id}/images/{name}".lower())
        if img is None:
            raise resource_not_found(f"Microsoft.Compute/galleries/{gallery}/images", name, rg)
        return img

    def get_version(self, sub: str, rg: str, gallery: str, image: str, name: str) -> GalleryImageVersion:
        img = self.get_image(sub, rg, gallery, image)
        ver = self.versions.get(f"{img.id}/versions/{name}".lower())
        if ver is None:
            raise resource_not_found(
                f"Microsoft.Compute/galleries/{gallery}/images/{image}/versions", name, rg
            )
        return ver

    def vm_power_of(self, disk: ManagedDisk) -> str | None:
        if not disk.managed_by:
            return None
        vm = self.vms.get(disk.managed_by.lower())
        return vm.power if vm else None

    def disk_json(self, disk: ManagedDisk) -> dict[str, Any]:
        return disk.to_arm(self.vm_power_of(disk))

    def _check_region(self, location: str | None, target: str = "location") -> str:
        if not location:
            raise invalid_parameter("Required parameter 'location' is missing (null).", target)
        short = normalize(location)
        if short not in self.regions:
            raise ArmError(
                400,
                "LocationNotAvailableForResourceType",
                f"The provided location '{location}' is not available for resource type "
                f"'Microsoft.Compute'. List of available regions for the resource type is "
                f"'{','.join(sorted(self.regions))}'.",
            )
        return short

    # ------------------------------------------------------------------ LRO plumbing

    def start_op(
        self, ctx: RequestContext, *, family: str, location: str, resource_id: str, sub: str
    ) -> Operation:
        return self.ops.create(
            subscription=sub,
            location=location,
            family=family,
            api_version=ctx.api_version,
            resource_id=resource_id,
            principal=ctx.principal,
        )

    def accepted(
        self,
        ctx: RequestContext,
        op: Operation,
        *,
        status: int = 202,
        body: Any = None,
        final: Callable[[], Any] | None = None,
    ) -> Reply:
        """An LRO's initial answer; ``final`` renders the resource the Location URL answers when done."""
        op.resource_view = final
        poll = self.lifecycle.real(self.latency.poll_interval_s)
        return Reply(status, body, lro_headers(ctx.base_url, op, location=True, poll_real_s=poll))

    def patch_tags(
        self,
        ctx: RequestContext,
        resource: Any,
        body: dict[str, Any],
        *,
        family: str,
        sub: str,
        view: Callable[[], Any],
        properties: tuple[str, ...] = (),
    ) -> Reply:
        """PATCH of tags (and of the named plain ``properties``): applied at once, answered 200 with the
        resource and an already finished LRO, as the specs' update operations declare (200 + Location)."""
        props = body.get("properties") or {}
        unknown = sorted(set(props) - set(properties))
        if unknown or set(body) - {"tags", "properties"}:
            names = unknown or sorted(set(body) - {"tags", "properties"})
            raise invalid_parameter(
                f"azsim models PATCH of tags{' and ' + ', '.join(properties) if properties else ''} only; "
                f"got {', '.join(names)}.",
                names[0],
            )
        if "tags" in body:
            resource.tags = dict(body.get("tags") or {})
        for name in properties:
            if name in props:
                setattr(resource, name, props[name] or "")
        op = self.start_op(ctx, family=family, location=resource.location, resource_id=resource.id, sub=sub)
        op.succeed()
        return self.accepted(ctx, op, status=200, body=view(), final=view)

    # ------------------------------------------------------------------ resource groups

    def put_resource_group(self, sub: str, name: str, body: dict[str, Any]) -> Reply:
        location = self._check_region(body.get("location"))
        existing = self.rgs.get((sub.lower(), name.lower()))
        if existing is not None:
            if normalize(existing.location) != location:
                raise ArmError(
                    409,
                    "InvalidResourceGroupLocation",
                    f"Invalid resource group location '{location}'. The Resource group already exists in "
                    f"location '{existing.location}'.",
                )
            existing.tags = dict(body.get("tags") or {})
            return Reply(200, existing.to_arm())
        group = ResourceGroup(sub, name, location, dict(body.get("tags") or {}))
        self.rgs[(sub.lower(), name.lower())] = group
        return Reply(201, group.to_arm())

    def list_resource_groups(self, sub: str) -> list[ResourceGroup]:
        return [g for (s, _), g in sorted(self.rgs.items()) if s == sub.lower()]
