"""Storage-queue triggers end to end: devhost subprocess + a real Azurite queue service.

Messages are written base64-encoded (the host's default messageEncoding), processed by the sample app,
results checked through a queue output binding and the durable management API; failing messages go to
``<queue>-poison`` after ``maxDequeueCount`` (3 in the sample's host.json) attempts.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from azure.storage.queue import QueueServiceClient

from devhost.testing import running_devhost

REPO = Path(__file__).resolve().parents[2]
APP = Path(__file__).parent / "apps_front" / "queue_app"
DEVSTORE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@pytest.fixture(scope="module")
def azurite_queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite's queue service on a free port (plain http); yields a connection string."""
    data = tmp_path_factory.mktemp("azurite")
    log = data / "azurite.log"
    binary = REPO / "node_modules" / ".bin" / "azurite-queue"
    if not binary.exists():
        pytest.fail(f"{binary} missing: run `make bootstrap` (npm ci)")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(binary),
                "--queueHost",
                "127.0.0.1",
                "--queuePort",
                "0",
                "--location",
                str(data),
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--silent",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        port = None
        while port is None:
            m = re.search(r"listens? (?:on|at) http://127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
            if m:
                port = int(m.group(1))
                break
            assert proc.poll() is None, f"azurite exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"azurite not ready: {log.read_text()}"
            time.sleep(0.1)
        yield (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={DEVSTORE_KEY};QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
        )
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


def _b64(obj: object) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


def _receive_all(
    qsc: QueueServiceClient,
    queue: str,
    want: int,
    timeout: float = 90.0,
    log: Callable[[], str] | None = None,
) -> list[str]:
    """Drain messages from ``queue`` until ``want`` arrived (or fail at the deadline).

    The deadline is generous: under a parallel suite on 2 cores, devhost and Azurite share the CPU
    with several local clouds; a missing message still fails, with devhost's log tail to say why.
    """
    qc = qsc.get_queue_client(queue)
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while len(got) < want:
        try:
            for m in qc.receive_messages(max_messages=32, visibility_timeout=60):
                got.append(m.content)
                qc.delete_message(m)
        except Exception as exc:  # queue not created yet
            if "QueueNotFound" not in str(exc):
                raise
        if len(got) >= want:
            break
        assert time.monotonic() < deadline, f"only {len(got)}/{want} messages in '{queue}'" + (
            f"; devhost log tail:\n{log()[-3000:]}" if log else ""
        )
        time.sleep(0.1)
    return got


def test_queue_trigger_output_binding_durable_client_and_poison(azurite_queue: str, tmp_path: Path) -> None:
    qsc = QueueServiceClient.from_connection_string(azurite_queue)
    for name in ("work-items", "start-requests"):
        qsc.create_queue(name)
    env = {"AzureWebJobsStorage": azurite_queue}
    with running_devhost(APP, tmp_path / ".devhost", env=env) as dh:
        work = qsc.get_queue_client("work-items")
        work.send_message(_b64({"n": 1}))
        work.send_message(_b64({"n": 2}))
        work.send_message(_b64({"fail": True}))
        # also a message that is not base64: the host cannot decode it and poisons it at once
        work.send_message("this is not base64 ***")

        notices = [
            json.loads(base64.b64decode(t)) for t in _receive_all(qsc, "done-notices", 2, log=dh.log_text)
        ]
        assert sorted(n["echo"]["n"] for n in notices) == [1, 2]
        assert all(n["dequeue_count"] == 1 and n["has_insertion_time"] for n in notices)

        poison = _receive_all(qsc, "work-items-poison", 2, log=dh.log_text)
        assert sorted(poison) == sorted([_b64({"fail": True}), "this is not base64 ***"])  # copied unchanged
        log = dh.log_text()
        assert log.count("on_work: function failed for message") == 3  # maxDequeueCount = 3 attempts
        assert "(dequeue 3/3)" in log
        assert "moved to 'work-items-poison'" in log
        assert '"fail"' not in log  # message bodies never reach the log

        # queue trigger with a durable client binding starts an orchestration
        qsc.get_queue_client("start-requests").send_message(_b64({"instance_id": "from-queue", "name": "Q"}))
        deadline = time.monotonic() + 20
        while True:
            r = requests.get(dh.url("runtime/webhooks/durabletask/instances/from-queue"), timeout=10)
            if r.status_code == 200:
                break
            assert time.monotonic() < deadline, r.text
            time.sleep(0.05)
        assert r.json()["runtimeStatus"] == "Completed"
        assert r.json()["output"] == "Hello Q"
        # the processed work queue is empty
        assert qsc.get_queue_client("work-items").get_queue_properties().approximate_message_count == 0
        # a trigger whose connection has no settings disables only that function, with advice
        assert "the listener for function 'on_identity' was unable to start" in log
        assert "'IdentityStorage__queueServiceUri'" in log


def test_identity_based_connection_with_local_cloud(tmp_path: Path) -> None:
    """``<conn>__queueServiceUri`` + DefaultAzureCredential (managed identity from azsim) on HTTPS Azurite."""
    from azsim.testing import local_cloud
    from azsim.up import ENV_FILE

    with local_cloud(tmp_path / "azsim") as cloud:
        # Azurite serves accounts by path: the service URI names devstoreaccount1
        queue_endpoint = cloud["AZSIM_QUEUE_ENDPOINT"].rstrip("/") + "/devstoreaccount1"
        env = {"IdentityStorage__queueServiceUri": queue_endpoint}
        with cloud.apply():
            qsc = QueueServiceClient(account_url=queue_endpoint, credential=cloud.credential())
            qsc.create_queue("identity-items")
            env_file = cloud.workdir / ENV_FILE
            assert env_file.exists()
            with running_devhost(APP, tmp_path / ".devhost", env=env, env_file=env_file) as dh:
                qsc.get_queue_client("identity-items").send_message(base64.b64encode(b"hi").decode())
                got = _receive_all(qsc, "identity-done", 1)
                assert [base64.b64decode(t) for t in got] == [b"seen hi"]
                assert f"polling queue 'identity-items' on {queue_endpoint} (identity)" in dh.log_text()
