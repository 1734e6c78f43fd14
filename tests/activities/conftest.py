"""Fixtures for activity tests against the local cloud (azsim + Azurite) with the real SDK clients.

One local cloud per test module (start-up costs a few seconds), so modules never see each other's
leftovers; within a module, tests use different VMs of examples/world.json or build on each other
explicitly (test_capture_activities). Every activity call
goes through ``Calls`` (activity_cloud.py), which records results and error texts for the no-secret check.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from activity_cloud import CALLS, FAULTS, READER_CLIENT_ID, TIME_SCALE, Calls, reset_caches


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from azsim.testing import local_cloud

    workdir = tmp_path_factory.mktemp("azsim-activities")
    faults = Path(workdir) / "faults.json"
    faults.write_text(json.dumps(FAULTS))
    with (
        local_cloud(workdir / "cloud", time_scale=TIME_SCALE, faults=faults) as env,
        env.apply(),
        pytest.MonkeyPatch.context() as mp,
    ):
        # Keep azure-core's retries but make their backoff short so transport-failure tests stay fast.
        mp.setenv("AZURE_ARM_RETRY_BACKOFF_SECONDS", "0.05")
        mp.setenv("AZURE_ARM_RETRY_BACKOFF_MAX_SECONDS", "0.2")
        mp.setenv("AZURE_ARM_RETRY_TOTAL", "2")
        mp.setenv("AZURE_LRO_POLLING_INTERVAL_SECONDS", "0.2")
        mp.delenv("AZURE_CLIENT_ID", raising=False)
        reset_caches()
        try:
            yield env
        finally:
            reset_caches()


@pytest.fixture(scope="session")
def call() -> Calls:
    return CALLS


@pytest.fixture
def as_reader() -> Iterator[None]:
    """Run the activity under the world's reader-only principal (AZURE_CLIENT_ID selects the identity)."""
    before = os.environ.get("AZURE_CLIENT_ID")
    os.environ["AZURE_CLIENT_ID"] = READER_CLIENT_ID
    reset_caches()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("AZURE_CLIENT_ID", None)
        else:
            os.environ["AZURE_CLIENT_ID"] = before
        reset_caches()
