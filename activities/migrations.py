"""Activities of the migration of managed images: list the images of a scope, delete a migrated one.

``list_managed_images`` reads ``Microsoft.Compute/images`` of a resource group (``images.list_by_resource_group``)
or of a subscription (``images.list``); ``delete_managed_image`` deletes one image once its version is
verified, idempotently: an image already gone is reported gone, a delete already accepted is followed
through its operation instead of being sent again.
"""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from activities import lro
from activities._common import activity, as_dict, azure_call, get_or_none, parse_id, props
from shared import clients
from shared.activity_types import DELETE_MANAGED_IMAGE, LIST_MANAGED_IMAGES
from shared.azure_errors import operation_failure
from shared.migration_status import (
    ImageScope,
    ManagedImageDeletion,
    ManagedImageFacts,
    ManagedImageList,
    ManagedImageRef,
)
from shared.migrations import parse_scope


def _facts(image: dict[str, Any]) -> ManagedImageFacts:
    p = props(image)
    storage = p.get("storageProfile") or {}
    os_disk = storage.get("osDisk") or {}
    disks = [os_disk, *(storage.get("dataDisks") or [])]
    image_id = str(image.get("id") or "")
    return ManagedImageFacts(
        id=image_id,
        name=str(image.get("name") or image_id.rsplit("/", 1)[-1]),
        resource_group=image_id.split("/")[4] if image_id.count("/") >= 8 else "",
        location=str(image.get("location") or ""),
        os_type=os_disk.get("osType"),
        hyper_v_generation=p.get("hyperVGeneration"),
        provisioning_state=p.get("provisioningState"),
        size_gib=sum(int(d.get("diskSizeGB") or 0) for d in disks if isinstance(d, dict)),
    )


@activity(LIST_MANAGED_IMAGES)
def list_managed_images(inp: ImageScope) -> ManagedImageList:
    """Every managed image of the scope (a resource group or a subscription), sorted by id."""
    sub, rg = parse_scope(inp.scope)
    images = clients.compute(sub).images
    with azure_call("list the managed images", inp.scope):
        found = list(images.list_by_resource_group(rg) if rg else images.list())
    facts = [_facts(as_dict(i)) for i in found]
    return ManagedImageList(images=sorted(facts, key=lambda f: f.id.lower()))


@activity(DELETE_MANAGED_IMAGE)
def delete_managed_image(inp: ManagedImageRef) -> ManagedImageDeletion:
    """Delete the image (or follow the delete ``inp.operation_url`` started); ``gone`` once it is gone.

    A delete that failed is raised with Azure's code and message (a transient one is retried by the
    orchestrator, which then starts it again: the failed operation's URL is not sent back).
    """
    rid = parse_id(inp.image_id, field="imageId", step="delete_managed_image")
    images = clients.compute(rid.subscription_id).images
    found = get_or_none(
        lambda: as_dict(images.get(rid.resource_group, rid.name)),
        step="read the managed image",
        resource=inp.image_id,
    )
    if found is None:
        return ManagedImageDeletion(image_id=inp.image_id, gone=True)
    if inp.operation_url:
        with azure_call("read the managed image's delete operation", inp.image_id):
            outcome = lro.read_operation(rid.subscription_id, inp.operation_url)
        if outcome is not None and lro.failed(outcome):
            raise operation_failure(
                {"code": outcome.code, "message": outcome.message},
                step="delete the managed image",
                resource=inp.image_id,
                status=outcome.status,
            )
        if outcome is not None and outcome.status.lower() != "unknown":
            return ManagedImageDeletion(image_id=inp.image_id, gone=False, operation_url=inp.operation_url)
    with azure_call("delete the managed image", inp.image_id):
        try:
            accepted = lro.start(images.begin_delete, rid.resource_group, rid.name)
        except ResourceNotFoundError:
            return ManagedImageDeletion(image_id=inp.image_id, gone=True)
    return ManagedImageDeletion(image_id=inp.image_id, gone=False, operation_url=accepted.operation_url)
