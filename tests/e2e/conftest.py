"""Fixtures of the capture's end-to-end tests: one fresh local cloud + devhost per test, torn down always."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.stack import Stack, running_stack


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Start a stack with options (faults, time_scale, env); after the test, check it leaked no secret."""
    stacks: list[Stack] = []
    with contextlib.ExitStack() as exits:

        def start(**options: Any) -> Stack:
            s = exits.enter_context(running_stack(tmp_path / f"stack{len(stacks)}", **options))
            stacks.append(s)
            return s

        yield start
        # After every e2e test: nothing secret in devhost's history store, logs, or statuses.
        for s in stacks:
            s.assert_no_secrets()


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack()
