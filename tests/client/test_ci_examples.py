"""The CI examples (examples/ci/) call the client as it parses, with a request the app accepts."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from imagepipeline.cli import parser
from imagepipeline.request_flags import build_request
from shared.requests import validate_request
from tests.support.worlds import REPO_ROOT

CI = REPO_ROOT / "examples" / "ci"
VM_ID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/vm-web"
# What the CI system puts in place of its expressions and variables.
_COMMAND = re.compile(r"\s*(?:-\s*)?(?:run:|script:)?\s*(imagepipeline\s.*)")
_VALUES = {"$VM_ID": VM_ID, "$VERSION": "auto"}
_EXPRESSION = re.compile(r"\$\{\{[^}]*\}\}|\$\([^)]*\)|\$[A-Z_]+")


def _commands(name: str) -> list[list[str]]:
    text = (CI / name).read_text().replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        found = _COMMAND.match(line)
        if found is None:
            continue
        shell = _EXPRESSION.sub(
            lambda m: _VALUES.get(m.group(0), "capture-vm-web-0123456789"), found.group(1)
        )
        words = shlex.split(shell.split(">")[0].split("||")[0])
        commands.append(words[1:])
    return commands


@pytest.mark.parametrize("name", ["github-actions.yml", "azure-pipelines.yml"])
def test_every_command_of_the_example_parses_and_it_captures_and_waits(name: str) -> None:
    commands = _commands(name)
    assert [c[0] for c in commands][:2] == ["capture", "watch"]
    for words in commands:
        parser().parse_args(words)  # a usage error would exit 3 here
    capture = parser().parse_args(commands[0])
    assert capture.source_vm_id == VM_ID and capture.file == "examples/ci/capture-request.json"
    request, errors = validate_request(build_request(capture))
    assert request is not None, errors


def test_the_example_request_is_one_the_app_accepts() -> None:
    body = json.loads((CI / "capture-request.json").read_text())
    request, errors = validate_request({**body, "sourceVmId": VM_ID})
    assert request is not None and not errors, errors
