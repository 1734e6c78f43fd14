"""The image version as the gallery activities read and write it: the parts of its id, the PUT body,
the status read back from a GET, and version names (``Major.Minor.Patch``). The activities are in
``activities.gallery``.
"""

from __future__ import annotations

from typing import Any

from activities import lro
from activities._common import azure_call, norm_region, props
from shared.contracts import OperationOutcome, RegionReplication, VersionInput, VersionStatus
from shared.errors import AzureOperationError
from shared.ids import ownership_tags
from shared.redaction import redact


def version_parts(version_id: str, step: str) -> tuple[str, str, str, str, str]:
    """(subscription, resource group, gallery, definition, version) of an image version id."""
    parts = version_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    shape = (
        "subscriptions",
        None,
        "resourcegroups",
        None,
        "providers",
        "microsoft.compute",
        "galleries",
        None,
        "images",
        None,
        "versions",
        None,
    )
    if len(parts) != len(shape) or any(
        want and got != want for got, want in zip(lowered, shape, strict=True)
    ):
        raise AzureOperationError(
            f"{version_id!r} is not an image version id (…/galleries/<g>/images/<d>/versions/<v>)",
            step=step,
            code="InvalidActivityInput",
        )
    return parts[1], parts[3], parts[7], parts[9], parts[11]


def version_status(version: dict[str, Any], version_id: str, operation_url: str | None) -> VersionStatus:
    p = props(version)
    provisioning = p.get("provisioningState")
    replication = p.get("replicationStatus") or {}
    regions: list[RegionReplication] = []
    for entry in replication.get("summary") or []:
        regions.append(
            RegionReplication(
                region=norm_region(str(entry.get("region") or "")),
                state=str(entry.get("state") or "Unknown"),
                progress=int(entry.get("progress") or 0),
                details=redact(str(entry["details"])) if entry.get("details") else None,
            )
        )
    if not regions:
        for target in (p.get("publishingProfile") or {}).get("targetRegions") or []:
            regions.append(
                RegionReplication(region=norm_region(str(target.get("name") or "")), state="Unknown")
            )
    error = None
    failure: OperationOutcome | None = None
    if str(provisioning).lower() == "failed":
        sub = version_id.strip("/").split("/")[1]
        with azure_call("read the image version's create operation", version_id):
            outcome = lro.read_operation(sub, operation_url)
        if outcome is not None and lro.failed(outcome):
            failure = outcome
            error = f"{outcome.code}: {outcome.message}"
        failed = [f"{r.region}: {r.details or r.state}" for r in regions if r.state.lower() == "failed"]
        if not error and failed:
            error = "replication failed in " + "; ".join(failed)
        error = error or "Azure reports provisioningState Failed without details"
    return VersionStatus(
        version_id=str(version.get("id") or version_id),
        exists=True,
        provisioning_state=str(provisioning) if provisioning else None,
        aggregated_state=replication.get("aggregatedState"),
        regions=regions,
        error=redact(error) if error else None,
        operation_url=operation_url,
        failure=failure,
    )


def target_regions(inp: VersionInput) -> list[dict[str, Any]]:
    regions = list(inp.target_regions)
    out: list[dict[str, Any]] = []
    for r in regions:
        entry: dict[str, Any] = {"name": r.name, "regionalReplicaCount": r.replica_count}
        if r.storage_account_type:
            entry["storageAccountType"] = r.storage_account_type
        out.append(entry)
    # Azure requires the version's own location among its target regions.
    if norm_region(inp.location) not in {norm_region(r.name) for r in regions}:
        out.insert(0, {"name": norm_region(inp.location), "regionalReplicaCount": 1})
    return out


def version_body(inp: VersionInput) -> dict[str, Any]:
    publishing: dict[str, Any] = {
        "targetRegions": target_regions(inp),
        "excludeFromLatest": inp.exclude_from_latest,
    }
    if inp.end_of_life_date:
        eol = inp.end_of_life_date
        publishing["endOfLifeDate"] = eol if "T" in eol else f"{eol}T00:00:00Z"
    return {
        "location": inp.location,
        "tags": ownership_tags(inp.run_id, inp.tags),
        "properties": {"publishingProfile": publishing, "storageProfile": storage_profile(inp)},
    }


def storage_profile(inp: VersionInput) -> dict[str, Any]:
    """The version's source: this run's snapshots, a managed image, or VHD blobs with their account."""
    source = inp.source
    if source is not None and source.managed_image_id:
        # The managed image as the version's source (Azure's examples: storageProfile.source.id).
        return {"source": {"id": source.managed_image_id}}
    if source is not None and source.vhds:
        # VHD blobs: storageAccountId beside each uri (api >= 2022-03-03; source.id is refused for blobs).
        def blob(uri: str) -> dict[str, Any]:
            return {"source": {"storageAccountId": source.storage_account_id, "uri": uri}}

        os_blob = next(d for d in source.vhds if d.lun is None)
        data = sorted((d for d in source.vhds if d.lun is not None), key=lambda d: d.lun or 0)
        profile: dict[str, Any] = {"osDiskImage": blob(os_blob.id)}
        if data:
            profile["dataDiskImages"] = [{"lun": d.lun, **blob(d.id)} for d in data]
        return profile
    storage: dict[str, Any] = {"osDiskImage": {"source": {"id": inp.os_snapshot_id}}}
    if inp.data_snapshots:
        storage["dataDiskImages"] = [
            {"lun": d.lun, "source": {"id": d.snapshot_id}}
            for d in sorted(inp.data_snapshots, key=lambda d: d.lun)
        ]
    return storage


def next_free(versions: list[dict[str, Any]], floor: str) -> str:
    """The next patch after the highest version of the definition, and not below ``floor``."""
    keys = [k for k in (version_key(str(v.get("name"))) for v in versions) if k is not None]
    low = version_key(floor)
    if low is not None:
        keys.append((low[0], low[1], low[2] - 1))
    if not keys:
        return "1.0.0"
    top = max(keys)
    return f"{top[0]}.{top[1]}.{top[2] + 1}"


def version_key(name: str) -> tuple[int, int, int] | None:
    parts = name.split(".")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])
