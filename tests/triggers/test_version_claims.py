"""An explicit image version targeted by a running capture is refused before anything starts.

The in-process cases run the real HTTP trigger with a Durable client stand-in (``intake_support``); the
stack case sends two real requests to devhost + azsim and checks the second VM is untouched.
"""

from __future__ import annotations

import json
from typing import Any

from tests.triggers.intake_support import SUB, RecordingClient, body_of, post, valid_request
from triggers.starting import version_claim


def _vm(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/{name}"


def _post(client: RecordingClient, **over: Any) -> tuple[int, Any]:
    resp = post(client, json.dumps(valid_request(**over)).encode())
    return resp.status_code, body_of(resp)


def test_a_second_capture_into_a_running_captures_explicit_version_gets_409() -> None:
    client = RecordingClient()
    first, answer = _post(client, sourceVmId=_vm("vm-web"), version="1.4.0")
    assert first == 202, answer
    code, body = _post(client, sourceVmId=_vm("vm-web-2"), version="1.4.0")
    assert code == 409, body
    assert body["error"]["code"] == "VersionAlreadyTargeted"
    assert body["id"] == answer["id"]  # names the capture that holds the version
    assert "untouched" in body["error"]["message"] and "auto" in body["error"]["message"]
    assert len(client.started) == 1  # the second VM's capture never started


def test_auto_another_version_or_another_definition_are_not_held_back() -> None:
    client = RecordingClient()
    assert _post(client, sourceVmId=_vm("vm-web"), version="1.4.0")[0] == 202
    assert _post(client, sourceVmId=_vm("vm-web-2"), version="auto")[0] == 202
    assert _post(client, sourceVmId=_vm("vm-web-3"), version="1.4.1")[0] == 202
    other_def = {"name": "other", "publisher": "contoso", "offer": "web", "sku": "other"}
    assert _post(client, sourceVmId=_vm("vm-arm"), version="1.4.0", imageDefinition=other_def)[0] == 202
    assert len(client.started) == 4


def test_the_claim_ignores_case_where_azure_does() -> None:
    a = valid_request(gallery={"resourceGroup": "RG-Images", "name": "GALcontoso"})
    b = valid_request(imageDefinition={"name": "WEB-ubuntu", "createIfMissing": False})
    assert version_claim(a) == version_claim(b) is not None
    assert version_claim(valid_request(version="auto")) is None
