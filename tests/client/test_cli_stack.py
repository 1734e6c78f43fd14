"""The client against the local cloud (devhost + azsim + Azurite): its exit codes, ``--json`` and ``watch``
without a terminal, as a CI job runs it (a subprocess, stdout a pipe)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imagepipeline.api import CaptureApi
from imagepipeline.auth import key_auth
from imagepipeline.models import EXIT_API, EXIT_CANCELED, EXIT_COMPLETED, EXIT_FAILED, EXIT_USAGE
from tests.client.cli_support import json_out, run_cli
from tests.support.stack import Stack, running_trigger_stack

pytestmark = pytest.mark.e2e

# vm-cancel's export copies never finish, so the cancel always finds the capture copying.
STALL_VM_CANCEL = {
    "rules": [
        {
            "name": "vm-cancel-copies-stall",
            "match": {"copy": {"account": "^stexports$", "blob": "capture-vm-cancel-"}},
            "effect": {"type": "copy", "outcome": "stall"},
        }
    ]
}
FAST = ("--interval", "0.3")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The trigger stack with function keys required, as in Azure: every call below carries the key."""
    workdir = tmp_path_factory.mktemp("client")
    with running_trigger_stack(workdir, faults=STALL_VM_CANCEL, require_keys=True) as s:
        yield s
        s.assert_no_secrets()


def cli(stack: Stack, *args: str, key: str | None = None) -> Any:
    """The client with the app's function key (in IMAGEPIPELINE_KEY, as the CI examples pass it)."""
    real_key = stack.devhost.function_key
    proc = run_cli(*args, "--url", stack.devhost.base_url, env={"IMAGEPIPELINE_KEY": key or real_key})
    stack.seen += [proc.stdout, proc.stderr]
    assert real_key not in proc.stdout + proc.stderr
    return proc


def wait_for_status(stack: Stack, capture_id: str, until: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    api = CaptureApi(stack.devhost.base_url, key_auth(stack.devhost.function_key))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = api.status(api.status_url(capture_id)).body
        if until(body):
            return dict(body)
        time.sleep(0.3)
    raise AssertionError(f"{capture_id} never reached the state waited for; last: {body}")


def test_capture_watch_without_a_terminal_shows_stages_regions_and_disks(
    stack: Stack, tmp_path: Path
) -> None:
    request = tmp_path / "request.json"
    request.write_text(json.dumps(stack.request("vm-web")))
    proc = cli(stack, "capture", "--file", str(request), "--watch", *FAST)
    assert proc.returncode == EXIT_COMPLETED, proc
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("started capture-vm-web-")
    assert "\x1b[" not in proc.stdout  # no terminal: plain lines, no escape codes
    for expected in (
        "stage preflight: succeeded",
        "stage snapshot: running",
        "stage publish: running",
        "stage publish: succeeded",
        "region westeurope: Completed 100%",
        "region eastus2: Replicating",
        "region eastus2: Completed 100%",
        "region northeurope: Completed 100%",
        "disk os (vm-web_OsDisk): snapshot Succeeded, copy",
        "disk lun0 (vm-web_data0): snapshot",
        "Completed: image version /subscriptions/",
    ):
        assert any(expected in line for line in lines), f"{expected!r} not in:\n{proc.stdout}"
    # One line per change: each line is printed once, each prefixed with the elapsed time.
    shown = [line.split("] ", 1)[1] for line in lines[1:]]
    assert len(shown) == len(set(shown))
    assert all(line.startswith("[") and "s] " in line for line in lines[1:])

    capture_id = lines[0].split()[1]
    status = cli(stack, "status", capture_id, "--json")
    assert status.returncode == EXIT_COMPLETED
    body = json_out(status)
    assert body["id"] == capture_id and body["runtimeStatus"] == "Completed"
    assert [s["name"] for s in body["stages"]][:2] == ["preflight", "prepare"]
    assert {r["region"] for r in body["regions"]} == {"westeurope", "eastus2", "northeurope"}
    assert body["result"]["imageVersionId"].endswith("/images/vm-web-def/versions/1.0.0")


def test_a_vm_preflight_refuses_exits_1_with_the_error(stack: Stack) -> None:
    proc = cli(
        stack,
        *("capture", "--vm", stack.vm_id("vm-does-not-exist"), "--gallery", "rg-images/galContoso"),
        *("--definition", "nope-def", "--publisher", "p", "--offer", "o", "--sku", "s", "--prepare", "none"),
        *("--capture-mode", "inPlace"),
        *("--region", "westeurope", "--watch", "--json", *FAST),
    )
    assert proc.returncode == EXIT_FAILED, proc
    body = json_out(proc)
    assert body["runtimeStatus"] == "Failed"
    assert body["error"]["step"] == "read the VM" and body["error"]["code"] == "ResourceNotFound"
    assert "vm-does-not-exist" in body["error"]["message"]


def test_cancel_during_the_copy_exits_2(stack: Stack) -> None:
    proc = cli(
        stack,
        *("capture", "--vm", stack.vm_id("vm-cancel"), "--gallery", "rg-images/galContoso"),
        *("--definition", "vm-cancel-def", "--publisher", "contoso", "--offer", "t", "--sku", "vm-cancel"),
        *("--prepare", "deprovision", "--capture-mode", "inPlace", "--region", "westeurope", "--json"),
        *("--export-account", stack.cloud.storage_account_url("stexports"), "--export-container", "vhds"),
    )
    assert proc.returncode == EXIT_COMPLETED, proc  # started, not waited for
    answer = json_out(proc)
    assert set(answer) == {"id", "runId", "captureStatusUri", "cancelPostUri"}
    assert answer["captureStatusUri"].startswith(stack.devhost.base_url)
    wait_for_status(
        stack, answer["id"], lambda s: any(d.get("copyState") == "pending" for d in s.get("disks", []))
    )

    canceled = cli(stack, "cancel", answer["id"], "--reason", "pipeline stopped", "--watch", "--json", *FAST)
    assert canceled.returncode == EXIT_CANCELED, canceled
    body = json_out(canceled)
    assert body["runtimeStatus"] == "Canceled" and body["cancelReason"] == "pipeline stopped"
    assert stack.active_access() == []  # the export's disk access was revoked

    again = cli(stack, "cancel", answer["id"])
    assert again.returncode == EXIT_CANCELED and "CaptureAlreadyFinished" in again.stderr


def test_usage_errors_against_the_app_exit_3(stack: Stack) -> None:
    invalid = cli(stack, "capture", "--vm", "not-a-vm-id", "--prepare", "none", "--json")
    assert invalid.returncode == EXIT_USAGE, invalid
    assert "sourceVmId" in invalid.stderr
    assert any(e["field"] == "sourceVmId" for e in json_out(invalid)["body"]["errors"])
    unknown = cli(stack, "status", "capture-nothing-here-0123456789")
    assert unknown.returncode == EXIT_USAGE and "CaptureNotFound" in unknown.stderr


def test_list_shows_each_capture_with_its_outcome(stack: Stack, tmp_path: Path) -> None:
    request = tmp_path / "missing.json"
    missing = stack.request("vm-listed-missing", export=False, prepare="none")
    request.write_text(json.dumps(missing))
    run = cli(stack, "capture", "--file", str(request), "--watch", "--json", *FAST)
    assert run.returncode == EXIT_FAILED, run
    failed = json_out(run)
    listed = cli(stack, "list", "--json")
    assert listed.returncode == EXIT_COMPLETED, listed
    captures = json_out(listed)["captures"]
    base = stack.devhost.base_url
    assert all(c["captureStatusUri"] == f"{base}/api/captures/{c['id']}" for c in captures)
    assert not any(":" in c["id"] for c in captures)  # sub-orchestrations are not captures
    mine = [c for c in captures if c["id"] == failed["id"]]
    assert len(mine) == 1 and mine[0]["runtimeStatus"] == "Failed"
    assert mine[0]["sourceVmId"] == missing["sourceVmId"] and mine[0]["stage"] == "preflight"
    only_failed = json_out(cli(stack, "list", "--status", "Failed", "--json"))["captures"]
    assert failed["id"] in {c["id"] for c in only_failed}
    assert {c["runtimeStatus"] for c in only_failed} == {"Failed"}
    completed = json_out(cli(stack, "list", "--status", "Completed", "--json"))["captures"]
    assert failed["id"] not in {c["id"] for c in completed}
    table = cli(stack, "list", "--top", "500")
    assert f"{failed['id']}\tFailed\tpreflight\t" in table.stdout


def test_without_the_function_key_the_api_refuses_and_the_key_is_printed_nowhere(stack: Stack) -> None:
    url = stack.devhost.base_url
    refused = run_cli("list", "--url", url)
    assert refused.returncode == EXIT_API and "HTTP 401" in refused.stderr and "--key" in refused.stderr
    wrong = cli(stack, "list", key="not-the-key")
    assert wrong.returncode == EXIT_API and "HTTP 401" in wrong.stderr
    listed = cli(stack, "list", "--json")  # cli() asserts the key is in neither stdout nor stderr
    assert listed.returncode == EXIT_COMPLETED and isinstance(json_out(listed)["captures"], list)
