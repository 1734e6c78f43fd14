"""The pipeline's orchestration version: one value in code and in every host.json that runs the orchestrators,
and the refusal of a history from another version (pure: a stand-in context, no host)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrators.versioning import PIPELINE_VERSION, refuse_unreplayable
from shared.errors import CaptureError, parse_failure

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("host", ["host.json", "tests/orchestrators/fakeapp/host.json"])
def test_host_json_stamps_the_version_the_code_replays(host: str) -> None:
    # A defaultVersion other than PIPELINE_VERSION would make every new capture refuse itself.
    durable = json.loads((ROOT / host).read_text())["extensions"]["durableTask"]
    assert durable["defaultVersion"] == PIPELINE_VERSION


class _Context:
    def __init__(self, version: Any) -> None:
        self.version = version
        self.instance_id = "capture-vm-web-0123456789"


def test_the_current_version_replays() -> None:
    refuse_unreplayable(_Context(PIPELINE_VERSION))


@pytest.mark.parametrize(
    ("version", "shown"),
    [(None, "before orchestration versioning"), ("", "before"), ("1", "version 1"), ("3", "version 3")],
)
def test_another_version_is_refused_with_advice(version: Any, shown: str) -> None:
    with pytest.raises(CaptureError) as caught:
        refuse_unreplayable(_Context(version))
    info = parse_failure(str(caught.value))
    assert info is not None and info.kind == "terminal" and info.code == "UnreplayableHistory"
    assert info.resource == "capture-vm-web-0123456789" and shown in info.message
    assert f"this code (version {PIPELINE_VERSION})" in info.message
    assert info.advice is not None
    for hint in ("Drain running captures", "Start the capture again", "janitor (docs/janitor.md)"):
        assert hint in info.advice
