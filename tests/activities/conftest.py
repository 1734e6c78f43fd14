"""Fixtures for activity tests against the local cloud (azsim + Azurite) with the real SDK clients.

One local cloud per test module (start-up costs a few seconds), so modules never see each other's
leftovers; within a module, every test stands alone: tests use different VMs of examples/world.json, or
module fixtures that build shared state once (test_capture_activities). Every activity call goes through
``Calls`` (activity_cloud.py), which records results and error texts; after every test, the autouse
fixture ``activity_logs`` checks that nothing an activity returned, raised or logged during it holds a secret.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.redaction import contains_secret
from tests.activities.activity_cloud import CALLS, FAULTS, TIME_SCALE, Calls, reader_identity, reset_caches


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
    with reader_identity():
        yield


class _Keep(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _leaks(text: str) -> bool:
    return contains_secret(text) or "sig=" in text.lower()


@pytest.fixture(autouse=True)
def activity_logs(call: Calls) -> Iterator[list[logging.LogRecord]]:
    """What the activities log during one test; afterwards, assert no text of the test holds a secret."""
    records: list[logging.LogRecord] = []
    handler = _Keep(records)
    logger = logging.getLogger("activities")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    start = len(call.texts)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    leaked = [t for t in call.texts[start:] if _leaks(t)] + [
        r.getMessage() for r in records if _leaks(r.getMessage())
    ]
    assert leaked == [], f"an activity's result, error or log carried a secret: {leaked}"
