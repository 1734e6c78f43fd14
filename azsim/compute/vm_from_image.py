"""VM PUT from a gallery image version (``storageProfile.imageReference.id`` = a version id, or a
definition id for its latest version): the region must hold a Completed replica, ``osProfile`` is
required for a Generalized definition and refused for a Specialized one, the security type must suit
the definition, and the OS and data disks are created from the image (``createOption: FromImage``).

How the VM then provisions models the guest the image was captured from (``guest.boot_outcome``):
a prepared guest provisions; one never deprovisioned stays Creating until the OS provisioning timeout
and fails ``OSProvisioningTimedOut``; a broken preparation fails ``OSProvisioningClientError``; a
specialized image boots without OS provisioning. Texts and timings: docs/azsim-arm.md.
"""

from __future__ import annotations

import uuid
from typing import Any

from azsim.compute.guest import (
    GuestImage,
    boot_outcome,
    provisioning_client_error,
    provisioning_timed_out,
    provisioning_timed_out_prepared,
)
from azsim.compute.models import DataDiskRef, GalleryImage, GalleryImageVersion, ManagedDisk, VirtualMachine
from azsim.compute.state import SECURITY_COMPAT, canonical_id, dig
from azsim.compute.version_rules import VersionRules, image_reference_target, not_available_in_region
from azsim.core.clock import utc_iso
from azsim.core.context import Reply, RequestContext
from azsim.core.errors import ArmError, bad_request, invalid_parameter

# From this VM api-version on, a VM PUT without securityProfile gets Trusted Launch when the image allows.
TRUSTED_LAUNCH_DEFAULT_FROM = "2025-11-01"
_CLIENT_ERROR_DETAILS = "Provisioning agent reported a failure while applying the OS profile."


def default_security(api_version: str, generation: str | None, architecture: str, tl_capable: bool) -> str:
    """The security type of a VM PUT without ``securityProfile``: Trusted Launch from API 2025-11-01 when
    the disk or image is Gen2 x64 and supports it, else Standard (shared by Attach and image creates)."""
    if (
        api_version >= TRUSTED_LAUNCH_DEFAULT_FROM
        and generation == "V2"
        and architecture == "x64"
        and tl_capable
    ):
        return "TrustedLaunch"
    return "Standard"


def _missing(name: str) -> ArmError:
    return invalid_parameter(f"Required parameter '{name}' is missing (null).", name)


def check_os_profile(image: GalleryImage, props: dict[str, Any]) -> str | None:
    """The admin user name of a generalized image's VM (None for specialized); Azure's refusals."""
    profile = props.get("osProfile")
    if image.os_state == "Specialized":
        if profile:
            raise invalid_parameter("Parameter 'osProfile' is not allowed.", "osProfile")
        return None
    if not isinstance(profile, dict) or not profile:
        raise _missing("osProfile")
    user = profile.get("adminUsername")
    if not user:
        raise _missing("adminUsername")
    keys = dig(profile, "linuxConfiguration", "ssh", "publicKeys") or []
    if not profile.get("adminPassword") and not (image.os_type == "Linux" and keys):
        raise _missing("adminPassword")
    return str(user)


class ImageCreates(VersionRules):
    """Resolution of the image, its rules, its disks and the provisioning that follows."""

    def image_source(self, ref: dict[str, Any], location: str) -> tuple[GalleryImage, GalleryImageVersion]:
        ref_id = str(ref.get("id") or "")
        if not ref_id:
            raise invalid_parameter(
                "azsim creates VMs from gallery images only (imageReference.id); platform images "
                "(publisher/offer/sku) are not modelled.",
                "imageReference",
            )
        definition_id, version_name = image_reference_target(ref_id)
        image = self.images.get(definition_id.lower())
        if image is None:
            raise ArmError(
                404,
                "NotFound",
                f"The gallery image {canonical_id(ref_id)} could not be found.",
                target="imageReference",
            )
        if version_name is None:
            version = self.latest_version(image, location)
        else:
            found = self.versions.get(f"{image.id}/versions/{version_name}".lower())
            if found is None:
                raise ArmError(
                    404,
                    "NotFound",
                    f"The gallery image {canonical_id(ref_id)} could not be found.",
                    target="imageReference",
                )
            version = found
        replica = next((r for r in version.regions if r.region == location), None)
        if replica is None or replica.state != "Completed":
            raise not_available_in_region(version.id, location)
        return image, version

    def image_security(self, ctx: RequestContext, props: dict[str, Any], image: GalleryImage) -> str:
        feature = (image.security_type or "").lower() or None
        allowed = SECURITY_COMPAT.get(feature, {"Standard"})
        given = dig(props, "securityProfile", "securityType")
        if given:
            security = str(given)
        else:
            security = default_security(
                ctx.api_version, image.hyper_v_generation, image.architecture, "TrustedLaunch" in allowed
            )
            if security not in allowed:
                security = next(iter(sorted(allowed)))
        match = next((a for a in allowed if a.lower() == security.lower()), None)
        if match is None:
            raise bad_request(
                f"The security type '{security}' of the VM is not supported by gallery image '{image.id}', whose "
                f"security type is '{image.security_type or 'Standard'}'. Send securityProfile.securityType "
                f"{' or '.join(sorted(allowed))}.",
                "securityProfile.securityType",
            )
        return match

    def _disk_from_image(
        self,
        vm_name: str,
        group_sub: str,
        group_rg: str,
        location: str,
        spec: dict[str, Any],
        size: int,
        lun: int | None,
    ) -> ManagedDisk:
        suffix = uuid.uuid4().hex
        default = f"{vm_name}_OsDisk_1_{suffix}" if lun is None else f"{vm_name}_DataDisk_{lun}_{suffix}"
        name = str(spec.get("name") or default)
        blob = self._new_blob_name("disk", group_rg, name)
        content = self.disk_store.create_disk_blob(blob, content_mib=2, seed=self.seed)
        return ManagedDisk(
            kind="disks",
            subscription=group_sub,
            resource_group=group_rg,
            name=name,
            location=location,
            sku=str(dig(spec, "managedDisk", "storageAccountType") or "Premium_LRS"),
            size_gib=max(int(spec.get("diskSizeGB") or 0), size),
            blob_name=blob,
            content_bytes=content,
            create_option="FromImage",
            time_created=utc_iso(),
        )

    def image_disks(
        self,
        vm: VirtualMachine,
        version: GalleryImageVersion,
        props: dict[str, Any],
        delete_option: Any,
    ) -> list[ManagedDisk]:
        """The OS disk and the data disks (at the image's LUNs) of a VM created from ``version``."""
        image = version.image
        os_spec = dig(props, "storageProfile", "osDisk") or {}
        os_disk = self._disk_from_image(
            vm.name, vm.subscription, vm.resource_group, vm.location, os_spec, version.os_disk.size_gib, None
        )
        os_disk.os_type, os_disk.hyper_v_generation = image.os_type, image.hyper_v_generation
        os_disk.architecture, os_disk.security_type = image.architecture, vm.security_type
        os_disk.source_resource_id, os_disk.guest = version.id, version.guest
        requested = {
            d.get("lun"): d for d in dig(props, "storageProfile", "dataDisks") or [] if isinstance(d, dict)
        }
        image_luns = {d.lun for d in version.data_disks}
        for i, (lun, spec) in enumerate(requested.items()):
            if lun not in image_luns or str(spec.get("createOption") or "FromImage").lower() != "fromimage":
                raise invalid_parameter(
                    "azsim creates the data disks of an image VM from the image's data disk images only "
                    f"(createOption 'FromImage' at the image's LUNs {sorted(x for x in image_luns if x is not None)}).",
                    f"dataDisks[{i}]",
                )
        made = [os_disk]
        vm.os_disk_id = os_disk.id
        vm.os_disk_delete_option = delete_option(os_spec.get("deleteOption"), "osDisk.deleteOption")
        for ddi in sorted(version.data_disks, key=lambda d: d.lun or 0):
            spec = requested.get(ddi.lun, {})
            disk = self._disk_from_image(
                vm.name, vm.subscription, vm.resource_group, vm.location, spec, ddi.size_gib, ddi.lun
            )
            disk.source_resource_id = version.id
            made.append(disk)
            option = delete_option(spec.get("deleteOption"), f"dataDisks[lun={ddi.lun}].deleteOption")
            vm.data_disks.append(DataDiskRef(int(ddi.lun or 0), disk.id, option, create_option="FromImage"))
        for disk in made:
            disk.managed_by = vm.id
            self.disks[disk.id.lower()] = disk
        return made

    def provision_from_image(
        self, ctx: RequestContext, vm: VirtualMachine, version: GalleryImageVersion, *, status: int
    ) -> Reply:
        """Boot, then OS provisioning as the captured guest allows (docs/azsim-arm.md)."""
        op = self.start_op(
            ctx, family="operations", location=vm.location, resource_id=vm.id, sub=vm.subscription
        )
        outcome = boot_outcome(version.image.os_state, version.guest)
        lat = self.latency
        timeout = (
            lat.os_provisioning_timeout_linux_s
            if vm.os_type == "Linux"
            else lat.os_provisioning_timeout_windows_s
        )

        def agent_ready(_at: float) -> None:
            vm.agent_ready = True

        def succeeded(at: float) -> None:
            vm.provisioning_state = "Succeeded"
            op.succeed()
            self.lifecycle.schedule(lat.vm_agent_ready_s if outcome == "none" else 0, agent_ready, base=at)

        def failed(code: str, message: str) -> None:
            vm.provisioning_state = "Failed"
            op.fail(code, message)

        def booted(at: float) -> None:
            vm.power = "running"
            if outcome == "none":
                succeeded(at)
            elif outcome == "ok":
                # OS provisioning ends when the agent reports it: Succeeded and Ready together.
                self.lifecycle.schedule(lat.vm_agent_ready_s, succeeded, base=at)
            elif outcome == "clientError":
                self.lifecycle.schedule(
                    lat.vm_agent_ready_s,
                    lambda _a: failed(
                        "OSProvisioningClientError", provisioning_client_error(vm.name, _CLIENT_ERROR_DETAILS)
                    ),
                    base=at,
                )
            else:
                text = (
                    provisioning_timed_out(vm.name)
                    if version.guest.state == ""
                    else provisioning_timed_out_prepared(vm.name)
                )
                self.lifecycle.schedule(timeout, lambda _a: failed("OSProvisioningTimedOut", text), base=at)

        self.lifecycle.schedule(lat.vm_create_s, booted)
        return self.accepted(
            ctx, op, status=status, body=vm.to_arm(self.disks), final=lambda: vm.to_arm(self.disks)
        )

    def new_image_guest(self, version: GalleryImageVersion) -> GuestImage:
        """The guest of a VM made from ``version``: a generalized image is provisioned afresh."""
        if version.image.os_state == "Specialized":
            return version.guest
        return GuestImage("", version.guest.prepare_fails)
