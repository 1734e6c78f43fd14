"""``POST /api/captures/{id}/marketplace-sas``: the SAS URIs Partner Center's VHD route needs, issued here only.

The capture (``marketplace.route: "vhd"``) exported its disks and checked them against Marketplace's VHD
rules; its status names the export container and blobs (never a SAS). This endpoint, on each call:

1. reads the capture's status and input (the container and blobs; no secret there);
2. asks the Blob service, with the app's identity, for a user delegation key (Get User Delegation Key;
   the identity needs ``generateUserDelegationKey`` on the account and ``blobs/read`` on the container);
3. signs a **container-level, Read + List** user-delegation SAS (``sr=c``, ``sp=rl``, https only),
   starting one day back (Partner Center's advice against clock drift) and valid ``days`` from now;
4. answers it in this response only, with ``Cache-Control: no-store``. Nothing is stored: not in the
   capture's history, status, notices or logs (the log line names the capture and the expiry only).

Azure limits a user delegation key, and with it the SAS, to seven days from the request, so ``days`` is
1-7 (body ``{"days": n}``; default the request's ``marketplace.sasValidDays``, else 7). Partner Center's
legacy SAS page asks for three weeks: call the endpoint again for a fresh SAS (docs/azure-facts.md).
The export account URL is checked again as every credential-bearing call is (``shared.endpoints``).

Answers: **200** the SAS URIs; **400** a bad body; **404** ``CaptureNotFound``; **409**
``MarketplaceVhdRouteNotRequested`` (the capture has no ``marketplace.route: "vhd"``) or
``CaptureNotHandedOff`` (not finished, failed, or its VHDs failed a rule); **502** the Blob service
refused (its code, e.g. ``AuthorizationPermissionMismatch``, and advice). Function-key protected; see the
README for restricting it further.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from azure.storage.blob import ContainerSasPermissions, generate_container_sas
from pydantic import ValidationError

from shared import clients
from shared.api_bodies import ErrorDetail
from shared.bounded_json import decode_json
from shared.errors import CaptureError
from shared.field_errors import pydantic_errors
from shared.ids import is_capture_id
from shared.marketplace_api import MarketplaceSas, MarketplaceSasConflict, MarketplaceSasRequest, SasVhd
from shared.marketplace_spec import SAS_MAX_DAYS, MarketplaceHandoff
from shared.redaction import strip_query
from shared.request_rules import INTAKE
from shared.requests import CaptureRequest
from shared.status_view import capture_progress
from triggers.http_helpers import body_refused, error_body, field_errors, json_response, not_found
from triggers.status_reader import read_instance

log = logging.getLogger(__name__)
marketplace_sas_bp = df.Blueprint()

# A key asked for exactly 7 days ahead can be refused for clock skew between client and service.
_SKEW = timedelta(minutes=5)
_BACKDATE = timedelta(days=1)
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass(frozen=True)
class _Target:
    account_url: str
    container: str
    blobs: list[tuple[str, str]]  # (disk name, blob URL without query)
    days: int


def _days(req: func.HttpRequest, default: int) -> tuple[int | None, func.HttpResponse | None]:
    """The days asked for (``default`` when the body or its ``days`` is absent), or the 400/413 answer."""
    raw = req.get_body() or b""
    if not raw.strip():
        return default, None
    body, problem = decode_json(raw)
    if problem is not None:
        return None, body_refused(problem.message, problem.status)
    try:
        asked = MarketplaceSasRequest.model_validate(body, context=INTAKE)
    except ValidationError as exc:
        return None, field_errors(pydantic_errors(exc))
    return (asked.days if "days" in body else default), None


def _conflict(code: str, message: str, instance_id: str) -> func.HttpResponse:
    body = MarketplaceSasConflict(error=ErrorDetail(code=code, message=message), id=instance_id)
    return json_response(body.to_wire(), 409)


def _target(instance_id: str, raw_input: Any, custom: Any, runtime: str) -> _Target | func.HttpResponse:
    """What to sign for, from the capture's input and status; or the 409 saying why there is nothing."""
    try:
        request = CaptureRequest.from_wire(raw_input)
    except Exception:
        request = None
    spec = request.marketplace if request is not None else None
    if request is None or spec is None or spec.route != "vhd" or request.vhd_export is None:
        return _conflict(
            "MarketplaceVhdRouteNotRequested",
            f'Capture {instance_id} did not ask for the Marketplace VHD route (marketplace.route "vhd" with '
            "vhdExport): it has no VHDs to hand over. Start a capture with it.",
            instance_id,
        )
    progress = capture_progress(custom)
    shown: MarketplaceHandoff | None = progress.marketplace if progress is not None else None
    if runtime != "Completed" or progress is None or shown is None or not shown.sas_endpoint:
        return _conflict(
            "CaptureNotHandedOff",
            f"Capture {instance_id} has not handed off its VHDs ({runtime}): a SAS is issued only once the "
            "export finished and every VHD met Marketplace's rules. See the capture's status.",
            instance_id,
        )
    blobs = [(v.disk_name, v.blob_url) for v in shown.vhds]
    account, container = request.vhd_export.account_url, request.vhd_export.container
    return _Target(account_url=account, container=container, blobs=blobs, days=spec.days)


def _sign(target: _Target, days: int) -> dict[str, Any]:
    """Get a user delegation key and sign the container SAS (blocking SDK calls: run in a thread)."""
    service = clients.blob_service(target.account_url)  # checks the endpoint before any token is sent
    now = datetime.now(UTC).replace(microsecond=0)
    start, expiry = now - _BACKDATE, now + timedelta(days=days) - _SKEW
    key = service.get_user_delegation_key(key_start_time=start, key_expiry_time=expiry)
    sas = generate_container_sas(
        service.account_name or "",
        target.container,
        user_delegation_key=key,
        permission=ContainerSasPermissions(read=True, list=True),
        start=start,
        expiry=expiry,
        protocol="https",
    )
    container_url = f"{strip_query(target.account_url).rstrip('/')}/{target.container}"
    return MarketplaceSas(
        container_sas_uri=f"{container_url}?{sas}",
        vhds=[
            SasVhd(disk=disk, sas_uri=f"{url}?{sas}")
            for disk, url in target.blobs
            if url.startswith(container_url + "/")
        ],
        kind="userDelegation",
        permissions="rl",
        starts_on=start.isoformat().replace("+00:00", "Z"),
        expires_on=expiry.isoformat().replace("+00:00", "Z"),
        note="Read + List on the export container, for Partner Center's VHD (SAS URI) route. Azure ends a "
        f"user-delegation SAS at most {SAS_MAX_DAYS} days after issue; ask this endpoint again for a fresh "
        "one. Revoke every SAS of the account early with Revoke User Delegation Keys.",
    ).to_wire()


@marketplace_sas_bp.route(route="captures/{id}/marketplace-sas", methods=["POST"])
@marketplace_sas_bp.durable_client_input(client_name="client")
async def marketplace_sas(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = req.route_params.get("id", "")
    if not is_capture_id(instance_id):
        return not_found(instance_id)
    status = await read_instance(client, instance_id, with_input=True)
    if status is None:
        return not_found(instance_id)
    target = _target(instance_id, status.request, status.custom_status, status.runtime_status)
    if isinstance(target, func.HttpResponse):
        return target
    days, refused = _days(req, target.days)
    if refused is not None or days is None:
        return refused or body_refused("invalid body", 400)
    try:
        answer = await asyncio.to_thread(_sign, target, days)
    except Exception as exc:
        info = exc.info if isinstance(exc, CaptureError) else None
        code = (
            (info.azure_code or info.code) if info else getattr(exc, "error_code", None) or "BlobServiceError"
        )
        log.warning("marketplace SAS for capture %s refused by the Blob service: %s", instance_id, code)
        return json_response(
            error_body(
                str(code),
                "The Blob service refused the user delegation key. The app's identity needs "
                "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action on the export "
                "account and Storage Blob Data Reader (blobs/read) on the container (shared/app-actions.json, "
                'feature "marketplace").',
            ),
            502,
            headers=_NO_STORE,
        )
    log.info("marketplace SAS issued for capture %s, expires %s", instance_id, answer["expiresOn"])
    return json_response(answer, 200, headers=_NO_STORE)
