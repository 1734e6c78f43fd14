"""The e2e stack: the local cloud (azsim + Azurite) and devhost running function_app.py, plus helpers.

``Stack`` posts captures over HTTP, polls the readable status with a deadline, reads the simulator's
state, and checks that no SAS signature or token reached devhost's store, logs or the statuses.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leak_check import secrets_in

from azsim.testing import CloudEnv, local_cloud
from devhost.testing import DevhostProcess, running_devhost

REPO_ROOT = Path(__file__).resolve().parents[2]
WORLD = REPO_ROOT / "examples" / "world.json"
TERMINAL = {"Completed", "Failed", "Terminated", "Canceled"}

# Short, but real, timings: durable timers on the wall clock, Azure durations scaled by azsim.
FAST_POLICY = {
    "CAPTURE_POLL_MIN_SECONDS": "0.2",
    "CAPTURE_POLL_MAX_SECONDS": "1",
    "CAPTURE_GUEST_STOP_TIMEOUT_SECONDS": "60",
    "CAPTURE_POWER_STATE_TIMEOUT_SECONDS": "60",
    "CAPTURE_SNAPSHOT_TIMEOUT_SECONDS": "60",
    "CAPTURE_COPY_STALL_SECONDS": "4",
    "CAPTURE_REPLICATION_TIMEOUT_SECONDS": "120",
    "CAPTURE_EXPECTED_COPY_MBPS": "5000",
    "CAPTURE_TRANSIENT_RETRY_ATTEMPTS": "5",
    "CAPTURE_TRANSIENT_RETRY_FIRST_SECONDS": "0.5",
    "AZURE_ARM_RETRY_TOTAL": "3",
    "AZURE_ARM_RETRY_BACKOFF_SECONDS": "0.05",
    "AZURE_ARM_RETRY_BACKOFF_MAX_SECONDS": "0.5",
    "AZURE_LRO_POLLING_INTERVAL_SECONDS": "0.1",
    # The world's export account (production refuses every export account until one is allow-listed).
    "CAPTURE_EXPORT_ACCOUNTS": "stexports",
}
# The queue trigger's %CAPTURE_REQUESTS_QUEUE% must resolve, or devhost logs an ERROR at start
# (the names are local.settings.sample.json's).
QUEUE_SETTINGS = {"CAPTURE_REQUESTS_QUEUE": "capture-requests", "CAPTURE_RESULTS_QUEUE": "capture-results"}


def http(method: str, url: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any, dict[str, str]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, method=method, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw, status, headers = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        raw, status, headers = exc.read(), exc.code, dict(exc.headers)
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text) if text else None, headers
    except ValueError:
        return status, text, headers


@dataclass
class Stack:
    cloud: CloudEnv
    devhost: DevhostProcess
    workdir: Path
    seen_bodies: list[str] = field(default_factory=list)

    # -- the product's API -------------------------------------------------------------------
    def vm_id(self, name: str, rg: str = "rg-build") -> str:
        return (
            f"/subscriptions/{self.cloud.subscription_id}/resourceGroups/{rg}"
            f"/providers/Microsoft.Compute/virtualMachines/{name}"
        )

    def request(self, vm: str = "vm-web", *, export: bool = True, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "sourceVmId": self.vm_id(vm),
            "gallery": {"resourceGroup": "rg-images", "name": "galContoso", "createIfMissing": True},
            "imageDefinition": {
                "name": f"{vm}-def",
                "publisher": "contoso",
                "offer": "web",
                "sku": vm,
                "createIfMissing": True,
            },
            "version": "1.0.0",
            "targetRegions": [
                {"name": "westeurope", "replicaCount": 2, "storageAccountType": "Standard_ZRS"},
                {"name": "eastus2"},
                {"name": "northeurope"},
            ],
            "prepare": "deprovision",
            "deleteSnapshots": True,
            "tags": {"ci-run": "e2e"},
        }
        if export:
            body["vhdExport"] = {
                "accountUrl": self.cloud.storage_account_url("stexports"),
                "container": "vhds",
            }
        body.update(overrides)
        return body

    def post(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        status, answer, headers = http("POST", self.devhost.url("/api/captures"), body)
        self.seen_bodies.append(json.dumps(answer))
        return status, answer, headers

    def status(self, capture_id: str) -> tuple[int, Any]:
        code, body, _ = http("GET", self.devhost.url(f"/api/captures/{capture_id}"))
        self.seen_bodies.append(json.dumps(body))
        return code, body

    def wait(self, capture_id: str, *, timeout: float = 150.0, until: Any = None) -> dict[str, Any]:
        """Poll the readable status until the capture ends (or ``until(status)`` is true); fail at the deadline."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            code, last = self.status(capture_id)
            assert code == 200, f"GET status answered {code}: {last}"
            if until is not None and (until(last) or last["runtimeStatus"] in TERMINAL):
                return dict(last)
            if until is None and last["runtimeStatus"] in TERMINAL:
                return dict(last)
            time.sleep(0.3)
        raise AssertionError(
            f"capture {capture_id} did not finish within {timeout}s; last status:\n"
            f"{json.dumps(last, indent=1)[:4000]}\n{self.devhost.log_tail(40)}"
        )

    def run(self, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
        code, answer, _ = self.post(body)
        assert code == 202, f"POST answered {code}: {answer}"
        return self.wait(answer["id"], **kw)

    # -- the simulator -----------------------------------------------------------------------
    def sim(self, path: str) -> Any:
        code, body, _ = http("GET", f"{self.cloud.control_url.rstrip('/')}/{path.lstrip('/')}")
        assert code == 200, f"azsim {path} answered {code}: {body}"
        return body

    def vm_state(self, name: str) -> dict[str, Any]:
        for vm in self.sim("state")["virtualMachines"]:
            if vm["id"].rsplit("/", 1)[1] == name:
                return dict(vm)
        raise AssertionError(f"no VM {name} in azsim state")

    def active_access(self) -> list[str]:
        """Disks and snapshots that still have a granted SAS (beginGetAccess without endGetAccess)."""
        return [d["id"] for d in self.sim("state")["disks"] if d.get("activeAccess")]

    def arm_requests(self) -> int:
        return sum(int(v["total"]) for v in self.sim("counters").values())

    def compute(self) -> Any:
        from azure.mgmt.compute import ComputeManagementClient

        return self.cloud.arm_client(ComputeManagementClient)

    def log_errors(self) -> list[str]:
        """devhost's ERROR lines so far (call while it runs: interpreter shutdown noise comes later)."""
        return [line for line in self.devhost.log_text().splitlines() if " ERROR " in line]

    # -- the secret check --------------------------------------------------------------------
    def assert_no_secrets(self) -> None:
        """No SAS signature or bearer token in devhost's store, logs, or any status the API returned."""
        leaks = secrets_in(self.devhost.workdir, self.seen_bodies)
        assert not leaks, f"secret found in: {leaks}"


@contextlib.contextmanager
def running_stack(
    workdir: Path,
    *,
    time_scale: float = 0.003,
    faults: dict[str, Any] | None = None,
    latency: dict[str, float] | None = None,
    env: dict[str, str] | None = None,
    virtual_clock: bool = False,
) -> Iterator[Stack]:
    faults_path = None
    if faults is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        faults_path = workdir / "faults.json"
        faults_path.write_text(json.dumps(faults))
    latency_path = None
    if latency is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        latency_path = workdir / "latency.json"
        latency_path.write_text(json.dumps(latency))
    with local_cloud(
        workdir / "azsim", world=WORLD, time_scale=time_scale, faults=faults_path, latency=latency_path
    ) as cloud:
        dh_env = {**dict(cloud), **FAST_POLICY, **QUEUE_SETTINGS, **(env or {})}
        with running_devhost(REPO_ROOT, workdir / "devhost", env=dh_env, virtual_clock=virtual_clock) as dh:
            stack = Stack(cloud=cloud, devhost=dh, workdir=workdir)
            with cloud.apply():
                yield stack
