"""The devhost CLI and configuration: readiness line, SIGTERM, settings precedence, inspection commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from devhost.settings import (
    SettingsError,
    load_host_config,
    parse_timespan,
    resolve_app_settings,
    resolve_binding_value,
)
from devhost.testing import running_devhost

REPO = Path(__file__).resolve().parents[2]
WEB_APP = Path(__file__).parent / "apps_front" / "web_app"


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "devhost", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )


# -- configuration -------------------------------------------------------------------------------


def test_host_json_settings(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(
        json.dumps(
            {
                "version": "2.0",
                "extensions": {
                    "http": {"routePrefix": "/v1/"},
                    "durableTask": {
                        "hubName": "Hub1",
                        "maxConcurrentActivityFunctions": 3,
                        "maxConcurrentOrchestratorFunctions": 2,
                    },
                    "queues": {
                        "maxDequeueCount": 2,
                        "maxPollingInterval": "00:00:02",
                        "visibilityTimeout": 1500,
                    },
                },
            }
        )
    )
    cfg = load_host_config(tmp_path)
    assert (cfg.route_prefix, cfg.hub_name) == ("v1", "Hub1")
    assert (cfg.max_concurrent_activities, cfg.max_concurrent_orchestrations) == (3, 2)
    assert (cfg.queues.max_dequeue_count, cfg.queues.max_polling_interval, cfg.queues.visibility_timeout) == (
        2,
        2.0,
        1.5,
    )
    assert load_host_config(tmp_path / "missing").route_prefix == "api"  # defaults without host.json
    assert parse_timespan("1.02:03:04.5", where="x") == 93784.5


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (
            '{"extensions": {"queues": {"maxDequeueCount": "5"}}}',
            "extensions.queues.maxDequeueCount: expected an integer",
        ),
        (
            '{"extensions": {"queues": {"maxPollingInterval": "soon"}}}',
            "maxPollingInterval: expected a TimeSpan",
        ),
        ('{"extensions": {"durableTask": {"maxConcurrentActivityFunctions": 0}}}', "expected >= 1"),
        ("{not json", "not valid JSON at line 1"),
    ],
)
def test_host_json_errors_name_the_field(tmp_path: Path, content: str, needle: str) -> None:
    (tmp_path / "host.json").write_text(content)
    with pytest.raises(SettingsError) as err:
        load_host_config(tmp_path)
    assert needle in str(err.value) and "host.json" in str(err.value)


def test_app_settings_precedence(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text(
        json.dumps({"IsEncrypted": False, "Values": {"A": "file", "B": "file", "C": "file"}})
    )
    (tmp_path / "local.settings.sample.json").write_text(json.dumps({"Values": {"SAMPLE": "x"}}))
    env_file = tmp_path / "azsim.env"
    env_file.write_text("# written by azsim\nC=envfile\nexport D='quoted'\n\n")
    s = resolve_app_settings(tmp_path, settings_file=None, env_file=env_file, environ={"B": "process"})
    # file < process environment (Core Tools skips those) < env file; the sample file is never read
    assert s.values == {"A": "file", "C": "envfile", "D": "quoted"}
    assert s.skipped_from_file == ["B"]


def test_settings_errors(tmp_path: Path) -> None:
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps({"Values": {"PORT": 80}}))
    with pytest.raises(SettingsError, match=r"Values\.PORT: expected a string"):
        resolve_app_settings(tmp_path, settings_file=bad, env_file=None, environ={})
    with pytest.raises(SettingsError, match="does not exist"):
        resolve_app_settings(tmp_path, settings_file=tmp_path / "nope.json", env_file=None, environ={})
    env_file = tmp_path / "bad.env"
    env_file.write_text("JUSTAWORD\n")
    with pytest.raises(SettingsError, match=r"bad\.env:1: expected KEY=VALUE"):
        resolve_app_settings(tmp_path, settings_file=None, env_file=env_file, environ={})
    with pytest.raises(SettingsError, match="refers to app setting 'NOT_SET_ANYWHERE'"):
        resolve_binding_value("%NOT_SET_ANYWHERE%", function_name="f", field_name="queueName")


# -- the start command ---------------------------------------------------------------------------


def test_start_settings_env_file_readiness_and_sigterm(tmp_path: Path) -> None:
    settings = tmp_path / "my.settings.json"
    settings.write_text(json.dumps({"Values": {"GREETING_SOURCE": "settings"}}))
    env_file = tmp_path / "overlay.env"
    env_file.write_text("OVERLAY=yes\n")
    with running_devhost(WEB_APP, tmp_path / "wd", env_file=env_file, settings_file=settings) as dh:
        ready = [line for line in dh.log_text().splitlines() if line.startswith("devhost ready: ")]
        assert ready == [f"devhost ready: {dh.base_url}"]
        assert requests.get(dh.url("api/hello/x"), timeout=10).status_code == 200
        proc = dh.proc
        assert proc is not None
        code = dh.stop()
    assert code == 0  # SIGTERM → clean stop
    assert "devhost stopped" in dh.log_text()


def test_start_fails_clearly_on_a_bad_app(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "function_app.py").write_text("raise RuntimeError('broken import')\n")
    r = _cli("start", "--app-dir", str(app), "--workdir", str(tmp_path / "wd"), "--port", "0")
    assert r.returncode == 2
    assert "broken import" in r.stderr
    assert "devhost ready" not in r.stdout


# -- inspection commands -------------------------------------------------------------------------


def test_instances_status_history_purge(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    with running_devhost(WEB_APP, wd) as dh:
        requests.post(dh.url("api/start/greet/cli-1"), json={"name": "CLI"}, timeout=30)
        requests.post(dh.url("api/start/approval/cli-2"), timeout=30)
        deadline = time.monotonic() + 20
        while (
            requests.get(dh.url("runtime/webhooks/durabletask/instances/cli-1"), timeout=10).status_code
            != 200
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    args = ["--app-dir", str(WEB_APP), "--workdir", str(wd)]
    r = _cli("instances", *args)
    assert r.returncode == 0, r.stderr
    lines = {line.split("\t")[0]: line.split("\t") for line in r.stdout.splitlines()}
    assert lines["cli-1"][1:3] == ["greet", "Completed"]
    assert lines["cli-2"][1:3] == ["approval", "Pending"] or lines["cli-2"][2] == "Running"
    r = _cli("instances", *args, "--status", "Completed")
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == ["cli-1"]

    status = json.loads(_cli("status", "cli-1", *args).stdout)
    assert status["runtimeStatus"] == "Completed" and status["output"] == ["Hello CLI", "Hello again"]
    history = json.loads(_cli("history", "cli-1", *args).stdout)
    types = [e["EventType"] for e in history]  # raw DTFx events, integer EventType
    assert types[:2] == [12, 0] and 1 in types
    assert _cli("status", "nope", *args).returncode == 1

    r = _cli("purge", "cli-2", *args)
    assert r.returncode == 1 and "terminate it first" in r.stderr
    r = _cli("purge", "--all-completed", *args)
    assert r.returncode == 0 and "purged 1 instance" in r.stdout
    assert _cli("status", "cli-1", *args).returncode == 1
    r = _cli("instances", "--workdir", str(tmp_path / "none"), "--app-dir", str(WEB_APP))
    assert r.returncode == 2 and "no devhost work dir" in r.stderr


def test_kill_and_restart_keeps_instances(tmp_path: Path) -> None:
    with running_devhost(WEB_APP, tmp_path / "wd") as dh:
        assert requests.post(dh.url("api/start/approval/survivor"), timeout=30).status_code == 202
        url = dh.url("runtime/webhooks/durabletask/instances/survivor")
        assert requests.get(url, timeout=10).status_code == 202
        dh.kill()
        assert not dh.running
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=2)
        dh.restart()
        assert requests.get(url, timeout=10).json()["runtimeStatus"] in ("Pending", "Running")
        r = requests.post(f"{url}/raiseEvent/approve", json="after restart", timeout=10)
        assert r.status_code == 202
        deadline = time.monotonic() + 20
        while (r := requests.get(url, timeout=10)).status_code == 202:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert r.json()["output"] == {"approved": "after restart"}


def test_virtual_clock_flag(tmp_path: Path) -> None:
    with running_devhost(WEB_APP, tmp_path / "wd", virtual_clock=True) as dh:
        assert requests.post(dh.url("api/start/forever/vc-1"), timeout=30).status_code == 202
        url = dh.url("runtime/webhooks/durabletask/instances/vc-1")
        deadline = time.monotonic() + 10  # a one-hour timer: only a virtual clock finishes it in time
        while (r := requests.get(url, timeout=10)).status_code == 202:
            assert time.monotonic() < deadline, r.text
            time.sleep(0.05)
        assert r.json()["output"] == "timer fired"


# -- keys stay out of the log ----------------------------------------------------------------------


def test_require_keys_logs_key_file_and_names_but_no_key_value(tmp_path: Path) -> None:
    with running_devhost(WEB_APP, tmp_path / ".devhost", require_keys=True) as dh:
        fkey, master = dh.function_key, dh.master_key
        # Use the keys the way clients do (query and header), so request logging is exercised too.
        assert requests.get(dh.url(f"api/items/1?code={fkey}"), timeout=10).status_code == 200
        assert requests.get(dh.url("api/items/1"), headers={"x-functions-key": master}, timeout=10).ok
        assert requests.get(dh.url("api/items/1?code=not-a-key"), timeout=10).status_code == 401
        secrets = {"function key": fkey, "master key": master}
        for name, value in dh.keys()["systemKeys"].items():
            secrets[f"system key {name}"] = value
        log_text = dh.log_text()
    line = next((ln for ln in log_text.splitlines() if ln.startswith("devhost keys:")), None)
    assert line is not None, "devhost should say where its keys are"
    assert str(dh.workdir / "keys.json") in line
    for name in ("masterKey", "default", "durabletask_extension", "eventgrid_extension"):
        assert name in line, f"the key line should name {name}: {line}"
    leaked = [name for name, value in secrets.items() if value in log_text]
    assert not leaked, f"key values in devhost.log: {leaked}"
