"""Fixtures of the capture's end-to-end tests: one fresh local cloud + devhost per test, torn down always."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_harness import Stack, running_stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path) as s:
        yield s
        # After every e2e test: nothing secret in devhost's history store, logs, or statuses.
        s.assert_no_secrets()
