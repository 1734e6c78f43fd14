"""Fixtures of the orchestrator tests: devhost on the fake app with a virtual clock, stopped always."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devhost.testing import running_devhost
from tests.orchestrators.fake_runs import APP, Run


@pytest.fixture
def run_with(tmp_path: Path) -> Iterator[Any]:
    stack: list[Any] = []

    def start(scenario: dict[str, Any]) -> Run:
        run = Run(tmp_path, scenario)
        cm = running_devhost(APP, tmp_path / "devhost", env=run.env, virtual_clock=True)
        dh = cm.__enter__()
        stack.append(cm)
        run.base = dh.base_url
        return run

    try:
        yield start
    finally:
        for cm in stack:
            cm.__exit__(None, None, None)
