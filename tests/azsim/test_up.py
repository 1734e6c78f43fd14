"""``python -m azsim up``: bad input, the env file, DefaultAzureCredential with only the env, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from azure.identity import DefaultAzureCredential
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from azsim.testing import DEFAULT_WORLD, REPO_ROOT, local_cloud

EXPECTED_KEYS = {
    "AZURE_TENANT_ID",
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_ARM_ENDPOINT",
    "AZURE_AUTHORITY_HOST",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "AzureWebJobsStorage",
    "AZSIM_BLOB_ENDPOINT",
    "AZSIM_QUEUE_ENDPOINT",
    "AZSIM_CONTROL_URL",
    "AZSIM_STORAGE_STEXPORTS_URL",
}


def _run_up(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "azsim", "up", "--workdir", str(tmp_path / "wd"), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_world_file_exits_2_naming_file_and_field(tmp_path):
    world = json.loads(DEFAULT_WORLD.read_text())
    world["virtualMachines"][0]["osType"] = "Solaris"
    bad = tmp_path / "bad-world.json"
    bad.write_text(json.dumps(world))
    result = _run_up(tmp_path, "--world", str(bad))
    assert result.returncode == 2
    assert str(bad) in result.stderr
    assert "$.virtualMachines[0].osType" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "wd" / "env").exists()


def test_world_file_that_is_not_json_exits_2(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"tenantId": ')
    result = _run_up(tmp_path, "--world", str(bad))
    assert result.returncode == 2
    assert "broken.json" in result.stderr and "not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_fault_file_exits_2(tmp_path):
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"rules": [{"match": {"action": "*"}, "effect": {"type": "nonsense"}}]}))
    result = _run_up(tmp_path, "--world", str(DEFAULT_WORLD), "--faults", str(faults))
    assert result.returncode == 2
    assert "faults.json" in result.stderr and "$.rules[0]" in result.stderr
    assert "Traceback" not in result.stderr


def test_env_file_has_every_setting(local_cloud_env):
    env = local_cloud_env
    assert set(env) >= EXPECTED_KEYS
    world = json.loads(DEFAULT_WORLD.read_text())
    assert env.tenant_id == world["tenantId"]
    assert env.subscription_id == world["subscriptions"][0]["id"]
    for key in ("AZURE_ARM_ENDPOINT", "AZSIM_BLOB_ENDPOINT", "AZSIM_QUEUE_ENDPOINT", "AZSIM_CONTROL_URL"):
        assert env[key].startswith("https://127.0.0.1:"), key
    assert env["IDENTITY_ENDPOINT"].startswith("http://127.0.0.1:")
    assert Path(env.ca_bundle).is_absolute() and Path(env.ca_bundle).exists()
    assert env["SSL_CERT_FILE"] == env.ca_bundle
    assert env.storage_account_url("stexports") == f"{env.blob_endpoint}/stexports"
    assert "BlobEndpoint=https://" in env["AzureWebJobsStorage"]
    # The file is shell-sourceable: sh reads back the same values.
    script = f'set -a; . {env.workdir / "env"}; printf %s "$AzureWebJobsStorage"'
    assert (
        subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout
        == env["AzureWebJobsStorage"]
    )


def test_default_credential_works_with_only_the_env_file(cloud_env):
    from azure.mgmt.resource.resources import ResourceManagementClient

    credential = DefaultAzureCredential()
    rgs = ResourceManagementClient(credential, cloud_env.subscription_id, base_url=cloud_env.arm_endpoint)
    assert rgs.resource_groups.get("rg-build").location == "westeurope"

    exports = BlobServiceClient(cloud_env.storage_account_url("stexports"), credential=credential)
    name = f"t-{uuid.uuid4().hex[:8]}"
    exports.create_container(name)
    assert name in [c.name for c in exports.list_containers()]


def test_azure_webjobs_storage_reaches_azurite(cloud_env):
    queues = QueueServiceClient.from_connection_string(cloud_env.storage_connection_string)
    queue = queues.get_queue_client(f"q-{uuid.uuid4().hex[:8]}")
    queue.create_queue()
    queue.send_message("hello")
    assert [m.content for m in queue.receive_messages()] == ["hello"]


def test_control_url_answers(cloud_env):
    with urllib.request.urlopen(cloud_env.control_url + "/state", timeout=10) as resp:
        assert resp.status == 200
        json.loads(resp.read())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_stops_everything(tmp_path):
    started = time.monotonic()
    with local_cloud(tmp_path / "wd") as cloud:
        startup = time.monotonic() - started
        up_pid = cloud.pid
        azurite_pid = int((cloud.workdir / "azurite.pid").read_text())
        assert up_pid and _alive(up_pid) and _alive(azurite_pid)
        os.kill(up_pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while _alive(azurite_pid) or (cloud.workdir / "env").exists():
            assert time.monotonic() < deadline, "azsim up did not stop its children after SIGTERM"
            time.sleep(0.05)
        assert not (cloud.workdir / "env").exists(), "env file must go away when the cloud stops"
    print(f"local cloud start-up: {startup:.2f} s")
    assert startup < 30


def test_local_cloud_surfaces_the_start_error(tmp_path):
    from azsim.testing import LocalCloudError

    world = json.loads(DEFAULT_WORLD.read_text())
    del world["tenantId"]
    bad = tmp_path / "no-tenant.json"
    bad.write_text(json.dumps(world))
    started = time.monotonic()
    try:
        with local_cloud(tmp_path / "wd", world=bad):
            raise AssertionError("a world without tenantId must not start")
    except LocalCloudError as e:
        message = str(e)
    assert "status 2" in message and "$.tenantId" in message and "no-tenant.json" in message
    assert time.monotonic() - started < 15


def test_up_stops_when_its_supervisor_goes_away(tmp_path):
    """With --exit-on-stdin-eof (what local_cloud passes), a dead test process never leaks a cloud."""
    wd = tmp_path / "wd"
    args = ["--world", str(DEFAULT_WORLD), "--workdir", str(wd), "--time-scale", "0", "--exit-on-stdin-eof"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "azsim", "up", *args],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (wd / "env").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "azsim up did not start"
            time.sleep(0.05)
        azurite_pid = int((wd / "azurite.pid").read_text())
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(20) == 0
        assert not _alive(azurite_pid)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
