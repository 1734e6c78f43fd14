"""Helpers shared by the activity tests: cache reset, the recording caller, polling with a deadline."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from shared import clients, settings

FAULTS = {
    "rules": [
        # Exports of the capture "cap-stall" never progress: for abort tests.
        {
            "name": "stall",
            "match": {"copy": {"blob": "^cap-stall/"}},
            "effect": {"type": "copy", "outcome": "stall"},
        },
    ]
}
# Small enough that a capture's operations take seconds, large enough to observe pending states.
TIME_SCALE = 0.005
READER_CLIENT_ID = "bf7fb5c3-5737-5943-89d1-a507ba0acb14"  # "reader-only" principal of examples/world.json


def reset_caches() -> None:
    """Settings and clients are cached per process; a different cloud or identity needs fresh ones."""
    settings.get_settings.cache_clear()
    clients.credential.cache_clear()
    clients.compute.cache_clear()
    clients.network.cache_clear()
    clients.verified_blob_service.cache_clear()


@contextmanager
def reader_identity() -> Iterator[None]:
    """Activities inside run as the world's reader-only principal (AZURE_CLIENT_ID selects the identity)."""
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


class Calls:
    """Calls activities the way the worker does (dict in, dict out) and keeps every text they produced."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(
        self, fn: Callable[[dict[str, Any]], dict[str, Any]], payload: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            result = fn(payload)
        except Exception as exc:
            self.texts.append(f"{type(exc).__name__}: {exc}")
            raise
        self.texts.append(json.dumps(result))
        return result


CALLS = Calls()


def poll(
    fn: Callable[[], Any], until: Callable[[Any], bool], *, timeout: float = 60.0, every: float = 0.2
) -> Any:
    """Call ``fn`` until ``until(result)``; fail with the last result after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s; last value: {value}")
        time.sleep(every)
