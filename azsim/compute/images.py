"""Managed images (``Microsoft.Compute/images``): create from a generalized, deallocated VM or from
snapshots / managed disks / VHD blobs, get, list, delete; the VHD blobs of the world's storage
accounts (read through ``azsim.storage.vhdblobs``) that images and image versions are made from.

Texts are Azure's where docs/azsim-arm.md lists them as such; the rest are marked "our text" there.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from azsim.compute.models import GIB, rid
from azsim.compute.regions import normalize
from azsim.compute.state import ComputeState, canonical_id, dig
from azsim.core.context import Reply, RequestContext
from azsim.core.errors import ArmError, invalid_parameter, operation_not_allowed, resource_not_found
from azsim.storage.vhd import FOOTER_SIZE, MIB, InvalidVhdError, parse_footer
from azsim.storage.vhdblobs import BlobTail, VhdBlobs, vhd_image

IMAGES = "Microsoft.Compute/images"
# The linked action a VHD source needs on its storage account (Azure's docs: listKeys, or Storage Account
# Contributor), checked when a version or an image names a blob of it.
LIST_KEYS = "Microsoft.Storage/storageAccounts/listKeys/action"
MAX_IMAGE_DISK_GIB = 1023  # ImageDisk.diskSizeGB's description: "cannot be larger than 1023 GB"


@dataclass
class ImageDisk:
    lun: int | None  # None = OS disk
    size_gib: int
    source: dict[str, Any]  # {"snapshot": {"id"}} | {"managedDisk": {"id"}} | {"blobUri": uri}
    caching: str = "ReadWrite"
    storage_account_type: str = "Standard_LRS"


@dataclass
class ManagedImage:
    subscription: str
    resource_group: str
    name: str
    location: str
    os_type: str
    hyper_v_generation: str
    os_disk: ImageDisk
    data_disks: list[ImageDisk] = field(default_factory=list)
    os_state: str = "Generalized"
    source_vm: str | None = None
    provisioning_state: str = "Succeeded"
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return rid(self.subscription, self.resource_group, f"{IMAGES}/{self.name}")

    @property
    def total_gib(self) -> int:
        return self.os_disk.size_gib + sum(d.size_gib for d in self.data_disks)

    def to_arm(self) -> dict[str, Any]:
        def disk(d: ImageDisk) -> dict[str, Any]:
            out: dict[str, Any] = {
                **d.source,
                "caching": d.caching,
                "diskSizeGB": d.size_gib,
                "storageAccountType": d.storage_account_type,
            }
            if d.lun is None:
                out.update(osType=self.os_type, osState=self.os_state)
            else:
                out["lun"] = d.lun
            return out

        props: dict[str, Any] = {
            "storageProfile": {
                "osDisk": disk(self.os_disk),
                "dataDisks": [disk(d) for d in sorted(self.data_disks, key=lambda x: x.lun or 0)],
                "zoneResilient": False,
            },
            "provisioningState": self.provisioning_state,
            "hyperVGeneration": self.hyper_v_generation,
        }
        if self.source_vm:
            props["sourceVirtualMachine"] = {"id": self.source_vm}
        return {
            "id": self.id,
            "name": self.name,
            "type": IMAGES,
            "location": self.location,
            "tags": self.tags,
            "properties": props,
        }


@dataclass(frozen=True)
class VhdSource:
    """A checked VHD blob: which account, its ARM id, where it is and how big its data is."""

    uri: str
    storage_account_id: str
    location: str
    data_bytes: int

    @property
    def size_gib(self) -> int:
        return max(1, math.ceil(self.data_bytes / GIB))


def _blob_path(uri: str, account: str) -> tuple[str, str] | None:
    """(container, blob) of a blob URI in ``account``: ``https://{account}.blob.{suffix}/{c}/{b}`` or
    path style ``https://host/{account}/{c}/{b}`` (Azurite, azsim's blob front); None if not in it."""
    parts = urlsplit(uri)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    host = (parts.hostname or "").lower()
    if host.startswith(account.lower() + ".blob."):
        pass
    elif segments and segments[0].lower() == account.lower():
        segments = segments[1:]
    else:
        return None
    if len(segments) < 2:
        return None
    return segments[0], "/".join(segments[1:])


class ManagedImages(ComputeState):
    """Managed-image operations and the VHD blobs of the world's storage accounts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.managed_images: dict[str, ManagedImage] = {}
        self.vhd_blobs: VhdBlobs | None = None
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ world

    def _load_world(self) -> None:
        super()._load_world()
        now_state = "Succeeded"
        for spec in self.world.managed_images:
            rg = self.require_rg(self._sub_of_rg(spec.resource_group), spec.resource_group)
            image = ManagedImage(
                subscription=rg.subscription,
                resource_group=rg.name,
                name=spec.name,
                location=normalize(spec.location),
                os_type=spec.os_type,
                hyper_v_generation=spec.hyper_v_generation,
                os_disk=ImageDisk(None, spec.os_disk_size_gi_b, {}),
                data_disks=[ImageDisk(d.lun, d.size_gi_b, {}, "None") for d in spec.data_disks],
                provisioning_state=now_state,
                tags=dict(spec.tags),
            )
            self.managed_images[image.id.lower()] = image
        self._write_world_blobs()

    def reset(self) -> None:
        self.managed_images.clear()
        super().reset()

    def attach_vhd_blobs(self, blobs: VhdBlobs) -> None:
        """Read VHD sources from ``blobs`` and write the world's declared VHD blobs there."""
        self.vhd_blobs = blobs
        self._write_world_blobs()

    def _write_world_blobs(self) -> None:
        if self.vhd_blobs is None:
            return
        for i, sa in enumerate(self.world.storage_accounts):
            for j, spec in enumerate(sa.blobs):
                data = vhd_image(spec.content_mi_b, self.seed * 104729 + i * 101 + j, spec.format)
                self.vhd_blobs.put(
                    sa.account_name, spec.container, spec.name, data, page=spec.blob_type == "PageBlob"
                )

    # ------------------------------------------------------------------ VHD blobs

    def storage_account(self, account_id: str) -> tuple[str, str, str] | None:
        """(ARM id, Azurite account name, location) of a world storage account, by ARM id."""
        wanted = canonical_id(account_id).rstrip("/").lower()
        for sa in self.world.storage_accounts:
            sub = self._sub_of_rg(sa.resource_group)
            sa_id = rid(sub, sa.resource_group, f"Microsoft.Storage/storageAccounts/{sa.name}")
            if sa_id.lower() == wanted:
                return sa_id, sa.account_name, normalize(sa.location)
        return None

    def check_vhd(self, ctx: RequestContext, uri: str, account_id: str | None, target: str) -> VhdSource:
        """A VHD page blob in a world storage account, checked as Azure checks an image source."""
        if not account_id:
            raise invalid_parameter(
                f"Required parameter '{target}.storageAccountId' is missing (null).", target
            )
        account = self.storage_account(str(account_id))
        if account is None:
            raise invalid_parameter(
                f"The storage account '{account_id}' was not found.", f"{target}.storageAccountId"
            )
        sa_id, account_name, location = account
        path = _blob_path(uri, account_name)
        if path is None:
            raise invalid_parameter(
                f"The blob URI '{uri}' does not belong to the storage account '{sa_id}'.", f"{target}.uri"
            )
        ctx.authorize_linked(LIST_KEYS, sa_id)
        tail = self.vhd_blobs.tail(account_name, *path) if self.vhd_blobs is not None else None
        if tail is None:
            raise invalid_parameter(
                f"Source {uri} is not found. Please check source exists, and is in the same region as gallery "
                "image version being created.",
                f"{target}.uri",
            )
        return VhdSource(uri, sa_id, location, _checked_data_bytes(uri, tail))

    def get_storage_account(self, sub: str, rg: str, name: str) -> dict[str, Any]:
        """``GET .../Microsoft.Storage/storageAccounts/{name}``: the world account's ARM JSON (the fields
        a caller reads: id, name, location, kind, sku, the blob endpoint; no keys, no other properties)."""
        group = self.require_rg(sub, rg)
        found = self.storage_account(
            rid(group.subscription, group.name, f"Microsoft.Storage/storageAccounts/{name}")
        )
        if found is None:
            raise resource_not_found("Microsoft.Storage/storageAccounts", name, rg)
        sa_id, _account, location = found
        return {
            "id": sa_id,
            "name": sa_id.rsplit("/", 1)[1],
            "type": "Microsoft.Storage/storageAccounts",
            "location": location,
            "kind": "StorageV2",
            "sku": {"name": "Standard_LRS", "tier": "Standard"},
            "properties": {"provisioningState": "Succeeded"},
        }

    # ------------------------------------------------------------------ images

    def get_managed_image(self, sub: str, rg: str, name: str) -> ManagedImage:
        found: ManagedImage = self._get(self.managed_images, sub, rg, IMAGES, f"{IMAGES}/{name}", name)
        return found

    def list_managed_images(self, sub: str, rg: str | None) -> list[ManagedImage]:
        if rg is not None:
            self.require_rg(sub, rg)
        return [
            i
            for i in self.managed_images.values()
            if i.subscription.lower() == sub.lower()
            and (rg is None or i.resource_group.lower() == rg.lower())
        ]

    def put_managed_image(
        self, ctx: RequestContext, sub: str, rg: str, name: str, body: dict[str, Any]
    ) -> Reply:
        group = self.require_rg(sub, rg)
        my_id = rid(group.subscription, group.name, f"{IMAGES}/{name}")
        existing = self.managed_images.get(my_id.lower())
        if existing is not None:
            return self._re_put_image(ctx, existing, body)
        location = self._check_region(body.get("location"))
        props = body.get("properties") or {}
        vm_ref = dig(props, "sourceVirtualMachine", "id")
        if vm_ref:
            image = self._image_from_vm(ctx, group.subscription, group.name, name, location, str(vm_ref))
        else:
            image = self._image_from_disks(ctx, group.subscription, group.name, name, location, props)
        image.tags = dict(body.get("tags") or {})
        image.provisioning_state = "Creating"
        self.managed_images[my_id.lower()] = image
        op = self.start_op(
            ctx, family="operations", location=location, resource_id=my_id, sub=group.subscription
        )

        def created(_at: float) -> None:
            if self.managed_images.get(my_id.lower()) is image:
                image.provisioning_state = "Succeeded"
            op.succeed()

        self.lifecycle.schedule(self.latency.snapshot_s(image.total_gib), created)
        return self.accepted(ctx, op, status=201, body=image.to_arm(), final=image.to_arm)

    def _re_put_image(self, ctx: RequestContext, image: ManagedImage, body: dict[str, Any]) -> Reply:
        """A managed image cannot change: a re-PUT may only change tags (our text for the refusal)."""
        if image.provisioning_state == "Deleting":
            raise operation_not_allowed(
                f"Operation 'PUT' is not allowed on Image '{image.name}' since the Image is marked for deletion."
            )
        vm_ref = dig(body, "properties", "sourceVirtualMachine", "id")
        if vm_ref and canonical_id(str(vm_ref)).lower() != (image.source_vm or "").lower():
            raise ArmError(
                409,
                "PropertyChangeNotAllowed",
                "Changing property 'sourceVirtualMachine' is not allowed.",
                target="sourceVirtualMachine",
            )
        if "tags" in body:
            image.tags = dict(body.get("tags") or {})
        op = self.start_op(
            ctx, family="operations", location=image.location, resource_id=image.id, sub=image.subscription
        )
        op.succeed()
        return self.accepted(ctx, op, status=200, body=image.to_arm(), final=image.to_arm)

    def _image_from_vm(
        self, ctx: RequestContext, sub: str, rg: str, name: str, location: str, vm_ref: str
    ) -> ManagedImage:
        vm = self.vms.get(canonical_id(vm_ref).lower())
        if vm is None or vm.location != location:
            raise invalid_parameter(
                f"Source Virtual Machine '{vm_ref}' specified in the request does not exist in this Azure location.",
                "sourceVirtualMachine",
            )
        ctx.authorize_linked("Microsoft.Compute/virtualMachines/read", vm.id)
        if vm.security_type == "TrustedLaunch":
            raise operation_not_allowed(
                "Creation of managed images are not supported for virtual machine with TrustedLaunch security type.",
                status=400,
            )
        if vm.architecture != "x64":
            raise operation_not_allowed(
                f"Creating an image with sourceVirtualMachine source that has CPU Architecture '{vm.architecture}' "
                "is not supported. Please select a source resource with a supported CPU Architecture: 'x64'.",
                status=400,
            )
        if not vm.generalized:
            raise operation_not_allowed(
                f"The operation 'Create Image' requires the Virtual Machine '{vm.name}' to be Generalized."
            )
        if vm.power != "deallocated":
            raise operation_not_allowed(
                f"The operation 'Create Image' requires the Virtual Machine '{vm.name}' to be deallocated; it is "
                f"{vm.power}. Deallocate it first."
            )
        os_disk = self.disks[vm.os_disk_id.lower()]
        data = [
            ImageDisk(
                ref.lun,
                self.disks[ref.disk_id.lower()].size_gib,
                {"managedDisk": {"id": ref.disk_id}},
                "None",
                self.disks[ref.disk_id.lower()].sku,
            )
            for ref in vm.data_disks
        ]
        return ManagedImage(
            subscription=sub,
            resource_group=rg,
            name=name,
            location=location,
            os_type=vm.os_type,
            hyper_v_generation=vm.hyper_v_generation,
            os_disk=ImageDisk(
                None, os_disk.size_gib, {"managedDisk": {"id": os_disk.id}}, "ReadWrite", os_disk.sku
            ),
            data_disks=data,
            source_vm=vm.id,
        )

    def _image_disk(
        self, ctx: RequestContext, raw: dict[str, Any], lun: int | None, location: str, target: str
    ) -> tuple[ImageDisk, str | None]:
        """One ``ImageOSDisk``/``ImageDataDisk``: its source and size, and the source's Hyper-V generation."""
        snapshot, managed, blob = (
            dig(raw, "snapshot", "id"),
            dig(raw, "managedDisk", "id"),
            raw.get("blobUri"),
        )
        if sum(1 for s in (snapshot, managed, blob) if s) != 1:
            raise invalid_parameter(
                "Exactly one of 'snapshot', 'managedDisk' or 'blobUri' must be specified for the disk.",
                target,
            )
        caching = raw.get("caching") or ("ReadWrite" if lun is None else "None")
        sku = raw.get("storageAccountType") or "Standard_LRS"
        asked = raw.get("diskSizeGB")
        generation: str | None = None
        source: dict[str, Any]
        if blob:
            account = next(
                (sa for sa in self.world.storage_accounts if _blob_path(str(blob), sa.account_name)), None
            )
            if account is None:
                raise invalid_parameter(
                    f"The blob URI '{blob}' is not in a storage account of this subscription.",
                    f"{target}.blobUri",
                )
            account_id = self.storage_account_id_of(account.name, account.resource_group)
            vhd = self.check_vhd(ctx, str(blob), account_id, f"{target}.blobUri")
            size, source = vhd.size_gib, {"blobUri": str(blob)}
            located = vhd.location
        else:
            kind = "snapshots" if snapshot else "disks"
            ref = str(snapshot or managed)
            disk = self.disks.get(canonical_id(ref).lower())
            if disk is None or disk.kind != kind:
                m = re.search(r"/resourceGroups/([^/]+)/.*/([^/]+)$", ref, re.IGNORECASE)
                raise resource_not_found(
                    f"Microsoft.Compute/{kind}", m.group(2) if m else ref, m.group(1) if m else ""
                )
            ctx.authorize_linked(f"Microsoft.Compute/{kind}/read", disk.id)
            size, located, generation = disk.size_gib, disk.location, disk.hyper_v_generation
            source = {"snapshot" if snapshot else "managedDisk": {"id": disk.id}}
        if normalize(located) != location:
            raise invalid_parameter(
                f"Source '{snapshot or managed or blob}' specified in the request does not exist in this Azure "
                "location.",
                target,
            )
        if asked is not None:
            if int(asked) < size or int(asked) > MAX_IMAGE_DISK_GIB:
                raise invalid_parameter(
                    f"The disk size {asked} GB is out of range: it must be at least the source's {size} GB and at "
                    f"most {MAX_IMAGE_DISK_GIB} GB.",
                    f"{target}.diskSizeGB",
                )
            size = int(asked)
        return ImageDisk(lun, size, source, caching, sku), generation

    def storage_account_id_of(self, name: str, resource_group: str) -> str:
        return rid(
            self._sub_of_rg(resource_group), resource_group, f"Microsoft.Storage/storageAccounts/{name}"
        )

    def _image_from_disks(
        self, ctx: RequestContext, sub: str, rg: str, name: str, location: str, props: dict[str, Any]
    ) -> ManagedImage:
        storage = props.get("storageProfile") or {}
        os_raw = storage.get("osDisk")
        prefix = "properties.storageProfile"
        if not isinstance(os_raw, dict):
            raise invalid_parameter(
                "Required parameter 'sourceVirtualMachine' or 'storageProfile.osDisk' is missing (null).",
                prefix,
            )
        for required in ("osType", "osState"):
            if not os_raw.get(required):
                raise invalid_parameter(
                    f"Required parameter '{required}' is missing (null).", f"{prefix}.osDisk.{required}"
                )
        if os_raw["osState"] not in ("Generalized", "Specialized"):
            raise invalid_parameter(
                f"The value '{os_raw['osState']}' of parameter 'osState' is not valid.",
                f"{prefix}.osDisk.osState",
            )
        os_disk, generation = self._image_disk(ctx, os_raw, None, location, f"{prefix}.osDisk")
        data: list[ImageDisk] = []
        for i, raw in enumerate(storage.get("dataDisks") or []):
            lun = raw.get("lun") if isinstance(raw, dict) else None
            target = f"{prefix}.dataDisks[{i}]"
            if not isinstance(lun, int):
                raise invalid_parameter("Required parameter 'lun' is missing (null).", f"{target}.lun")
            if any(d.lun == lun for d in data):
                raise invalid_parameter(f"The LUN {lun} is used by more than one data disk.", f"{target}.lun")
            data.append(self._image_disk(ctx, raw, lun, location, target)[0])
        asked = props.get("hyperVGeneration")
        if asked is not None and asked not in ("V1", "V2"):
            raise invalid_parameter(
                f"The value '{asked}' of parameter 'hyperVGeneration' is not valid.",
                "properties.hyperVGeneration",
            )
        return ManagedImage(
            subscription=sub,
            resource_group=rg,
            name=name,
            location=location,
            os_type=str(os_raw["osType"]),
            os_state=str(os_raw["osState"]),
            # A blob carries no generation and V1 is the default; a disk or snapshot gives its own.
            hyper_v_generation=str(asked or generation or "V1"),
            os_disk=os_disk,
            data_disks=data,
        )

    def delete_managed_image(self, ctx: RequestContext, sub: str, rg: str, name: str) -> Reply:
        group = self.require_rg(sub, rg)
        image = self.managed_images.get(rid(group.subscription, group.name, f"{IMAGES}/{name}").lower())
        if image is None:
            return Reply(204, None)
        image.provisioning_state = "Deleting"
        op = self.start_op(
            ctx, family="operations", location=image.location, resource_id=image.id, sub=image.subscription
        )

        def gone(_at: float) -> None:
            if self.managed_images.get(image.id.lower()) is image:
                self.managed_images.pop(image.id.lower())
            op.succeed()

        self.lifecycle.schedule(self.latency.snapshot_base_s, gone)
        return self.accepted(ctx, op)


def _checked_data_bytes(uri: str, tail: BlobTail) -> int:
    """The data size of a VHD blob Azure would take as a disk image; ArmError in Azure's words if not."""
    if tail.blob_type != "PageBlob":
        raise ArmError(
            400,
            "IncorrectImageBlobType",
            f"Disk blobs can only be of type page blob. Blob {uri} is of type '{tail.blob_type}'.",
        )
    name = uri.rsplit("/", 1)[-1]
    if tail.length < FOOTER_SIZE or tail.footer[:8] != b"conectix":
        raise ArmError(
            400,
            "InvalidVhd",
            f"The specified cookie value in VHD footer indicates that disk '{name}' with blob {uri} is not a "
            "supported VHD. Disk is expected to have cookie value 'conectix'.",
        )
    try:
        footer = parse_footer(tail.footer)
    except InvalidVhdError as e:
        kind = "dynamic" if "disk type is 3" in str(e) else None
        reason = (
            "it is a dynamic VHD; only fixed VHDs are supported (convert it to a fixed VHD and upload it again)"
            if kind
            else str(e)
        )
        raise ArmError(400, "InvalidVhd", f"The VHD blob {uri} is not a supported VHD: {reason}.") from None
    data = tail.length - FOOTER_SIZE
    if footer.current_size != data or data % MIB:
        raise ArmError(
            400,
            "InvalidVhd",
            f"The VHD blob {uri} is {tail.length} bytes long, which is not a whole number of MiB plus the "
            f"512-byte footer. All VHDs on Azure must have a virtual size aligned to 1 MB.",
        )
    return data
