"""Fixtures of the issue-5 trigger tests: one local cloud + devhost per module, torn down always."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stack import Stack, running_trigger_stack

# Copies of vm-cancel's disks never finish (progress freezes halfway), so a cancel always finds them running.
CANCEL_FAULTS = {
    "rules": [
        {
            "name": "vm-cancel-copies-stall",
            "match": {"copy": {"account": "^stexports$", "blob": "capture-vm-cancel-"}},
            "effect": {"type": "copy", "outcome": "stall"},
        }
    ]
}


@pytest.fixture(scope="module")
def tstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_trigger_stack(tmp_path_factory.mktemp("issue5")) as s:
        yield s
        # Nothing secret in devhost's store or logs, in any status or queue message the tests read.
        s.assert_no_secrets()


@pytest.fixture(scope="module")
def cstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose export copies of vm-cancel stall (for cancel-during-copy)."""
    with running_trigger_stack(tmp_path_factory.mktemp("issue5-cancel"), faults=CANCEL_FAULTS) as s:
        yield s
        s.assert_no_secrets()
