"""The test stack: the local cloud (azsim + Azurite) and devhost running function_app.py, plus helpers.

``Stack`` posts captures over HTTP, polls the readable status with a deadline, reads the simulator's
state, speaks to the queues and the Event Grid webhook, and checks that no SAS signature or token
reached devhost's store, logs, or anything the test read. ``running_stack`` starts one and stops it
even on failure; its options choose the world (the example world, the tagged test world, or a file),
the app folder (with fast queue polling or not), faults, latency, the time scale and extra settings.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from azsim.testing import CloudEnv, local_cloud
from devhost.testing import DevhostProcess, running_devhost
from tests.support import eventgrid
from tests.support.http import http
from tests.support.leaks import known_secrets_in, secrets_in
from tests.support.policy import FAST_POLICY, PATIENT_COPIES, REQUESTS_QUEUE, TERMINAL
from tests.support.worlds import REPO_ROOT, WORLD, write_fast_queue_app, write_tagged_world


@dataclass
class Stack:
    cloud: CloudEnv
    devhost: DevhostProcess
    workdir: Path
    seen: list[str] = field(default_factory=list)  # every body the test read, for the secret check
    # Secrets the app handed the test on purpose (a SAS from the marketplace endpoint): they must appear
    # nowhere else, so the secret check looks for them verbatim in the store, logs and every body above.
    known_secrets: list[str] = field(default_factory=list)

    @property
    def seen_bodies(self) -> list[str]:
        """The old name of ``seen`` (tests written against the e2e harness read it)."""
        return self.seen

    # -- the product's API -------------------------------------------------------------------------
    def vm_id(self, name: str, rg: str = "rg-build") -> str:
        return (
            f"/subscriptions/{self.cloud.subscription_id}/resourceGroups/{rg}"
            f"/providers/Microsoft.Compute/virtualMachines/{name}"
        )

    def request(self, vm: str = "vm-web", *, export: bool = True, **overrides: Any) -> dict[str, Any]:
        """A full capture request: a gallery and definition created if missing, three regions, an export."""
        body: dict[str, Any] = {
            "sourceVmId": self.vm_id(vm),
            "captureMode": "inPlace",
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

    def queue_request(self, vm: str, **overrides: Any) -> dict[str, Any]:
        """A short capture request that a queue message may carry too (``captureMode`` is required there)."""
        body: dict[str, Any] = {
            "sourceVmId": self.vm_id(vm),
            "gallery": {"resourceGroup": "rg-images", "name": "galContoso"},
            "imageDefinition": {"name": f"{vm}-def", "publisher": "contoso", "offer": "t", "sku": vm},
            "version": "1.0.0",
            "targetRegions": [{"name": "westeurope"}, {"name": "eastus2"}],
            "prepare": "deprovision",
            "captureMode": "inPlace",
        }
        body.update(overrides)
        return body

    def post(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        status, answer, headers = http("POST", self.devhost.url("/api/captures"), body)
        self.seen.append(json.dumps(answer))
        return status, answer, headers

    def status(self, capture_id: str) -> tuple[int, Any]:
        code, body, _ = http("GET", self.devhost.url(f"/api/captures/{capture_id}"))
        self.seen.append(json.dumps(body))
        return code, body

    def wait(
        self, capture_id: str, *, timeout: float = 150.0, until: Callable[[Any], bool] | None = None
    ) -> dict[str, Any]:
        """Poll the readable status until the capture ends (or ``until(status)`` is true); fail at the
        deadline. A 404 before the capture was first seen means it is still starting (a queue message or
        an event on its way); any other answer than 200 fails at once."""
        deadline = time.monotonic() + timeout
        last: Any = None
        seen = False
        while time.monotonic() < deadline:
            code, body = self.status(capture_id)
            if code != 404 or seen:
                assert code == 200, f"GET status answered {code}: {body}"
                seen, last = True, body
                if last["runtimeStatus"] in TERMINAL or (until is not None and until(last)):
                    return dict(last)
            time.sleep(0.3)
        raise AssertionError(
            f"capture {capture_id} did not finish within {timeout}s; last status:\n"
            f"{json.dumps(last, indent=1)[:4000]}\n{self.devhost.log_tail(60)}"
        )

    def run(self, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
        code, answer, _ = self.post(body)
        assert code == 202, f"POST answered {code}: {answer}"
        return self.wait(answer["id"], **kw)

    def cancel(self, capture_id: str, body: Any = None) -> tuple[int, Any]:
        code, answer, _ = http("POST", self.devhost.url(f"/api/captures/{capture_id}/cancel"), body)
        self.seen.append(json.dumps(answer))
        return code, answer

    # -- durable instances ---------------------------------------------------------------------------
    def instances(self) -> list[dict[str, Any]]:
        code, body, _ = http("GET", self.devhost.url("/runtime/webhooks/durabletask/instances"))
        assert code == 200, body
        return list(body)

    def capture_instances(self, vm: str) -> list[dict[str, Any]]:
        from shared.ids import capture_instance_id

        cid = capture_instance_id(self.vm_id(vm))
        return [i for i in self.instances() if i["instanceId"] == cid]

    # -- queues (base64, as the Functions host) --------------------------------------------------------
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

    # -- Event Grid ------------------------------------------------------------------------------------
    def deallocation_event(
        self, vm: str, *, event_id: str | None = None, at: datetime | None = None
    ) -> dict[str, Any]:
        return eventgrid.deallocation_event(
            self.vm_id(vm), tenant_id=self.cloud.tenant_id, event_id=event_id, at=at
        )

    as_cloud_event = staticmethod(eventgrid.as_cloud_event)

    def deliver(self, body: Any, *, kind: str = "Notification", cloud: bool = False) -> tuple[int, Any]:
        headers = {"aeg-event-type": kind}
        if cloud:
            headers["Content-Type"] = "application/cloudevents-batch+json; charset=utf-8"
        code, answer, _ = http("POST", self.devhost.url(eventgrid.EVENTGRID_ROUTE), body, headers=headers)
        return code, answer

    def deliver_raw(self, raw: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """POST bytes as they are (not JSON-encoded here) to the Event Grid webhook."""
        url = self.devhost.url(eventgrid.EVENTGRID_ROUTE)
        code, answer, _ = http(
            "POST", url, headers={"aeg-event-type": "Notification", **(headers or {})}, raw=raw
        )
        return code, answer

    # -- the simulator ---------------------------------------------------------------------------------
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

    # -- the secret check ------------------------------------------------------------------------------
    def assert_no_secrets(self) -> None:
        """No SAS signature or bearer token in devhost's store, logs, or any body the test read."""
        leaks = secrets_in(self.devhost.workdir, self.seen, self.known_secrets)
        if self.known_secrets:  # the cloud's stores too (queues with the notices, Azurite's tables and logs)
            leaks += known_secrets_in(self.workdir / "azsim", self.known_secrets)
        assert not leaks, f"secret found in: {leaks}"


def _write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@contextlib.contextmanager
def running_stack(
    workdir: Path,
    *,
    world: Path | None = None,
    tagged_world: bool = False,
    fast_queues: bool = False,
    time_scale: float = 0.003,
    faults: dict[str, Any] | None = None,
    latency: dict[str, float] | None = None,
    env: dict[str, str] | None = None,
    virtual_clock: bool = False,
    require_keys: bool = False,
) -> Iterator[Stack]:
    """Start a stack under ``workdir``: ``world`` (default: examples/world.json, or with ``tagged_world``
    the tagged test world), the repository's app (in a folder with fast queue polling when
    ``fast_queues``), FAST_POLICY overridden by ``env``; devhost asks for function keys with ``require_keys``."""
    if tagged_world:
        world = write_tagged_world(workdir / "world.json")
    app_dir = write_fast_queue_app(workdir / "app") if fast_queues else REPO_ROOT
    faults_path = _write_json(workdir / "faults.json", faults) if faults is not None else None
    latency_path = _write_json(workdir / "latency.json", latency) if latency is not None else None
    with local_cloud(
        workdir / "azsim",
        world=world or WORLD,
        time_scale=time_scale,
        faults=faults_path,
        latency=latency_path,
    ) as cloud:
        dh_env = {**dict(cloud), **FAST_POLICY, **(env or {})}
        devhost = running_devhost(
            app_dir, workdir / "devhost", env=dh_env, virtual_clock=virtual_clock, require_keys=require_keys
        )
        with devhost as dh, cloud.apply():
            yield Stack(cloud=cloud, devhost=dh, workdir=workdir)


@contextlib.contextmanager
def running_trigger_stack(
    workdir: Path, *, env: dict[str, str] | None = None, **options: Any
) -> Iterator[Stack]:
    """The stack of the queue / Event Grid / cancel / notice tests: the tagged world, fast queue polling,
    and patient copy-stall detection (their stalled copies must still be running when a cancel comes)."""
    with running_stack(
        workdir, tagged_world=True, fast_queues=True, env={**PATIENT_COPIES, **(env or {})}, **options
    ) as stack:
        yield stack
