"""list_regions against the local cloud: the subscription's regions, normalised, for the region preflight."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from activities import ACTIVITIES, preflight
from azsim.testing import DEFAULT_WORLD
from shared.contracts import RegionsResult
from shared.errors import CaptureError
from shared.requests import TargetRegion
from tests.activities.activity_cloud import Calls

WORLD_REGIONS = json.loads(DEFAULT_WORLD.read_text())["regions"]


def test_lists_the_subscriptions_regions_normalised(cloud: Any, call: Calls) -> None:
    result = RegionsResult.from_wire(call(preflight.list_regions, {"subscriptionId": cloud.subscription_id}))
    assert result.regions == sorted(WORLD_REGIONS)
    # Same normalisation as a request's target regions, so "West Europe" matches.
    assert TargetRegion(name="West Europe").name in result.regions


def test_the_reader_may_list_regions_too(cloud: Any, call: Calls, as_reader: None) -> None:
    result = RegionsResult.from_wire(call(preflight.list_regions, {"subscriptionId": cloud.subscription_id}))
    assert result.regions == sorted(WORLD_REGIONS)


def test_unknown_subscription_is_a_clear_error(cloud: Any, call: Calls) -> None:
    other = str(uuid.uuid4())
    with pytest.raises(CaptureError) as exc:
        call(preflight.list_regions, {"subscriptionId": other})
    assert exc.value.info.code == "SubscriptionNotFound"
    assert other in str(exc.value)
    assert "list the subscription's regions" in str(exc.value)


def test_bad_input_names_the_field(call: Calls) -> None:
    with pytest.raises(CaptureError, match=r"invalid RegionsInput: subscriptionId: Field required"):
        call(preflight.list_regions, {})


def test_registered_on_the_blueprint() -> None:
    assert ACTIVITIES["list_regions"] is preflight.list_regions
