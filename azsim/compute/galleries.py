"""Compute Galleries and their image definitions."""

from __future__ import annotations

import re
from typing import Any

from azsim.compute.models import Gallery, GalleryImage, rid
from azsim.compute.regions import normalize
from azsim.compute.state import SECURITY_COMPAT, ComputeState
from azsim.core.context import Reply, RequestContext
from azsim.core.errors import ArmError, invalid_parameter


class Galleries(ComputeState):
    """Gallery and image definition operations."""

    def list_galleries(self, sub: str, rg: str | None) -> list[Gallery]:
        """Galleries of one resource group, or of the whole subscription (``rg`` None)."""
        if rg is not None:
            self.require_rg(sub, rg)
        return [
            g
            for g in self.galleries.values()
            if g.subscription.lower() == sub.lower()
            and (rg is None or g.resource_group.lower() == rg.lower())
        ]

    def put_gallery(self, ctx: RequestContext, sub: str, rg: str, name: str, body: dict[str, Any]) -> Reply:
        group = self.require_rg(sub, rg)
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._]{0,78}[A-Za-z0-9])?", name):
            raise invalid_parameter(
                f"The gallery name '{name}' is invalid. It may contain letters, digits, dots and underscores, "
                "may not start or end with a dot or underscore, and is at most 80 characters.",
                "galleryName",
            )
        location = self._check_region(body.get("location"))
        my_id = rid(group.subscription, group.name, f"Microsoft.Compute/galleries/{name}")
        props = body.get("properties") or {}
        existing = self.galleries.get(my_id.lower())
        op = self.start_op(
            ctx, family="capsOperations", location=location, resource_id=my_id, sub=group.subscription
        )
        if existing is not None:
            if normalize(existing.location) != location:
                raise ArmError(
                    409,
                    "InvalidResourceLocation",
                    f"The resource '{name}' already exists in location '{existing.location}' in resource group "
                    f"'{group.name}'. A resource with the same name cannot be created in location '{location}'. "
                    "Please select a new resource name.",
                )
            existing.description = props.get("description", existing.description) or ""
            existing.tags = dict(body.get("tags") or existing.tags)
            op.succeed()
            return self.accepted(ctx, op, status=200, body=existing.to_arm(), final=existing.to_arm)
        gallery = Gallery(group.subscription, group.name, name, location, props.get("description") or "")
        gallery.unique_name = f"{group.subscription}-{name.upper()}"
        gallery.tags = dict(body.get("tags") or {})
        gallery.provisioning_state = "Creating"
        self.galleries[my_id.lower()] = gallery

        def ready(_at: float) -> None:
            gallery.provisioning_state = "Succeeded"
            op.succeed()

        self.lifecycle.schedule(self.latency.gallery_s, ready)
        return self.accepted(ctx, op, status=201, body=gallery.to_arm(), final=gallery.to_arm)

    def delete_gallery(self, ctx: RequestContext, sub: str, rg: str, name: str) -> Reply:
        group = self.require_rg(sub, rg)
        gallery = self.galleries.get(
            rid(group.subscription, group.name, f"Microsoft.Compute/galleries/{name}").lower()
        )
        if gallery is None:
            return Reply(204, None)  # DELETE of a missing resource: the spec's 204
        if any(img.gallery is gallery for img in self.images.values()):
            raise ArmError(
                409, "CannotDeleteResource", "Can not delete resource before nested resources are deleted."
            )
        self.galleries.pop(gallery.id.lower())
        op = self.start_op(
            ctx,
            family="capsOperations",
            location=gallery.location,
            resource_id=gallery.id,
            sub=gallery.subscription,
        )
        self.lifecycle.schedule(self.latency.gallery_delete_s, lambda _a: op.succeed())
        return self.accepted(ctx, op)

    def list_images(self, sub: str, rg: str, gallery: str) -> list[GalleryImage]:
        g = self.get_gallery(sub, rg, gallery)
        return [img for img in self.images.values() if img.gallery is g]

    def put_image(
        self, ctx: RequestContext, sub: str, rg: str, gallery: str, name: str, body: dict[str, Any]
    ) -> Reply:
        g = self.get_gallery(sub, rg, gallery)
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,78}[A-Za-z0-9])?", name):
            raise invalid_parameter(
                f"The gallery image name '{name}' is invalid. It may contain letters, digits, dots and dashes in "
                "the middle, and is at most 80 characters.",
                "galleryImageName",
            )
        location = self._check_region(body.get("location"))
        if location != g.location:
            raise invalid_parameter(
                f"The location '{location}' of gallery image '{name}' must match the location '{g.location}' of "
                f"gallery '{g.name}'.",
                "galleryImage.location",
            )
        props = body.get("properties") or {}
        for required in ("osType", "osState", "identifier"):
            if not props.get(required):
                raise invalid_parameter(
                    f"Required parameter 'galleryImage.properties.{required}' is missing (null).",
                    f"galleryImage.properties.{required}",
                )
        ident = props["identifier"]
        for part in ("publisher", "offer", "sku"):
            if not ident.get(part):
                raise invalid_parameter(
                    f"Required parameter 'galleryImage.properties.identifier.{part}' is missing (null).",
                    f"galleryImage.properties.identifier.{part}",
                )
        if props["osType"] not in ("Linux", "Windows"):
            raise invalid_parameter(
                f"The value '{props['osType']}' of 'osType' is invalid.", "galleryImage.properties.osType"
            )
        if props["osState"] not in ("Generalized", "Specialized"):
            raise invalid_parameter(
                f"The value '{props['osState']}' of 'osState' is invalid.", "galleryImage.properties.osState"
            )
        hyper_v = props.get("hyperVGeneration") or "V1"
        arch = props.get("architecture") or "x64"
        features = [dict(f) for f in (props.get("features") or [])]
        for f in features:
            if f.get("name", "").lower() == "securitytype" and f.get("value", "").lower() not in {
                k for k in SECURITY_COMPAT if k
            }:
                raise invalid_parameter(
                    f"The value '{f.get('value')}' of feature 'SecurityType' is invalid.", "features"
                )
        my_id = f"{g.id}/images/{name}"
        existing = self.images.get(my_id.lower())
        op = self.start_op(
            ctx, family="capsOperations", location=location, resource_id=my_id, sub=g.subscription
        )
        if existing is not None:
            for field_name, old, new in (
                ("osType", existing.os_type, props["osType"]),
                ("osState", existing.os_state, props["osState"]),
                ("hyperVGeneration", existing.hyper_v_generation, hyper_v),
                ("architecture", existing.architecture, arch),
            ):
                if old != new:
                    raise ArmError(
                        409,
                        "PropertyChangeNotAllowed",
                        f"Changing property 'galleryImage.properties.{field_name}' is not allowed.",
                        target=f"galleryImage.properties.{field_name}",
                    )
            existing.description = props.get("description") or existing.description
            existing.tags = dict(body.get("tags") or existing.tags)
            op.succeed()
            return self.accepted(ctx, op, status=200, body=existing.to_arm(), final=existing.to_arm)
        image = GalleryImage(
            gallery=g,
            name=name,
            location=location,
            os_type=props["osType"],
            os_state=props["osState"],
            hyper_v_generation=hyper_v,
            architecture=arch,
            identifier={k: ident[k] for k in ("publisher", "offer", "sku")},
            features=features,
            description=props.get("description") or "",
            tags=dict(body.get("tags") or {}),
            provisioning_state="Creating",
        )
        self.images[my_id.lower()] = image

        def ready(_at: float) -> None:
            image.provisioning_state = "Succeeded"
            op.succeed()

        self.lifecycle.schedule(self.latency.gallery_image_s, ready)
        return self.accepted(ctx, op, status=201, body=image.to_arm(), final=image.to_arm)

    def delete_image(self, ctx: RequestContext, sub: str, rg: str, gallery: str, name: str) -> Reply:
        parent = self.get_gallery(sub, rg, gallery)
        img = self.images.get(f"{parent.id}/images/{name}".lower())
        if img is None:
            return Reply(204, None)  # DELETE of a missing resource: the spec's 204
        if any(v.image is img for v in self.versions.values()):
            raise ArmError(
                409, "CannotDeleteResource", "Can not delete resource before nested resources are deleted."
            )
        self.images.pop(img.id.lower())
        op = self.start_op(
            ctx,
            family="capsOperations",
            location=img.location,
            resource_id=img.id,
            sub=img.gallery.subscription,
        )
        self.lifecycle.schedule(self.latency.gallery_delete_s, lambda _a: op.succeed())
        return self.accepted(ctx, op)

    def patch_gallery(self, ctx: RequestContext, sub: str, rg: str, name: str, body: dict[str, Any]) -> Reply:
        g = self.get_gallery(sub, rg, name)
        return self.patch_tags(
            ctx,
            g,
            body,
            family="capsOperations",
            sub=g.subscription,
            view=g.to_arm,
            properties=("description",),
        )

    def patch_image(
        self, ctx: RequestContext, sub: str, rg: str, gallery: str, name: str, body: dict[str, Any]
    ) -> Reply:
        img = self.get_image(sub, rg, gallery, name)
        return self.patch_tags(
            ctx,
            img,
            body,
            family="capsOperations",
            sub=img.gallery.subscription,
            view=img.to_arm,
            properties=("description",),
        )
