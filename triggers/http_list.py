"""``GET /api/captures``: the captures this app knows, newest first (read-only).

A caller with the function key can list captures without the Durable management API (whose system key
opens every instance's input and history). Each entry carries only what the status view shows at its
top: id, run id, runtime status, source VM, stage, times and the app's own status URL. Sub-orchestrations
(``<run-id>:version``, ``<run-id>:export:<disk>``) are not captures and are left out.

Query: ``runtimeStatus`` (comma-separated: ``Running,Failed``… as Durable names them, plus ``Canceled``),
``top`` (1..``MAX_TOP``, default ``DEFAULT_TOP``). Other parameters are ignored.
"""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from shared.api_bodies import CaptureList, CaptureListEntry
from shared.ids import is_capture_id
from shared.instances import InstanceSnapshot, snapshot_of
from shared.status_view import capture_progress, shown_runtime_status
from triggers.http_helpers import capture_url, json_response

list_bp = df.Blueprint()

DEFAULT_TOP = 50
MAX_TOP = 500


def _top(raw: str | None) -> int:
    if raw and raw.isdigit() and int(raw) > 0:
        return min(int(raw), MAX_TOP)
    return DEFAULT_TOP


def _wanted(raw: str | None) -> set[str] | None:
    names = {s.strip().lower() for s in (raw or "").split(",") if s.strip()}
    return names or None


def capture_entry(req: func.HttpRequest, snap: InstanceSnapshot) -> CaptureListEntry:
    progress = capture_progress(snap.custom_status)
    return CaptureListEntry(
        id=snap.instance_id,
        run_id=(progress.run_id or progress.capture_id) if progress is not None else None,
        runtime_status=str(shown_runtime_status(snap.runtime_status, progress)),
        source_vm_id=progress.source_vm_id if progress is not None else None,
        source_kind=progress.source_kind if progress is not None else None,
        source_id=progress.source_id if progress is not None else None,
        stage=str(progress.stage) if progress is not None and progress.stage is not None else None,
        created_time=snap.created_time,
        last_updated_time=snap.last_updated_time,
        capture_status_uri=capture_url(req, snap.instance_id),
    )


@list_bp.route(route="captures", methods=["GET"])
@list_bp.durable_client_input(client_name="client")
async def list_captures(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    wanted = _wanted(req.params.get("runtimeStatus"))
    entries = []
    for status in await client.get_status_by(instance_id_prefix="capture-"):
        snap = snapshot_of(status)
        if snap is None or not is_capture_id(snap.instance_id):
            continue
        entry = capture_entry(req, snap)
        if wanted is None or entry.runtime_status.lower() in wanted:
            entries.append(entry)
    entries.sort(key=lambda e: e.created_time or "", reverse=True)
    return json_response(CaptureList(captures=entries[: _top(req.params.get("top"))]).to_wire(), 200)
