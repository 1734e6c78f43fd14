"""Retention's read: every version of an image definition with what decides whether it may go.

The list of a definition's versions carries no replication status, so each version is read again with
``$expand=ReplicationStatus``. Deleting uses the gallery's ``delete_image_version``; which versions go is
decided in the orchestrator by ``shared.retention_rules`` (pure).
"""

from __future__ import annotations

from typing import Any

from activities._common import activity, as_dict, azure_call, get_or_none, norm_region, props
from shared import clients
from shared.activity_types import LIST_DEFINITION_VERSIONS
from shared.release_spec import DefinitionVersions, DefinitionVersionsInput, VersionFacts

# More versions than any definition should hold; beyond it the list is cut (the oldest then stay).
MAX_VERSIONS = 500


def facts(version: dict[str, Any]) -> VersionFacts:
    p = props(version)
    publishing = p.get("publishingProfile") or {}
    safety = p.get("safetyProfile") or {}
    summary = (p.get("replicationStatus") or {}).get("summary") or []
    regions = {norm_region(str(s.get("region") or "")): str(s.get("state") or "Unknown") for s in summary}
    if not regions:  # no status read: every target region counts as unknown (not deletable)
        regions = {
            norm_region(str(t.get("name") or "")): "Unknown" for t in publishing.get("targetRegions") or []
        }
    return VersionFacts(
        version_id=str(version.get("id") or ""),
        name=str(version.get("name") or ""),
        published_date=publishing.get("publishedDate"),
        provisioning_state=p.get("provisioningState"),
        region_states=regions,
        end_of_life_date=publishing.get("endOfLifeDate"),
        allow_deletion_of_replicated_locations=safety.get("allowDeletionOfReplicatedLocations"),
        block_deletion_before_end_of_life=safety.get("blockDeletionBeforeEndOfLife"),
    )


@activity(LIST_DEFINITION_VERSIONS)
def list_definition_versions(inp: DefinitionVersionsInput) -> DefinitionVersions:
    """Every version of the definition, each with its replication status."""
    versions = clients.compute(inp.subscription_id).gallery_image_versions
    rg, gallery, definition = inp.resource_group, inp.gallery, inp.definition
    did = (
        f"/subscriptions/{inp.subscription_id}/resourceGroups/{rg}/providers/Microsoft.Compute/galleries/"
        f"{gallery}/images/{definition}"
    )
    with azure_call("list the image versions", did):
        listed = [as_dict(v) for v in versions.list_by_gallery_image(rg, gallery, definition)][:MAX_VERSIONS]
    out = []
    for v in listed:
        name = str(v.get("name") or "")

        def read(name: str = name) -> dict[str, Any]:
            return as_dict(versions.get(rg, gallery, definition, name, expand="ReplicationStatus"))

        full = get_or_none(read, step="read the image version", resource=f"{did}/versions/{name}")
        if full is not None:  # gone between the list and the read: nothing to judge
            out.append(facts(full))
    return DefinitionVersions(versions=out)
