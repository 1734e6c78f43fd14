"""Pure preflight rules of the capture: every reason it cannot go ahead, before anything irreversible.

No Durable types and no I/O: the preflight stage (``orchestrators.capture.vm``) reads the facts and
these functions judge them, so each rule is unit-tested on its own.
"""

from __future__ import annotations

import difflib

from shared.contracts import ExportCheckResult, GalleryCheckResult, TargetRegion, VmFacts
from shared.requests import CaptureRequest

STOPPED = frozenset({"stopped", "deallocated"})


def region_name(location: str) -> str:
    """ARM's short region name ("West Europe" -> "westeurope"), as ``TargetRegion.name`` normalises it."""
    return location.replace(" ", "").lower()


def target_regions(
    requested: list[TargetRegion], vm_location: str, gallery_location: str | None = None
) -> list[TargetRegion]:
    """The requested regions plus the VM's own region (always replicated, added with defaults if missing)
    and an existing gallery's region (Azure requires the version's own location among its targets, so
    ``start_image_version`` adds it; listing it here makes the capture wait for it and report it)."""
    regions = list(requested)
    for extra in (vm_location, gallery_location):
        if extra and region_name(extra) not in {r.name for r in regions}:
            regions.append(TargetRegion(name=region_name(extra)))
    return regions


def region_problems(
    requested: list[TargetRegion],
    vm: VmFacts,
    gallery_name: str,
    gallery_location: str | None,
    subscription_id: str,
    known: list[str],
) -> list[str]:
    """One actionable sentence per target region that is not a region of the gallery's subscription.

    ``known`` is ``list_regions``' answer. Checked in preflight because Azure would refuse the image
    version only after the VM was generalized. An empty list (a subscription that reports no region)
    proves nothing, so it is not held against the request.
    """
    if not known:
        return []
    known_set = set(known)
    choices = ", ".join(known)

    def hint(name: str) -> str:
        close = difflib.get_close_matches(name, known, n=2, cutoff=0.75)
        return f" (did you mean {' or '.join(close)}?)" if close else ""

    problems = []
    for r in requested:
        if r.name not in known_set:
            problems.append(
                f"target region {r.name} is not a region of subscription {subscription_id}{hint(r.name)}; "
                f"choose one of: {choices}"
            )
    asked = {r.name for r in requested}
    own = region_name(vm.location)
    if own not in known_set and own not in asked:
        problems.append(
            f"{vm.name}'s region {own} (always replicated) is not a region of the gallery's subscription "
            f"{subscription_id}: put the gallery in a subscription that offers {own}"
        )
    if gallery_location:
        home = region_name(gallery_location)
        if home not in known_set and home not in asked | {own}:
            problems.append(
                f"the region {home} of gallery {gallery_name} (always replicated) is not a region of "
                f"subscription {subscription_id}: use a gallery in one of: {choices}"
            )
    return problems


def preflight_problems(
    req_prepare: str, facts: VmFacts, gallery: GalleryCheckResult, export: ExportCheckResult | None
) -> list[str]:
    """Every reason the capture cannot go ahead, each an actionable sentence (empty when fine)."""
    problems = list(gallery.problems)
    if (
        gallery.version_exists
        and not gallery.version_is_ours
        and not any("exist" in p.lower() for p in problems)
    ):
        problems.append(
            f"Image version {gallery.resolved_version} already exists: choose another version or use 'auto'."
        )
    if (
        req_prepare == "deprovision"
        and not facts.generalized
        and facts.power_state in ("stopped", "deallocated")
    ):
        problems.append(
            f"{facts.name} is {facts.power_state}, so the guest cannot be deprovisioned through Run Command: "
            "start the VM, or use prepare 'none' if the guest was already deprovisioned."
        )
    if export is not None and (not export.reachable or export.problem):
        problems.append(export.problem or "The VHD export account is not reachable.")
    return problems


def mode_problems(req: CaptureRequest, facts: VmFacts) -> list[str]:
    """What the capture mode cannot do with this VM (empty when fine)."""
    if req.capture_mode == "specialized" and facts.generalized:
        return [
            f'{facts.name} is generalized, so its image cannot be specialized: use captureMode "inPlace" '
            'with prepare "none" (the VM is generalized already) and a Generalized definition'
        ]
    if req.capture_mode == "clone" and facts.generalized:
        return [
            f"{facts.name} is generalized already, so there is nothing to keep by cloning it: use captureMode "
            '"inPlace" with prepare "none"'
        ]
    if req.capture_mode == "clone" and facts.security_type == "ConfidentialVM":
        return [
            f"{facts.name} is a confidential VM, whose disks cannot be copied into a clone: use captureMode "
            '"specialized", or capture it "inPlace"'
        ]
    return []


def shown_consistency(req: CaptureRequest, facts: VmFacts) -> str:
    """The consistency the snapshots will have: "stopped" when the VM is (or will be) stopped for them."""
    if req.effective_consistency == "stopped" or facts.power_state in STOPPED:
        return "stopped"
    return "crash-consistent"
