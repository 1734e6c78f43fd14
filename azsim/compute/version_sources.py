"""What a gallery image version is made from: target regions, the source (a VM, a managed image,
or per-disk images from disks, snapshots or VHD blobs) and its fit with the image definition."""

from __future__ import annotations

from typing import Any

from azsim.compute.images import ManagedImages
from azsim.compute.models import GIB, DiskImage, GalleryImage, ManagedDisk, RegionReplication
from azsim.compute.regions import normalize
from azsim.compute.state import SECURITY_COMPAT, canonical_id, dig
from azsim.core.context import RequestContext
from azsim.core.errors import ArmError, bad_request, invalid_parameter

# The data-disk size limit of an image version's source ("the data disk size cannot be more than 1 TB").
MAX_SOURCE_DISK_GIB = 1024
_SOURCE_NOT_FOUND = (
    "Source {0} is not found. Please check source exists, and is in the same region as gallery image version "
    "being created."
)


def oversize_failure(disks: list[DiskImage]) -> str | None:
    """The replication failure Azure reports for a source disk over the size limit, if any."""
    big = max((d.size_gib for d in disks), default=0)
    if big <= MAX_SOURCE_DISK_GIB:
        return None
    return (
        f"Replication failed in this region due to 'The GalleryImageVersion source resource size {big} exceeds "
        f"the max size {MAX_SOURCE_DISK_GIB} supported.'"
    )


class VersionSources(ManagedImages):
    """Parsing and checking what a version is built from (used by ``ImageVersions``)."""

    def _target_regions(
        self, version_location: str, publishing: dict[str, Any], path: str
    ) -> list[RegionReplication]:
        raw = publishing.get("targetRegions")
        default_count = int(publishing.get("replicaCount") or 1)
        default_sku = publishing.get("storageAccountType") or "Standard_LRS"
        if not raw:
            return [RegionReplication(version_location, default_count, default_sku, False)]
        out: list[RegionReplication] = []
        seen: set[str] = set()
        for i, tr in enumerate(raw):
            name = tr.get("name") if isinstance(tr, dict) else None
            if not name:
                raise invalid_parameter(
                    f"Required parameter 'targetRegions[{i}].name' is missing (null).",
                    f"{path}.targetRegions[{i}].name",
                )
            short = normalize(name)
            if short not in self.regions:
                raise invalid_parameter(
                    f"The region '{name}' in target publishing regions is not a valid region. Valid regions: "
                    f"{', '.join(sorted(self.regions))}.",
                    f"{path}.targetRegions[{i}].name",
                )
            if short in seen:
                raise invalid_parameter(
                    "Duplicate regions are not allowed in target publishing regions.", f"{path}.targetRegions"
                )
            seen.add(short)
            count = int(tr.get("regionalReplicaCount") or default_count)
            if not 1 <= count <= 100:
                raise invalid_parameter(
                    f"Regional replica count {count} is out of range; expected 1 to 100.",
                    f"{path}.targetRegions[{i}].regionalReplicaCount",
                )
            out.append(
                RegionReplication(
                    short,
                    count,
                    tr.get("storageAccountType") or default_sku,
                    bool(tr.get("excludeFromLatest", False)),
                )
            )
        if version_location not in seen:
            raise invalid_parameter(
                f"Gallery image version publishing profile regions '{', '.join(r.region for r in out)}' must contain "
                f"the location of image version '{version_location}'.",
                f"{path}.targetRegions",
            )
        return out

    def _resolve_source(
        self, ctx: RequestContext, props: dict[str, Any]
    ) -> tuple[dict[str, str], DiskImage, list[DiskImage], dict[str, Any]]:
        """Source -> (source ref, os disk image, data disk images, traits to match against the definition)."""
        storage = props.get("storageProfile") or {}
        src = storage.get("source") or {}
        if "/providers/microsoft.compute/images/" in str(src.get("id", "")).lower():
            return self._managed_image_source(ctx, str(src["id"]))
        vm_id = src.get("virtualMachineId") or (
            src.get("id") if "/virtualmachines/" in str(src.get("id", "")).lower() else None
        )
        if vm_id:
            vm = self.vms.get(canonical_id(str(vm_id)).lower())
            if vm is None:
                raise invalid_parameter(
                    f"The resource with id '{vm_id}' was not found.",
                    "galleryImageVersion.properties.storageProfile.source.virtualMachineId",
                )
            ctx.authorize_linked("Microsoft.Compute/virtualMachines/write", vm.id)
            os_disk = self.disks[vm.os_disk_id.lower()]
            traits: dict[str, Any] = {
                "id": vm.id,
                "osType": vm.os_type,
                "osState": "Generalized" if vm.generalized else "Specialized",
                "hyperVGeneration": vm.hyper_v_generation,
                "securityType": vm.security_type,
                "architecture": vm.architecture,
                "location": vm.location,
                "is_vm": True,
            }
            data = []
            total = os_disk.size_gib
            for ref in vm.data_disks:
                d = self.disks[ref.disk_id.lower()]
                data.append(DiskImage(ref.lun, d.size_gib, d.id, "None"))
                total += d.size_gib
            traits["total_gib"] = total
            return (
                {"virtualMachineId": vm.id},
                DiskImage(None, os_disk.size_gib, os_disk.id, "ReadWrite"),
                data,
                traits,
            )
        os_image = storage.get("osDiskImage") or {}
        os_src = dig(os_image, "source", "id")
        if dig(os_image, "source", "uri"):
            return self._vhd_source(ctx, storage)
        if not os_src:
            raise invalid_parameter(
                "Required parameter 'storageProfile.source' or 'storageProfile.osDiskImage.source.id' is missing (null).",
                "galleryImageVersion.properties.storageProfile",
            )

        def disk_source(source_id: str, target: str) -> ManagedDisk:
            d = self.disks.get(canonical_id(source_id).lower())
            if d is None:
                raise invalid_parameter(f"The resource with id '{source_id}' was not found.", target)
            if d.provisioning_state != "Succeeded":
                raise ArmError(409, "Conflict", f"The source '{d.id}' is still being provisioned.")
            ctx.authorize_linked(f"Microsoft.Compute/{d.kind}/write", d.id)
            return d

        os_d = disk_source(str(os_src), "galleryImageVersion.properties.storageProfile.osDiskImage.source.id")
        data = []
        total = os_d.size_gib
        luns: set[int] = set()
        for i, ddi in enumerate(storage.get("dataDiskImages") or []):
            lun = ddi.get("lun")
            target = f"galleryImageVersion.properties.storageProfile.dataDiskImages[{i}]"
            if not isinstance(lun, int) or lun in luns:
                raise invalid_parameter(
                    f"Data disk image LUN '{lun}' is missing or used twice.", f"{target}.lun"
                )
            luns.add(lun)
            sid = dig(ddi, "source", "id")
            if not sid:
                raise invalid_parameter(
                    "Required parameter 'source.id' is missing (null).", f"{target}.source.id"
                )
            d = disk_source(str(sid), f"{target}.source.id")
            data.append(DiskImage(lun, d.size_gib, d.id, ddi.get("hostCaching") or "None"))
            total += d.size_gib
        disk_traits: dict[str, Any] = {
            "id": os_d.id,
            "osType": os_d.os_type,
            "osState": None,  # a disk or snapshot carries no OS state: the definition's is taken
            "hyperVGeneration": os_d.hyper_v_generation,
            "securityType": os_d.security_type or "Standard",
            "architecture": os_d.architecture,
            "location": os_d.location,
            "is_vm": False,
            "total_gib": total,
        }
        return (
            {},
            DiskImage(None, os_d.size_gib, os_d.id, os_image.get("hostCaching") or "ReadWrite"),
            data,
            disk_traits,
        )

    def _check_against_definition(
        self, image: GalleryImage, traits: dict[str, Any], version_location: str
    ) -> str | None:
        """Raise the synchronous mismatches; return a deferred (LRO) failure message for Hyper-V generation."""
        sid = traits["id"]
        if traits["osType"] and traits["osType"] != image.os_type:
            raise bad_request(
                f"The resource with id '{sid}' has a different OS type ['{traits['osType']}'] than the parent "
                f"gallery image OS type generation ['{image.os_type}']."
            )
        if traits["osState"] is not None and traits["osState"] != image.os_state:
            if traits["osState"] == "Specialized":
                raise bad_request(
                    f"The resource with id '{sid}' has a different OS state ['Specialized'] than the parent gallery "
                    f"image OS state ['{image.os_state}']."
                )
            raise bad_request(
                f"Cannot create Gallery Image Version from: {sid} since the OS State in the parent gallery image "
                f"('{image.os_state}') is not '{traits['osState']}'."
            )
        feature = (image.security_type or "").lower() or None
        if traits["is_vm"] and feature == "trustedlaunchsupported":
            raise invalid_parameter(
                f"The security type 'TrustedLaunchSupported' is not supported for the source id '{sid}'. Currently "
                "only Vhd Blob, User Image and Gallery Image Version sources are supported for "
                "'TrustedLaunchSupported' images.",
                "galleryImageVersion.properties.storageProfile.source.virtualMachineId",
            )
        allowed = SECURITY_COMPAT.get(feature, set())
        if traits["securityType"] not in allowed:
            raise invalid_parameter(
                f"The resource with id '{sid}' has security type '{traits['securityType']}', which the parent gallery "
                f"image (SecurityType feature '{image.security_type or 'none'}') does not support.",
                "galleryImageVersion.properties.storageProfile",
            )
        if traits["architecture"] and traits["architecture"] != image.architecture:
            raise invalid_parameter(
                f"The resource with id '{sid}' has CPU architecture '{traits['architecture']}' but the parent gallery "
                f"image architecture is '{image.architecture}'.",
                "galleryImageVersion.properties.storageProfile",
            )
        if normalize(traits["location"]) != version_location:
            raise invalid_parameter(
                f"The source '{sid}' is in region '{traits['location']}'; it must be in the image version's region "
                f"'{version_location}'.",
                "galleryImageVersion.properties.storageProfile",
            )
        if traits["hyperVGeneration"] and traits["hyperVGeneration"] != image.hyper_v_generation:
            return (
                f"The resource with id '{sid}' has a different Hypervisor generation ['{traits['hyperVGeneration']}'] "
                f"than the parent gallery image Hypervisor generation ['{image.hyper_v_generation}']."
            )
        return None

    def _managed_image_source(
        self, ctx: RequestContext, ref: str
    ) -> tuple[dict[str, str], DiskImage, list[DiskImage], dict[str, Any]]:
        """``storageProfile.source.id`` = a managed image: always generalized, x64, its own generation."""
        image = self.managed_images.get(canonical_id(ref).lower())
        if image is None:
            raise invalid_parameter(
                _SOURCE_NOT_FOUND.format(ref), "galleryImageVersion.properties.storageProfile.source.id"
            )
        ctx.authorize_linked("Microsoft.Compute/images/read", image.id)
        if image.provisioning_state != "Succeeded":
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"The resource {ref} cannot be created from Image {image.id} until Image has been successfully "
                "created.",
            )
        os_disk = DiskImage(None, image.os_disk.size_gib, image.id, image.os_disk.caching)
        data = [DiskImage(d.lun, d.size_gib, image.id, d.caching) for d in image.data_disks]
        traits: dict[str, Any] = {
            "id": image.id,
            "osType": image.os_type,
            "osState": image.os_state,
            "hyperVGeneration": image.hyper_v_generation,
            "securityType": "Standard",
            "architecture": "x64",
            "location": image.location,
            "is_vm": False,
            "total_gib": image.total_gib,
            "replication_failure": oversize_failure(data),
        }
        return {"id": image.id}, os_disk, data, traits

    def _vhd_source(
        self, ctx: RequestContext, storage: dict[str, Any]
    ) -> tuple[dict[str, str], DiskImage, list[DiskImage], dict[str, Any]]:
        """``osDiskImage.source`` = {storageAccountId, uri} (+ data disks the same way): VHD page blobs.
        A VHD carries no OS type, state or generation: the definition's hold."""
        prefix = "galleryImageVersion.properties.storageProfile"
        os_src = dig(storage, "osDiskImage", "source") or {}
        if os_src.get("id"):
            raise invalid_parameter(
                "The property 'source.id' must not be set for a VHD blob source; use 'source.storageAccountId' "
                "and 'source.uri'.",
                f"{prefix}.osDiskImage.source.id",
            )
        os_vhd = self.check_vhd(
            ctx, str(os_src["uri"]), os_src.get("storageAccountId"), f"{prefix}.osDiskImage.source"
        )
        caching = dig(storage, "osDiskImage", "hostCaching") or "ReadWrite"
        os_disk = DiskImage(None, os_vhd.size_gib, os_vhd.uri, caching, os_vhd.storage_account_id)
        data: list[DiskImage] = []
        total_bytes = os_vhd.data_bytes
        for i, ddi in enumerate(storage.get("dataDiskImages") or []):
            target = f"{prefix}.dataDiskImages[{i}]"
            lun = ddi.get("lun") if isinstance(ddi, dict) else None
            if not isinstance(lun, int) or any(d.lun == lun for d in data):
                raise invalid_parameter(
                    f"Data disk image LUN '{lun}' is missing or used twice.", f"{target}.lun"
                )
            src = dig(ddi, "source") or {}
            if not src.get("uri"):
                raise invalid_parameter(
                    "Required parameter 'source.uri' is missing (null).", f"{target}.source.uri"
                )
            vhd = self.check_vhd(ctx, str(src["uri"]), src.get("storageAccountId"), f"{target}.source")
            data.append(
                DiskImage(
                    lun, vhd.size_gib, vhd.uri, ddi.get("hostCaching") or "None", vhd.storage_account_id
                )
            )
            total_bytes += vhd.data_bytes
        traits: dict[str, Any] = {
            "id": os_vhd.uri,
            "osType": None,
            "osState": None,
            "hyperVGeneration": None,
            "securityType": "Standard",
            "architecture": None,
            "location": os_vhd.location,
            "is_vm": False,
            "total_gib": max(1, -(-total_bytes // GIB)),
            "total_bytes": total_bytes,
            "replication_failure": oversize_failure(data),
        }
        return {}, os_disk, data, traits
