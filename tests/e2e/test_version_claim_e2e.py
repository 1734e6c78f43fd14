"""End to end: a second capture into the explicit version a running capture targets is refused at once.

Through real devhost (its instance list and status API answer the trigger's query) and azsim: the
second VM is never touched — not stopped, not generalized.
"""

from __future__ import annotations

import pytest

from tests.support.http import http
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


def test_second_capture_into_a_targeted_explicit_version_is_refused_and_its_vm_untouched(
    stack: Stack,
) -> None:
    shared = {
        "name": "shared-def",
        "publisher": "contoso",
        "offer": "web",
        "sku": "shared",
        "createIfMissing": True,
    }
    code, first, _ = stack.post(
        stack.request("vm-web-3", export=False, imageDefinition=shared, version="2.0.0")
    )
    assert code == 202, first
    code, second, _ = stack.post(
        stack.request("vm-web-2", export=False, imageDefinition=shared, version="2.0.0")
    )
    assert code == 409, second
    assert second["error"]["code"] == "VersionAlreadyTargeted"
    assert second["id"] == first["id"]
    vm = stack.vm_state("vm-web-2")
    assert vm["powerState"] == "running" and not vm.get("generalized"), vm
    # The same request with 'auto' is not held back by the running capture.
    code, third, _ = stack.post(
        stack.request("vm-web-2", export=False, imageDefinition=shared, version="auto")
    )
    assert code == 202, third
    for answer in (first, third):
        http("POST", answer["cancelPostUri"], {"reason": "test done"})
        assert stack.wait(answer["id"])["runtimeStatus"] in {"Canceled", "Completed"}
