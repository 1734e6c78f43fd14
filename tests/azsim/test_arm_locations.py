"""GET /subscriptions/{id}/locations: the world's regions, shaped as ARM's Subscriptions - List Locations.

Sent through a real SDK pipeline (ResourceManagementClient.send_request; the typed SubscriptionClient is
in azure-mgmt-resource-subscriptions, which the project does not install).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.rest import HttpRequest

from azsim.core.rbac import Authorizer
from tests.azsim.arm_fakes import PIPELINE_OID, READER_OID, SUB, SimHandle, running_sim

API = "2022-12-01"


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    with running_sim(tmp_path_factory.mktemp("arm-locations"), time_scale=0) as handle:
        yield handle


def _get(arm: SimHandle, oid: str, sub: str = SUB) -> tuple[int, Any]:
    client = arm.resources(oid)
    resp = client.send_request(
        HttpRequest("GET", f"/subscriptions/{sub}/locations", params={"api-version": API})
    )
    return resp.status_code, resp.json()


def test_lists_the_world_regions_as_arm_does(arm: SimHandle) -> None:
    status, body = _get(arm, PIPELINE_OID)
    assert status == 200, body
    assert [loc["name"] for loc in body["value"]] == list(arm.world.regions)
    assert "nextLink" not in body
    west = next(loc for loc in body["value"] if loc["name"] == "westeurope")
    assert west == {
        "id": f"/subscriptions/{SUB}/locations/westeurope",
        "name": "westeurope",
        "type": "Region",
        "displayName": "West Europe",
        "regionalDisplayName": "(Europe) West Europe",
        "metadata": {
            "regionType": "Physical",
            "regionCategory": "Recommended",
            "geography": "Europe",
            "geographyGroup": "Europe",
            "physicalLocation": "Netherlands",
            "pairedRegion": [{"name": "northeurope", "id": f"/subscriptions/{SUB}/locations/northeurope"}],
        },
    }
    uk = next(loc for loc in body["value"] if loc["name"] == "uksouth")
    assert (uk["displayName"], uk["regionalDisplayName"]) == ("UK South", "(UK) UK South")


def test_reader_may_list_and_a_principal_without_any_role_may_not(arm: SimHandle) -> None:
    assert _get(arm, READER_OID)[0] == 200
    stranger = str(uuid.uuid4())
    status, body = _get(arm, stranger)
    assert status == 403
    assert body["error"]["code"] == "AuthorizationFailed"
    assert "Microsoft.Resources/subscriptions/locations/read" in body["error"]["message"]
    assert f"'/subscriptions/{SUB}'" in body["error"]["message"]


def test_unknown_subscription_is_404(arm: SimHandle) -> None:
    other = str(uuid.uuid4())
    status, body = _get(arm, PIPELINE_OID, other)
    assert status == 404
    assert body["error"]["code"] == "SubscriptionNotFound"


def test_member_rule_covers_only_locations_read_at_subscription_scope(arm: SimHandle) -> None:
    # The pipeline identity has roles only on resource groups: it may list locations, nothing more.
    auth = Authorizer(arm.world)
    sub = f"/subscriptions/{SUB}"
    assert auth.is_allowed(PIPELINE_OID, "Microsoft.Resources/subscriptions/locations/read", sub)
    assert not auth.is_allowed(PIPELINE_OID, "Microsoft.Resources/subscriptions/resourceGroups/read", sub)
    assert not auth.is_allowed(PIPELINE_OID, "Microsoft.Compute/virtualMachines/read", sub)
    assert not auth.is_allowed(str(uuid.uuid4()), "Microsoft.Resources/subscriptions/locations/read", sub)
