"""A local cloud + devhost stack for the queue / Event Grid / cancel / notice tests (issue 5).

- World: ``examples/world.json`` plus test VMs with ``image-pipeline:*`` tags (written to the test's
  tmp dir, never into examples/).
- App: a tmp app dir whose ``function_app.py`` loads the repository's ``function_app.py`` (the real
  composition, unchanged), with a ``host.json`` copy whose queue polling is short (the Functions
  default backs off to one minute on an empty queue).
- Helpers: enqueue / read queues (base64, as the host), post Event Grid deliveries, list instances,
  a local webhook receiver.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from leak_check import secrets_in

from azsim.testing import CloudEnv, local_cloud
from devhost.testing import DevhostProcess, running_devhost

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUESTS_QUEUE = "capture-requests"
RESULTS_QUEUE = "capture-results"
TERMINAL = {"Completed", "Failed", "Terminated", "Canceled"}
DEALLOCATE = "Microsoft.Compute/virtualMachines/deallocate/action"
EVENTGRID_ROUTE = "/api/eventgrid/deallocations"

FAST_POLICY = {
    "CAPTURE_POLL_MIN_SECONDS": "0.2",
    "CAPTURE_POLL_MAX_SECONDS": "1",
    "CAPTURE_GUEST_STOP_TIMEOUT_SECONDS": "60",
    "CAPTURE_POWER_STATE_TIMEOUT_SECONDS": "60",
    "CAPTURE_SNAPSHOT_TIMEOUT_SECONDS": "60",
    "CAPTURE_COPY_STALL_SECONDS": "20",
    "CAPTURE_REPLICATION_TIMEOUT_SECONDS": "120",
    "CAPTURE_EXPECTED_COPY_MBPS": "5000",
    "CAPTURE_TRANSIENT_RETRY_ATTEMPTS": "5",
    "CAPTURE_TRANSIENT_RETRY_FIRST_SECONDS": "0.5",
    "AZURE_ARM_RETRY_TOTAL": "3",
    "AZURE_ARM_RETRY_BACKOFF_SECONDS": "0.05",
    "AZURE_ARM_RETRY_BACKOFF_MAX_SECONDS": "0.5",
    "AZURE_LRO_POLLING_INTERVAL_SECONDS": "0.1",
    "CAPTURE_REQUESTS_QUEUE": REQUESTS_QUEUE,
    "CAPTURE_RESULTS_QUEUE": RESULTS_QUEUE,
    # The world's export account, and the local webhook receivers on 127.0.0.1 (both refused by default).
    "CAPTURE_EXPORT_ACCOUNTS": "stexports",
    "NOTICE_ALLOW_LOOPBACK_WEBHOOKS": "true",
}

GOLDEN_TAGS = {
    "image-pipeline:mode": "inPlace",
    "image-pipeline:gallery": "rg-images/galContoso",
    "image-pipeline:definition": "golden-def",
    "image-pipeline:identifier": "contoso/golden/ubuntu",
    "image-pipeline:regions": "westeurope, eastus2",
    "image-pipeline:version": "auto",
}


def _vm(name: str, power: str, tags: dict[str, str], *, deprovisioned: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "resourceGroup": "rg-build",
        "location": "westeurope",
        "osType": "Linux",
        "hyperVGeneration": "V2",
        "vmSize": "Standard_D2s_v5",
        "powerState": power,
        "guestDeprovisioned": deprovisioned,
        "osDisk": {"name": f"{name}_OsDisk", "sizeGiB": 30, "contentMiB": 1},
        "dataDisks": [{"name": f"{name}_data0", "lun": 0, "sizeGiB": 32, "contentMiB": 1}],
        "tags": tags,
    }


def write_world(path: Path) -> Path:
    world = json.loads((REPO_ROOT / "examples" / "world.json").read_text())
    world["virtualMachines"] += [
        _vm("vm-golden", "deallocated", {"app": "golden", **GOLDEN_TAGS}),
        _vm("vm-golden-ce", "deallocated", {**GOLDEN_TAGS, "image-pipeline:definition": "golden-ce-def"}),
        _vm("vm-golden-up", "running", GOLDEN_TAGS),
        _vm(
            "vm-badtags",
            "deallocated",
            {
                "image-pipeline:mode": "inPlace",
                "image-pipeline:gallery": "galContoso",
                "image-pipeline:regions": "x:y",
            },
        ),
        # Tagged for capture but without image-pipeline:mode: never captured (its guest was not deprovisioned).
        _vm("vm-nomode", "deallocated", {k: v for k, v in GOLDEN_TAGS.items() if k != "image-pipeline:mode"}),
        # Targets of the Event Grid fuzz: deallocated and fully tagged, but only ever sent invalid or stale events.
        _vm("vm-fuzz", "deallocated", {**GOLDEN_TAGS, "image-pipeline:definition": "fuzz-def"}),
        _vm("vm-plain", "deallocated", {"app": "plain"}),
        _vm("vm-queue", "running", {}, deprovisioned=False),
        _vm("vm-queue-dup", "running", {}, deprovisioned=False),
        _vm("vm-cancel", "running", {}, deprovisioned=False),
        _vm("vm-notice", "running", {}, deprovisioned=False),
        _vm("vm-fail", "running", {}, deprovisioned=False),
        _vm("vm-409", "running", {}, deprovisioned=False),
    ]
    path.write_text(json.dumps(world, indent=1))
    return path


APP_SOURCE = '''"""Test app: the repository's function_app.py as is (this folder only changes host.json)."""
import importlib.util
import pathlib

_spec = importlib.util.spec_from_file_location("image_pipeline_function_app", pathlib.Path({root!r}) / "function_app.py")
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
app = _mod.app
'''


def write_app(app_dir: Path) -> Path:
    app_dir.mkdir(parents=True, exist_ok=True)
    (app_dir / "function_app.py").write_text(APP_SOURCE.format(root=str(REPO_ROOT)))
    host = json.loads((REPO_ROOT / "host.json").read_text())
    queues = host.setdefault("extensions", {}).setdefault("queues", {})
    queues["maxPollingInterval"] = "00:00:00.500"
    (app_dir / "host.json").write_text(json.dumps(host, indent=1))
    return app_dir


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 30.0
) -> tuple[int, Any, dict[str, str]]:
    data = json.dumps(body).encode() if body is not None else None
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(url, method=method, data=data, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw, status, rh = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        raw, status, rh = exc.read(), exc.code, dict(exc.headers)
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text) if text else None, rh
    except ValueError:
        return status, text, rh


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.25) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


@dataclass
class TriggerStack:
    cloud: CloudEnv
    devhost: DevhostProcess
    seen: list[str] = field(default_factory=list)

    def vm_id(self, name: str, rg: str = "rg-build") -> str:
        return (
            f"/subscriptions/{self.cloud.subscription_id}/resourceGroups/{rg}"
            f"/providers/Microsoft.Compute/virtualMachines/{name}"
        )

    def request(self, vm: str, **over: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "sourceVmId": self.vm_id(vm),
            "gallery": {"resourceGroup": "rg-images", "name": "galContoso"},
            "imageDefinition": {"name": f"{vm}-def", "publisher": "contoso", "offer": "t", "sku": vm},
            "version": "1.0.0",
            "targetRegions": [{"name": "westeurope"}, {"name": "eastus2"}],
            "prepare": "deprovision",
            "captureMode": "inPlace",  # required on queue messages, accepted on HTTP
        }
        body.update(over)
        return body

    # -- queues ----------------------------------------------------------------------------------
    def queue(self, name: str) -> Any:
        from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

        qc = QueueClient.from_connection_string(
            self.cloud["AzureWebJobsStorage"],
            name,
            message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=TextBase64DecodePolicy(),
        )
        with contextlib.suppress(Exception):
            qc.create_queue()
        return qc

    def enqueue(self, text: str, queue: str = REQUESTS_QUEUE) -> None:
        self.queue(queue).send_message(text)

    def read_queue(self, name: str) -> list[dict[str, Any]]:
        """Every message currently on ``name`` (peeked, not removed), JSON-decoded."""
        out = []
        for m in self.queue(name).peek_messages(max_messages=32):
            self.seen.append(m.content)
            out.append(json.loads(m.content))
        return out

    # -- Event Grid --------------------------------------------------------------------------------
    def deallocation_event(
        self, vm: str, *, event_id: str | None = None, at: datetime | None = None
    ) -> dict[str, Any]:
        vm_id = self.vm_id(vm)
        sub = self.cloud.subscription_id
        return {
            "id": event_id or str(uuid.uuid4()),
            "topic": f"/subscriptions/{sub}/resourceGroups/rg-build",
            "subject": vm_id,
            "eventType": "Microsoft.Resources.ResourceActionSuccess",
            "eventTime": (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z"),
            "dataVersion": "2",
            "metadataVersion": "1",
            "data": {
                "authorization": {"scope": vm_id, "action": DEALLOCATE},
                "correlationId": str(uuid.uuid4()),
                "httpRequest": {"method": "POST", "url": f"https://management.azure.com{vm_id}/deallocate"},
                "resourceProvider": "Microsoft.Compute",
                "resourceUri": vm_id,
                "operationName": DEALLOCATE,
                "status": "Succeeded",
                "subscriptionId": sub,
                "tenantId": self.cloud.tenant_id,
            },
        }

    @staticmethod
    def as_cloud_event(event: dict[str, Any]) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": event["id"],
            "source": event["topic"],
            "subject": event["subject"],
            "type": event["eventType"],
            "time": event["eventTime"],
            "data": event["data"],
        }

    def deliver(self, body: Any, *, kind: str = "Notification", cloud: bool = False) -> tuple[int, Any]:
        headers = {"aeg-event-type": kind}
        if cloud:
            headers["Content-Type"] = "application/cloudevents-batch+json; charset=utf-8"
        code, answer, _ = http("POST", self.devhost.url(EVENTGRID_ROUTE), body, headers=headers)
        return code, answer

    def deliver_raw(self, raw: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """POST bytes as they are (not JSON-encoded here) to the Event Grid webhook."""
        req = urllib.request.Request(
            self.devhost.url(EVENTGRID_ROUTE),
            method="POST",
            data=raw,
            headers={"Content-Type": "application/json", "aeg-event-type": "Notification", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, text = resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode("utf-8", "replace")
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text

    # -- durable instances --------------------------------------------------------------------------
    def instances(self) -> list[dict[str, Any]]:
        code, body, _ = http("GET", self.devhost.url("/runtime/webhooks/durabletask/instances"))
        assert code == 200, body
        return list(body)

    def capture_instances(self, vm: str) -> list[dict[str, Any]]:
        from shared.ids import capture_instance_id

        cid = capture_instance_id(self.vm_id(vm))
        return [i for i in self.instances() if i["instanceId"] == cid]

    def status(self, capture_id: str) -> tuple[int, Any]:
        code, body, _ = http("GET", self.devhost.url(f"/api/captures/{capture_id}"))
        self.seen.append(json.dumps(body))
        return code, body

    def wait(
        self, capture_id: str, timeout: float = 150.0, until: Callable[[Any], bool] | None = None
    ) -> Any:
        def check() -> Any:
            code, body = self.status(capture_id)
            if code != 200:
                return None
            if until is not None:
                return body if until(body) else None
            return body if body["runtimeStatus"] in TERMINAL else None

        try:
            return wait_for(f"capture {capture_id}", check, timeout=timeout, every=0.3)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.devhost.log_tail(60)}") from None

    def cancel(self, capture_id: str, body: Any = None) -> tuple[int, Any]:
        code, answer, _ = http("POST", self.devhost.url(f"/api/captures/{capture_id}/cancel"), body)
        self.seen.append(json.dumps(answer))
        return code, answer

    def sim(self, path: str) -> Any:
        code, body, _ = http("GET", f"{self.cloud.control_url.rstrip('/')}/{path.lstrip('/')}")
        assert code == 200, f"azsim {path} answered {code}: {body}"
        return body

    def compute(self) -> Any:
        from azure.mgmt.compute import ComputeManagementClient

        return self.cloud.arm_client(ComputeManagementClient)

    def assert_no_secrets(self) -> None:
        leaks = secrets_in(self.devhost.workdir, self.seen)
        assert not leaks, f"secret found in: {leaks}"


@contextlib.contextmanager
def running_trigger_stack(
    workdir: Path,
    *,
    time_scale: float = 0.003,
    env: dict[str, str] | None = None,
    faults: dict[str, Any] | None = None,
) -> Iterator[TriggerStack]:
    world = write_world(workdir / "world.json")
    app_dir = write_app(workdir / "app")
    faults_file = None
    if faults is not None:
        faults_file = workdir / "faults.json"
        faults_file.write_text(json.dumps(faults))
    with local_cloud(workdir / "azsim", world=world, time_scale=time_scale, faults=faults_file) as cloud:
        dh_env = {**dict(cloud), **FAST_POLICY, **(env or {})}
        with running_devhost(app_dir, workdir / "devhost", env=dh_env) as dh, cloud.apply():
            yield TriggerStack(cloud=cloud, devhost=dh)


class WebhookReceiver:
    """A local HTTP server that records POSTed JSON bodies; the first ``fail_first`` requests get 503."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []  # path and query of each accepted POST
        self.requests = 0
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                receiver.requests += 1
                if receiver.requests <= receiver.fail_first:
                    self.send_response(503)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    return
                receiver.bodies.append(json.loads(raw))
                receiver.headers.append(dict(self.headers))
                receiver.paths.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/capture"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
