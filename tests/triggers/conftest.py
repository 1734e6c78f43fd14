"""Fixtures of the issue-5 trigger tests: one local cloud + devhost per module, torn down always."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from trigger_stack import TriggerStack, running_trigger_stack


@pytest.fixture(scope="module")
def tstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TriggerStack]:
    with running_trigger_stack(tmp_path_factory.mktemp("issue5")) as s:
        yield s
        # Nothing secret in devhost's store or logs, in any status or queue message the tests read.
        s.assert_no_secrets()
