"""VHD export activities: start a server-side copy of a snapshot into a storage account, poll it, abort it.

``start_export`` is the only place a SAS exists: it grants read access on the snapshot, hands the
SAS to the Blob service as the copy source and forgets it. What it returns (blob URL without
query, copy id) and what it raises (redacted ``CaptureError``) is safe to store in durable history.
Access is revoked by ``revoke_snapshot_access`` (activities.snapshots), which the orchestrator
always calls afterwards.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute import models as cm
from azure.storage.blob import BlobClient, BlobProperties

from activities._common import activity, as_dict, azure_call, azure_code, get_or_none, parse_id
from shared import clients
from shared.activity_types import ABORT_COPY, GET_COPY_STATUS, START_EXPORT
from shared.contracts import BlobRef, CopyStatus, ExportStartInput
from shared.errors import AzureOperationError
from shared.ids import export_blob_name
from shared.redaction import redact, strip_query

# Metadata written with the copy so a re-executed start_export recognises its own copy
# (names must be C# identifiers; values are plain ASCII).
META_CAPTURE = "imagepipeline_capture"
META_SNAPSHOT = "imagepipeline_snapshot"
_STATES = {"pending", "success", "failed", "aborted"}


def _blob(blob_url: str) -> BlobClient:
    """The blob client for a blob URL (virtual-host or path-style/local account URLs), with the app's identity."""
    url = strip_query(blob_url)
    parsed = BlobClient.from_blob_url(url)  # no credential: used for parsing only
    container = parsed.container_name
    head = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
    account_url = url[: url.index(f"/{container}/", len(head))]
    return clients.blob_service(account_url).get_blob_client(container, parsed.blob_name)


def _progress(raw: str | None) -> tuple[int, int]:
    try:
        done, total = (raw or "").split("/")
        return int(done), int(total)
    except ValueError:
        return 0, 0


def _status(blob: BlobClient, props: BlobProperties) -> CopyStatus:
    copy = props.copy
    state = str(copy.status or "").lower()
    done, total = _progress(copy.progress)
    if state not in _STATES:
        # Copy headers vanish once the destination is modified after the copy; our marker says it was ours.
        ours = (props.metadata or {}).get(META_SNAPSHOT)
        state = "success" if ours else "failed"
        done = total = int(props.size or 0)
    description = redact(str(copy.status_description)) if copy.status_description else None
    return CopyStatus(
        blob_url=strip_query(blob.url),
        copy_id=copy.id,
        status=state,  # type: ignore[arg-type]
        bytes_copied=done,
        bytes_total=total,
        description=description,
    )


@activity(START_EXPORT)
def start_export(inp: ExportStartInput) -> CopyStatus:
    """Grant read access on the snapshot and start an async copy of it into the export container.

    Idempotent: a copy of this snapshot already pending or done at the destination is reused
    (recognised by the metadata written with it), without granting access again. A copy of ours
    that ended failed or aborted is never reused: a NEW copy is started over it, with a new grant
    for ``sas_duration_seconds``. That is how the orchestrator restarts a copy whose SAS expired
    (after revoking the old access); re-executing that restart finds the new copy pending and
    reuses it.
    """
    snap = parse_id(inp.snapshot_id, field="snapshotId", step="start_export")
    name = export_blob_name(inp.run_id, inp.disk_name)
    blob = clients.blob_service(inp.account_url).get_blob_client(inp.container, name)
    where = strip_query(blob.url)
    existing = get_or_none(blob.get_blob_properties, step="read the export blob", resource=where)
    if existing is not None and (existing.metadata or {}).get(META_SNAPSHOT) == inp.snapshot_id:
        current = _status(blob, existing)
        if current.status in ("pending", "success"):
            return current
        # Ours, but failed or aborted (its SAS expired, or it was aborted): a new copy replaces it below.
    if existing is not None and str(existing.copy.status or "").lower() == "pending":
        raise AzureOperationError(
            f"the export blob {where} already has a copy in progress that this capture did not start: "
            "abort it or choose another container",
            step="start_export",
            resource=where,
            code="PendingCopyOperation",
        )
    with azure_call("grant read access to the snapshot", inp.snapshot_id):
        access = clients.compute(snap.subscription_id).snapshots.begin_grant_access(
            snap.resource_group,
            snap.name,
            cm.GrantAccessData(
                {"access": "Read", "durationInSeconds": inp.sas_duration_seconds, "fileFormat": "VHD"}
            ),
        )
        sas = _access_sas(as_dict(access.result()))
    if not sas:
        raise AzureOperationError(
            f"Azure granted access to {inp.snapshot_id} but returned no access URL",
            step="grant read access to the snapshot",
            resource=inp.snapshot_id,
            code="NoAccessUrl",
        )
    metadata = {META_CAPTURE: inp.run_id, META_SNAPSHOT: inp.snapshot_id}
    with azure_call("start the VHD copy", where):
        blob.start_copy_from_url(sas, metadata=metadata)
    del sas
    with azure_call("read the export blob", where):
        return _status(blob, blob.get_blob_properties())


def _access_sas(body: dict[str, Any]) -> str | None:
    value = body.get("accessSAS") or body.get("accessSas")
    return str(value) if value else None


@activity(GET_COPY_STATUS)
def get_copy_status(inp: BlobRef) -> CopyStatus:
    """Copy state and bytes copied of an export blob (one HEAD request)."""
    blob = _blob(inp.blob_url)
    with azure_call("read the export blob", strip_query(inp.blob_url)):
        return _status(blob, blob.get_blob_properties())


@activity(ABORT_COPY)
def abort_copy(inp: BlobRef) -> CopyStatus:
    """Abort the copy if it is still pending (fine if it already finished); return the final state."""
    blob = _blob(inp.blob_url)
    where = strip_query(inp.blob_url)
    with azure_call("read the export blob", where):
        try:
            props = blob.get_blob_properties()
        except ResourceNotFoundError:
            return CopyStatus(
                blob_url=where, copy_id=inp.copy_id, status="aborted", description="blob not found"
            )
    if str(props.copy.status or "").lower() == "pending" and props.copy.id:
        with azure_call("abort the VHD copy", where):
            try:
                blob.abort_copy(props.copy.id)
            except HttpResponseError as exc:
                # The copy ended between our read and the abort: nothing left to abort.
                if azure_code(exc) != "NoPendingCopyOperation":
                    raise
        with azure_call("read the export blob", where):
            props = blob.get_blob_properties()
    return _status(blob, props)
