"""The orchestrator tests' fake world: the request they capture, what counts as an ARM call, and ``Run``,
one devhost on the fake app (tests/orchestrators/fakeapp) with a scripted scenario.

The ``run_with`` fixture (tests/orchestrators/conftest.py) starts them with devhost's virtual clock.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.http import http
from tests.support.policy import TERMINAL

APP = Path(__file__).resolve().parent / "fakeapp"
VM = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/vm-fake"
REQUEST: dict[str, Any] = {
    "sourceVmId": VM,
    "captureMode": "inPlace",
    "gallery": {"resourceGroup": "rg-images", "name": "galContoso"},
    "imageDefinition": {"name": "fake", "publisher": "contoso", "offer": "fake", "sku": "s"},
    "version": "1.0.0",
    "targetRegions": [{"name": "eastus2"}, {"name": "northeurope"}],
    "prepare": "deprovision",
    "vhdExport": {"accountUrl": "https://stexports.blob.core.windows.net", "container": "vhds"},
}
# What a capture may call that is an ARM request (copy status polls go to the storage data plane).
ARM_ACTIVITIES = {
    "get_vm_facts", "check_gallery", "start_guest_prepare", "get_power_state", "start_deallocate",
    "generalize_vm", "start_snapshot", "get_snapshot", "ensure_definition", "start_image_version",
    "get_version_status", "revoke_snapshot_access", "delete_snapshot", "start_export", "list_regions",
    "check_permissions",
}  # fmt: skip
# What a capture failing in preflight may call: reads only (check_export_target's probe blob is the export
# account's own check), then the completion notice.
READ_ONLY = {
    "get_vm_facts", "check_gallery", "list_regions", "check_export_target", "check_permissions", "publish_notice",
}  # fmt: skip


def _http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    code, answer, _ = http(method, url, body)
    return code, answer


class Run:
    def __init__(self, tmp: Path, scenario: dict[str, Any]) -> None:
        self.calls_path = tmp / "calls.jsonl"
        self.env = {"FAKE_SCENARIO": json.dumps(scenario), "FAKE_CALLS": str(self.calls_path)}
        self.tmp = tmp
        self.base = ""

    def call_log(self) -> list[dict[str, Any]]:
        lines = self.calls_path.read_text().splitlines() if self.calls_path.exists() else []
        return [json.loads(line) for line in lines]

    def calls(self) -> Counter[str]:
        return Counter(c["name"] for c in self.call_log())

    def capture(self, request: dict[str, Any] | None = None, timeout: float = 120.0) -> dict[str, Any]:
        code, answer = _http("POST", f"{self.base}/api/captures", request or REQUEST)
        assert code == 202, answer
        return self.wait(answer["id"], timeout)

    def wait(self, capture_id: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: Any = None
        while time.monotonic() < deadline:
            code, status = _http("GET", f"{self.base}/api/captures/{capture_id}")
            assert code == 200, status
            if status["runtimeStatus"] in TERMINAL:
                return dict(status)
            time.sleep(0.2)
        raise AssertionError(f"not finished in {timeout}s: {json.dumps(status)[:3000]}")

    def instance(self, instance_id: str) -> dict[str, Any]:
        code, body = _http(
            "GET", f"{self.base}/runtime/webhooks/durabletask/instances/{instance_id}?showHistory=true"
        )
        assert code in (200, 202), body
        return dict(body)
