"""Managed disks and snapshots: create by copy, delete (blocked while attached or exported), SAS
grant/revoke against the DiskStore."""

from __future__ import annotations

import re
from typing import Any

from azsim.compute.guest import guest_of_disk
from azsim.compute.models import DiskAccess, ManagedDisk, new_guid, rid
from azsim.compute.regions import normalize
from azsim.compute.state import ComputeState, canonical_id, dig
from azsim.core.clock import utc_iso
from azsim.core.context import Reply, RequestContext
from azsim.core.errors import (
    ArmError,
    bad_request,
    invalid_parameter,
    operation_not_allowed,
    resource_not_found,
)


class DisksAndSnapshots(ComputeState):
    """Disk and snapshot operations (one store, ``kind`` tells them apart)."""

    def list_managed(self, kind: str, sub: str, rg: str | None) -> list[ManagedDisk]:
        """Disks or snapshots of one resource group, or of the whole subscription (``rg`` None)."""
        if rg is not None:
            self.require_rg(sub, rg)
        return [
            d
            for d in self.disks.values()
            if d.kind == kind
            and d.subscription.lower() == sub.lower()
            and (rg is None or d.resource_group.lower() == rg.lower())
        ]

    def put_managed(
        self, ctx: RequestContext, kind: str, sub: str, rg: str, name: str, body: dict[str, Any]
    ) -> Reply:
        group = self.require_rg(sub, rg)
        my_id = rid(group.subscription, group.name, f"Microsoft.Compute/{kind}/{name}")
        props = body.get("properties") or {}
        creation = props.get("creationData") or {}
        existing = self.disks.get(my_id.lower())
        if existing is not None:
            src = creation.get("sourceResourceId")
            if (
                src
                and existing.source_resource_id
                and canonical_id(str(src)).lower() != existing.source_resource_id.lower()
            ):
                raise ArmError(
                    409,
                    "PropertyChangeNotAllowed",
                    "Changing property 'creationData.sourceResourceId' is not allowed.",
                    target="creationData.sourceResourceId",
                )
            if "tags" in body:
                existing.tags = dict(body.get("tags") or {})
            op = self.start_op(
                ctx,
                family="DiskOperations",
                location=existing.location,
                resource_id=my_id,
                sub=group.subscription,
            )
            op.succeed()
            return self.accepted(
                ctx, op, status=200, body=self.disk_json(existing), final=lambda: self.disk_json(existing)
            )
        location = self._check_region(body.get("location"))
        option = str(creation.get("createOption") or "")
        if option.lower() != "copy":
            raise invalid_parameter(
                f"azsim supports createOption 'Copy' for {kind}; got '{option}'.",
                "properties.creationData.createOption",
            )
        asked_security = dig(props, "securityProfile", "securityType")
        if kind == "disks" and asked_security and str(asked_security).lower() != "standard":
            # A copy keeps its source's security type; it cannot be set (Azure/azure-cli#22561).
            raise bad_request(
                f"Security Type '{asked_security}' is not supported for CreateOption 'Copy'. Supported create "
                "options are FromImage, Import, ImportSecure, UploadPreparedSecure."
            )
        source_id = canonical_id(str(creation.get("sourceResourceId") or ""))
        source = self.disks.get(source_id.lower())
        if source is None:
            m = re.search(
                r"/resourceGroups/([^/]+)/providers/Microsoft\.Compute/(disks|snapshots)/([^/]+)$",
                source_id,
                re.IGNORECASE,
            )
            if not m:
                raise invalid_parameter(
                    f"Parameter 'sourceResourceId' '{source_id}' is not a valid disk or snapshot resource id.",
                    "properties.creationData.sourceResourceId",
                )
            raise resource_not_found(f"Microsoft.Compute/{m.group(2)}", m.group(3), m.group(1))
        if normalize(source.location) != location:
            raise bad_request(
                f"Source '{source.id}' is in region '{source.location}'; createOption 'Copy' needs the "
                f"{kind[:-1]} in the same region (use CopyStart across regions, not modelled by azsim)."
            )
        if source.provisioning_state != "Succeeded":
            raise ArmError(409, "Conflict", f"Source '{source.name}' is still being provisioned.")
        sku = dig(body, "sku", "name") or ("Standard_LRS" if kind == "snapshots" else source.sku)
        blob = self._new_blob_name(kind[:-1], group.name, name)
        self.disk_store.copy_blob(source.blob_name, blob)
        size = int(props.get("diskSizeGB") or source.size_gib)
        if size < source.size_gib:
            raise bad_request(f"Disk size {size} GB is smaller than the source size {source.size_gib} GB.")
        created = ManagedDisk(
            kind=kind,
            subscription=group.subscription,
            resource_group=group.name,
            name=name,
            location=location,
            sku=sku,
            size_gib=size,
            blob_name=blob,
            content_bytes=source.content_bytes,
            os_type=source.os_type,
            hyper_v_generation=props.get("hyperVGeneration") or source.hyper_v_generation,
            security_type=source.security_type,
            architecture=source.architecture,
            create_option="Copy",
            source_resource_id=source.id,
            source_unique_id=source.unique_id,
            incremental=bool(props.get("incremental", False)) if kind == "snapshots" else False,
            provisioning_state="Creating" if kind == "disks" else "Updating",
            time_created=utc_iso(),
            tags=dict(body.get("tags") or {}),
            guest=guest_of_disk(source, self.vms),
        )
        self.disks[created.id.lower()] = created
        op = self.start_op(
            ctx, family="DiskOperations", location=location, resource_id=created.id, sub=group.subscription
        )
        seconds = self.latency.snapshot_s(size) if kind == "snapshots" else self.latency.disk_from_snapshot_s

        def provisioned(_at: float) -> None:
            created.provisioning_state = "Succeeded"
            op.succeed()

        self.lifecycle.schedule(seconds, provisioned)
        # Snapshot/disk PUT must answer 200/202: the SDK rejects 201
        # (docs/azure-facts.md#what-the-pinned-sdk-accepts).
        return self.accepted(
            ctx, op, status=202, body=self.disk_json(created), final=lambda: self.disk_json(created)
        )

    def delete_managed(self, ctx: RequestContext, kind: str, sub: str, rg: str, name: str) -> Reply:
        group = self.require_rg(sub, rg)
        my_id = rid(group.subscription, group.name, f"Microsoft.Compute/{kind}/{name}")
        disk = self.disks.get(my_id.lower())
        if disk is None:
            return Reply(204, None)  # DELETE of a missing resource is a no-op in ARM
        if disk.managed_by:
            raise operation_not_allowed(f"Disk {disk.name} is attached to VM {disk.managed_by}.")
        op = self.start_op(
            ctx, family="DiskOperations", location=disk.location, resource_id=disk.id, sub=disk.subscription
        )
        disk.delete_pending = True
        disk.provisioning_state = "Deleting"
        disk.delete_ops.append(op)
        if disk.access is None:
            self._complete_delete(disk)
        # else: blocked while the export SAS is active; completes on endGetAccess or SAS expiry
        # (docs/azure-facts.md#deleting-a-snapshot-or-disk-with-an-active-sas).
        return self.accepted(ctx, op)

    def _complete_delete(self, disk: ManagedDisk) -> None:
        def gone(_at: float) -> None:
            if self.disks.get(disk.id.lower()) is disk:
                self.disks.pop(disk.id.lower())
                self.disk_store.delete_blob(disk.blob_name)
                self._blobs.discard(disk.blob_name)
            for op in disk.delete_ops:
                op.succeed()

        self.lifecycle.schedule(1.0, gone)

    def begin_get_access(
        self, ctx: RequestContext, kind: str, sub: str, rg: str, name: str, body: dict[str, Any]
    ) -> Reply:
        disk = self.get_managed(kind, sub, rg, name)
        access = str(body.get("access") or "")
        if access not in ("Read", "Write"):
            raise invalid_parameter(
                f"The value '{access}' of parameter 'access' is not valid; expected 'Read' (azsim does not model 'Write').",
                "grantAccessData.access",
            )
        if access == "Write":
            raise invalid_parameter(
                "azsim models read access only; 'Write' (upload) is not supported.", "access"
            )
        duration = body.get("durationInSeconds")
        if not isinstance(duration, int) or duration <= 0:
            raise invalid_parameter(
                "Required parameter 'durationInSeconds' must be a positive integer.", "durationInSeconds"
            )
        if disk.delete_pending:
            raise ArmError(409, "Conflict", f"{kind[:-1].capitalize()} '{disk.name}' is being deleted.")
        if disk.provisioning_state != "Succeeded":
            raise ArmError(
                409, "Conflict", f"{kind[:-1].capitalize()} '{disk.name}' is still being provisioned."
            )
        power = self.vm_power_of(disk)
        if kind == "disks" and power is not None and power not in ("deallocated",):
            raise operation_not_allowed(
                f"Operation 'beginGetAccess' is not allowed on disk '{disk.name}' since it is attached to VM "
                f"'{disk.managed_by}' that is not deallocated."
            )
        if disk.access is not None:  # a new grant replaces the previous one
            self.disk_store.revoke(disk.blob_name, disk.access.access_id)
            if disk.access.expiry_entry is not None:
                disk.access.expiry_entry.cancelled = True
        access_id = new_guid()
        sas = self.disk_store.grant_read(disk.blob_name, access_id, duration)
        grant = DiskAccess(access_id, self.lifecycle.now() + self.lifecycle.validity(duration))
        disk.access = grant

        def expire(_at: float) -> None:
            if disk.access is grant:
                self._end_access(disk)

        grant.expiry_entry = self.lifecycle.schedule_validity_end(float(duration), expire)
        op = self.start_op(
            ctx, family="DiskOperations", location=disk.location, resource_id=disk.id, sub=disk.subscription
        )
        result = {"accessSAS": sas}
        self.lifecycle.schedule(self.latency.grant_access_s, lambda _a: op.succeed(result))
        return self.accepted(ctx, op)

    def _end_access(self, disk: ManagedDisk) -> None:
        if disk.access is None:
            return
        self.disk_store.revoke(disk.blob_name, disk.access.access_id)
        if disk.access.expiry_entry is not None:
            disk.access.expiry_entry.cancelled = True
        disk.access = None
        if disk.delete_pending:
            self._complete_delete(disk)

    def end_get_access(self, ctx: RequestContext, kind: str, sub: str, rg: str, name: str) -> Reply:
        disk = self.get_managed(kind, sub, rg, name)
        # The SAS stops working at once; the operation reports completion after the usual delay.
        self._end_access(disk)
        op = self.start_op(
            ctx, family="DiskOperations", location=disk.location, resource_id=disk.id, sub=disk.subscription
        )
        self.lifecycle.schedule(self.latency.revoke_access_s, lambda _a: op.succeed())
        return self.accepted(ctx, op)

    def patch_managed(
        self, ctx: RequestContext, kind: str, sub: str, rg: str, name: str, body: dict[str, Any]
    ) -> Reply:
        disk = self.get_managed(kind, sub, rg, name)
        return self.patch_tags(
            ctx, disk, body, family="DiskOperations", sub=disk.subscription, view=lambda: self.disk_json(disk)
        )
