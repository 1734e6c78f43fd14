"""The HTTP bodies of ``POST /api/captures/{id}/marketplace-sas`` and its OpenAPI operation.

``triggers.http_marketplace_sas`` reads ``MarketplaceSasRequest`` and answers ``MarketplaceSas`` (200),
``MarketplaceSasConflict`` (409) or an ``ErrorBody`` (502); ``shared.openapi`` documents them from here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from shared.api_bodies import ErrorDetail
from shared.marketplace_spec import SAS_MAX_DAYS
from shared.model_base import WireModel
from shared.request_rules import IntakeInt


class MarketplaceSasRequest(WireModel):
    """The optional body: how many days the SAS is valid (default: the capture's ``sasValidDays``, else 7)."""

    days: IntakeInt = Field(
        default=SAS_MAX_DAYS,
        ge=1,
        le=SAS_MAX_DAYS,
        description=f"1-{SAS_MAX_DAYS}: Azure ends a user-delegation SAS at most {SAS_MAX_DAYS} days after issue. "
        "Omitted: the capture's marketplace.sasValidDays, else 7.",
    )


class SasVhd(WireModel):
    disk: str = Field(description="The disk's name.")
    sas_uri: str = Field(description="The container SAS with the VHD's blob path: what Partner Center takes.")


class MarketplaceSas(WireModel):
    """200: a container-level Read + List user-delegation SAS. Never stored by the app: keep it safe."""

    container_sas_uri: str
    vhds: list[SasVhd]
    kind: Literal["userDelegation"]
    permissions: Literal["rl"]
    starts_on: str
    expires_on: str
    note: str


class MarketplaceSasConflict(WireModel):
    """409: no SAS for this capture (code MarketplaceVhdRouteNotRequested or CaptureNotHandedOff)."""

    error: ErrorDetail
    id: str


MODELS: tuple[type[WireModel], ...] = (MarketplaceSasRequest, MarketplaceSas, MarketplaceSasConflict)


def marketplace_sas_operation(
    capture_id: dict[str, Any],
    unauthorized: dict[str, Any],
    not_found: dict[str, Any],
    too_large: dict[str, Any],
) -> dict[str, Any]:
    """The OpenAPI operation (the shared parameter and answers passed in by ``shared.openapi``)."""

    def answer(description: str, model: str) -> dict[str, Any]:
        schema = {"$ref": f"#/components/schemas/{model}"}
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    return {
        "operationId": "issueMarketplaceSas",
        "summary": "A Read+List SAS on a vhd-route capture's export container, for Partner Center (never stored)",
        "parameters": [capture_id],
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/MarketplaceSasRequest"}}
            },
        },
        "responses": {
            "200": answer("The SAS URIs (Cache-Control: no-store).", "MarketplaceSas"),
            "400": answer("The body is not JSON or days is not 1-7.", "FieldErrors"),
            "401": unauthorized,
            "404": not_found,
            "409": answer("The capture has no VHDs to hand over (yet).", "MarketplaceSasConflict"),
            "413": too_large,
            "502": answer("The Blob service refused the user delegation key (its code).", "ErrorBody"),
        },
    }
