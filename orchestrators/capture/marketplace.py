"""The Marketplace hand-off: its preflight check and the HANDOFF stage (the last release stage).

``preflight`` (gallery route, called by the preflight stage before anything changes): the gallery's
subscription must be in the publisher's tenant and Partner Center principals must be known; otherwise
the capture ends ``PreflightFailed`` with every problem. The principals found are kept in the progress
(``marketplace.grants``, not yet assigned) for the stage.

``handoff`` (HANDOFF stage):
- gallery route: each Partner Center principal gets Compute Gallery Image Reader on the gallery
  (``assign_role``); the progress lists the gallery, definition and version ids and the assignments;
- vhd route: each exported VHD is checked against Marketplace's file rules (``check_marketplace_vhds``);
  a failed rule fails the capture naming the disk, the rule and the fix. The SAS is never made here: only
  ``POST /api/captures/{id}/marketplace-sas`` issues it (triggers.http_marketplace_sas).
Deterministic: every fact comes from activities.
"""

from __future__ import annotations

from orchestrators.capture.release import assign_waiting, gallery_id
from orchestrators.capture.run import CaptureRun
from orchestrators.retrying import Gen, StepFailed
from shared.activity_types import CHECK_MARKETPLACE, CHECK_MARKETPLACE_VHDS
from shared.errors import ErrorInfo
from shared.marketplace_spec import (
    GALLERY_IMAGE_READER,
    MarketplaceCheckInput,
    MarketplaceHandoff,
    RoleGrant,
    VhdCheck,
    VhdRulesInput,
    VhdToCheck,
)
from shared.release_spec import RoleAssignmentInput
from shared.status import Stage

SAS_ROUTE = "/api/captures/{id}/marketplace-sas"


def preflight(run: CaptureRun) -> Gen[None]:
    """Gallery route: the tenant and the principals, read-only (see the module doc)."""
    spec = run.req.marketplace
    if spec is None:
        return
    run.progress.marketplace = MarketplaceHandoff(route=spec.route)
    if spec.route != "gallery":
        return
    calls = run.calls(Stage.PREFLIGHT)
    found = yield from calls.run(
        CHECK_MARKETPLACE,
        MarketplaceCheckInput(
            subscription_id=run.req.gallery_subscription_id,
            publisher_tenant_id=spec.publisher_tenant_id,
            partner_center_principals=spec.partner_center_principals,
        ),
    )
    if found.problems:
        raise StepFailed(ErrorInfo.preflight_failed(run.req.source_id, found.problems, run.vm.name))
    run.progress.marketplace = MarketplaceHandoff(
        route="gallery",
        tenant_id=found.subscription_tenant_id,
        grants=[RoleGrant(principal_id=p, role_definition_id=GALLERY_IMAGE_READER) for p in found.principals],
    )


def skip_handoff(run: CaptureRun) -> str | None:
    if run.req.marketplace is None:
        return "no marketplace in the request"
    if run.deferred is not None:
        return "not handed off: the publish or the export failed"
    return None


def handoff(run: CaptureRun) -> Gen[str]:
    """The HANDOFF stage (see the module doc); returns the stage's note."""
    spec = run.req.marketplace
    assert spec is not None  # skip_handoff
    shown = run.progress.marketplace or MarketplaceHandoff(route=spec.route)
    scope = gallery_id(run)
    shown.gallery_id = scope
    shown.image_definition_id = f"{scope}/images/{run.req.image_definition.name}"
    shown.image_version_id = run.progress.image_version_id
    run.progress.marketplace = shown
    if spec.route == "gallery":
        yield from _grant(run, shown, scope)
        run.t.publish()
        return f"Compute Gallery Image Reader granted on the gallery to {len(shown.grants)} Partner Center principal(s)"
    yield from _check_vhds(run, shown)
    run.t.publish()
    return f"{len(shown.vhds)} VHD(s) meet Marketplace's file rules; SAS: POST {shown.sas_endpoint}"


def _grant(run: CaptureRun, shown: MarketplaceHandoff, gallery_id: str) -> Gen[None]:
    """Compute Gallery Image Reader for each principal (``assign_role``, waiting out PrincipalNotFound)."""
    calls = run.calls(Stage.HANDOFF, patient=True)
    for grant in shown.grants:
        inp = RoleAssignmentInput(
            scope=gallery_id,
            principal_id=grant.principal_id,
            principal_type="ServicePrincipal",
            role_definition_id=grant.role_definition_id,
        )
        result, _ = yield from assign_waiting(calls, run.watch, inp)
        grant.assignment_id = result.assignment_id
        run.t.publish()


def _vhd_inputs(run: CaptureRun) -> list[VhdToCheck]:
    facts = {d.key: d for d in run.vm.disks}
    return [
        VhdToCheck(
            disk_key=d.key,
            disk_name=d.name,
            blob_url=d.blob_url,
            os_disk=d.key == "os",
            os_type=run.vm.os_type,
            size_gb=facts[d.key].size_gb if d.key in facts else d.size_gb,
        )
        for d in run.progress.disks
        if d.blob_url
    ]


def _rule_error(failed: list[VhdCheck]) -> ErrorInfo:
    first = failed[0]
    lines = [f"disk {c.disk_name} ({c.disk_key}): {p}" for c in failed for p in c.problems]
    return ErrorInfo.terminal(
        "handoff",
        "MarketplaceVhdRuleFailed",
        "exported VHD does not meet Marketplace's rules: " + "; ".join(lines),
        resource=first.blob_url,
        advice="Each rule above names its fix. The image version and the VHDs are kept; fix the source "
        "(or the VHD) and capture again. No SAS is issued for a VHD that fails a rule.",
    )


def _check_vhds(run: CaptureRun, shown: MarketplaceHandoff) -> Gen[None]:
    target = run.req.vhd_export
    assert target is not None  # intake: the vhd route requires vhdExport
    calls = run.calls(Stage.HANDOFF)
    checked = yield from calls.run(CHECK_MARKETPLACE_VHDS, VhdRulesInput(vhds=_vhd_inputs(run)))
    shown.vhds = checked.checks
    failed = [c for c in checked.checks if c.problems]
    if failed:
        run.t.publish()
        raise StepFailed(_rule_error(failed))
    spec = run.req.marketplace
    shown.container_url = f"{target.account_url}/{target.container}"
    shown.sas_valid_days = spec.days if spec is not None else None
    shown.sas_endpoint = SAS_ROUTE.format(id=run.inp.capture_id)
