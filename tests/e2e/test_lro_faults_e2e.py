"""Long-running operations that Azure accepts and then fails, and concurrent ``auto`` versions.

Fault suite: every LRO of a capture fails once, as ARM fails it (accepted with an empty body, the
operation ends ``Failed`` with a transient code later), one at a time; the capture still completes
with exactly one version and leaves nothing (no snapshot, no active disk access). Generalize is
synchronous in Azure (no LRO to fail), so its case is a transient 500 that outlasts the SDK's own
retries. Plus: a terminal failure after generalize names the VM's state and every leftover, a copy
that fails after the version is Completed says so, and six concurrent ``auto`` captures into one
definition get six distinct versions.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import FAST_POLICY, QUEUE_SETTINGS, REPO_ROOT, WORLD, Stack

from azsim.testing import local_cloud
from devhost.testing import running_devhost

pytestmark = pytest.mark.e2e

MC = "Microsoft.Compute"
VM = "vm-web-3"  # Linux, one small OS disk: the fastest capture of the example world
DEFINITION = f"{VM}-def"


def _lro_failure(
    action: str, code: str = "InternalExecutionError", message: str = "Please retry later (azsim fault)."
) -> dict[str, Any]:
    return {
        "name": "lro-once",
        "match": {"action": action},
        "effect": {"type": "lroFailure", "code": code, "message": message},
        "count": 1,
    }


FAULTS: dict[str, dict[str, Any]] = {
    "deallocate": _lro_failure(f"{MC}/virtualMachines/deallocate/action"),
    # Synchronous in Azure: four 500s outlast the SDK's 3 retries and reach the orchestrator's retry.
    "generalize": {
        "name": "lro-once",
        "match": {"action": f"{MC}/virtualMachines/generalize/action"},
        "effect": {"type": "status", "status": 500, "code": "InternalExecutionError"},
        "count": 4,
    },
    "snapshot-put": _lro_failure(f"{MC}/snapshots/write"),
    "definition-put": _lro_failure(f"{MC}/galleries/images/write"),
    "version-put": _lro_failure(f"{MC}/galleries/images/versions/write"),
    "grant-access": _lro_failure(f"{MC}/snapshots/beginGetAccess/action"),
    "revoke-access": _lro_failure(f"{MC}/snapshots/endGetAccess/action"),
    "snapshot-delete": _lro_failure(f"{MC}/snapshots/delete"),
}


def _run_snapshots(stack: Stack, run_id: str) -> list[str]:
    return [
        s.name
        for s in stack.compute().snapshots.list_by_resource_group("rg-build")
        if (s.tags or {}).get("image-pipeline:run-id") == run_id
    ]


def _versions(stack: Stack, definition: str = DEFINITION) -> list[Any]:
    return list(
        stack.compute().gallery_image_versions.list_by_gallery_image("rg-images", "galContoso", definition)
    )


def _faulted_requests(stack: Stack) -> list[dict[str, Any]]:
    return [e for e in stack.sim("requests")["value"] if e.get("fault")]


@pytest.mark.parametrize("lro", sorted(FAULTS))
def test_each_lro_failing_once_still_completes_with_one_version_and_nothing_left(
    make_stack, lro: str
) -> None:
    stack = make_stack(faults={"rules": [FAULTS[lro]]})
    status = stack.run(stack.request(VM, version="auto"), timeout=120)
    assert status["runtimeStatus"] == "Completed", json.dumps(status.get("error"), indent=1)
    assert _faulted_requests(stack), "the fault never fired: the test proved nothing"
    versions = _versions(stack)
    assert [v.name for v in versions] == [status["result"]["imageVersion"]]
    assert versions[0].provisioning_state == "Succeeded"
    assert _run_snapshots(stack, status["runId"]) == []
    assert stack.active_access() == []
    assert stack.vm_state(VM)["generalized"] is True


def test_terminal_version_failure_after_generalize_names_vm_state_and_leftovers(make_stack) -> None:
    rule = _lro_failure(
        f"{MC}/galleries/images/versions/write",
        code="InvalidParameter",
        message="The source snapshot is not supported (azsim fault).",
    )
    stack = make_stack(faults={"rules": [rule]})
    status = stack.run(stack.request(VM, version="auto"), timeout=120)
    assert status["runtimeStatus"] == "Failed"
    err = status["error"]
    assert err["step"] == "publish" and err["code"] == "InvalidParameter", err
    assert "generalized" in err["message"] and "can no longer be started" in err["message"]
    assert "No snapshot was left behind" in err["message"], err["message"]
    assert _run_snapshots(stack, status["runId"]) == []
    assert [v.name for v in _versions(stack)] == []  # the failed create made nothing (or it was deleted)
    assert stack.active_access() == []


def test_terminal_snapshot_failure_removes_the_snapshots_already_made(make_stack) -> None:
    rule = _lro_failure(
        f"{MC}/snapshots/write", code="BadRequest", message="The disk cannot be snapshotted (azsim fault)."
    )
    rule["match"]["path"] = "-lun0$"
    stack = make_stack(faults={"rules": [rule]})
    status = stack.run(stack.request("vm-web-2", version="auto", export=False), timeout=120)
    assert status["runtimeStatus"] == "Failed"
    err = status["error"]
    assert (err["step"], err["code"], err.get("azureCode")) == ("snapshot", "BadRequest", "BadRequest"), err
    assert "cannot be snapshotted" in err["message"] and "Unexpected" not in err["message"]
    assert "is generalized" in err["message"] and "No snapshot was left behind" in err["message"]
    assert _run_snapshots(stack, status["runId"]) == []  # the OS disk's snapshot was deleted too
    assert not status.get("imageVersionId")  # the capture never reached publish


def test_copy_failing_after_the_version_completed_says_the_version_is_usable(make_stack) -> None:
    stack = make_stack(
        faults={
            "rules": [
                {
                    "match": {"copy": {"account": "stexports", "blob": "OsDisk\\.vhd$"}},
                    "effect": {"type": "copy", "outcome": "fail"},
                }
            ]
        }
    )
    status = stack.run(stack.request(VM, version="auto"), timeout=120)
    assert status["runtimeStatus"] == "Failed"
    err = status["error"]
    assert err["code"] == "VhdExportFailed"
    assert status["imageVersionState"] == "completed"
    vid = status["imageVersionId"]
    assert f"The image version {vid} is Completed and usable" in err["message"]
    assert "InternalError" in err["message"] and "StorageErrorCode" not in err["message"]
    assert "image version is usable" in err["advice"]
    assert [v.provisioning_state for v in _versions(stack)] == ["Succeeded"]
    assert stack.active_access() == []


def test_failed_deallocation_fails_at_once_with_azures_code_before_generalize(make_stack) -> None:
    rule = _lro_failure(
        f"{MC}/virtualMachines/deallocate/action",
        code="OperationNotAllowed",
        message="Allocation failed: the VM is locked (azsim fault).",
    )
    stack = make_stack(faults={"rules": [rule]})
    status = stack.run(stack.request(VM, version="auto", export=False), timeout=120)
    assert status["runtimeStatus"] == "Failed"
    err = status["error"]
    assert (err["step"], err["code"]) == ("deallocate", "OperationNotAllowed"), err
    assert "the VM is locked" in err["message"] and "not generalized" in err["advice"]
    stages = {s["name"]: s for s in status["stages"]}
    # Not the 60 s power-state timeout of the fast policy: the operation's outcome was read.
    assert stages["deallocate"]["seconds"] < 30, stages["deallocate"]
    assert stack.vm_state(VM)["generalized"] is False


def test_auto_whose_next_patch_overflows_32_bits_fails_in_preflight(tmp_path: Path) -> None:
    full = {
        "name": "galContoso",
        "resourceGroup": "rg-images",
        "location": "westeurope",
        "images": [
            {
                "name": "full-def",
                "osType": "Linux",
                "osState": "Generalized",
                "hyperVGeneration": "V2",
                "versions": [{"name": "0.0.2147483647", "targetRegions": ["westeurope"]}],
            }
        ],
    }
    with _clone_stack(tmp_path, [full]) as stack:
        body = stack.request(
            VM, export=False, version="auto", imageDefinition={"name": "full-def", "createIfMissing": False}
        )
        status = stack.run(body, timeout=90)
        assert status["runtimeStatus"] == "Failed"
        err = status["error"]
        assert err["step"] == "preflight" and "2147483647" in err["message"], err
        assert stack.vm_state(VM)["powerState"] == "running"
        assert status["generalized"] is False


# --- six concurrent "auto" captures into one definition ---------------------------------------

CONCURRENT = 6


def _world_with_clones(path: Path, galleries: list[dict[str, Any]] | None = None) -> Path:
    world = json.loads(WORLD.read_text())
    world["galleries"] = galleries or []
    base = next(v for v in world["virtualMachines"] if v["name"] == VM)
    for i in range(CONCURRENT):
        clone = json.loads(json.dumps(base))
        clone["name"] = f"vm-par-{i}"
        clone["osDisk"]["name"] = f"vm-par-{i}_OsDisk"
        world["virtualMachines"].append(clone)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(world))
    return path


@contextlib.contextmanager
def _clone_stack(workdir: Path, galleries: list[dict[str, Any]] | None = None) -> Iterator[Stack]:
    world = _world_with_clones(workdir / "world.json", galleries)
    with local_cloud(workdir / "azsim", world=world, time_scale=0.003) as cloud:
        env = {**dict(cloud), **FAST_POLICY, **QUEUE_SETTINGS}
        with running_devhost(REPO_ROOT, workdir / "devhost", env=env) as dh:
            stack = Stack(cloud=cloud, devhost=dh, workdir=workdir)
            with cloud.apply():
                yield stack
            stack.assert_no_secrets()


def test_six_concurrent_auto_captures_into_one_definition_get_distinct_versions(tmp_path: Path) -> None:
    shared_def = {"name": "shared-def", "publisher": "contoso", "offer": "par", "sku": "gen2"}
    with _clone_stack(tmp_path) as stack:
        ids = []
        for i in range(CONCURRENT):
            body = stack.request(f"vm-par-{i}", export=False, version="auto", imageDefinition=shared_def)
            code, answer, _ = stack.post(body)
            assert code == 202, answer
            ids.append(answer["id"])
        wait: Callable[[str], dict[str, Any]] = lambda cid: stack.wait(cid, timeout=240)  # noqa: E731
        with concurrent.futures.ThreadPoolExecutor(CONCURRENT) as pool:
            statuses = list(pool.map(wait, ids))
        failed = [s.get("error") for s in statuses if s["runtimeStatus"] != "Completed"]
        assert not failed, json.dumps(failed, indent=1)
        got = sorted(s["result"]["imageVersion"] for s in statuses)
        assert len(set(got)) == CONCURRENT, got
        listed = _versions(stack, "shared-def")
        assert sorted(v.name for v in listed) == got
        assert all(v.provisioning_state == "Succeeded" for v in listed)
        # Each version was made from its own VM's snapshot.
        owners = {v.tags["image-pipeline:source-vm"].rsplit("/", 1)[-1] for v in listed}
        assert owners == {f"vm-par-{i}" for i in range(CONCURRENT)}
        puts = [
            e["status"]
            for e in stack.sim("requests")["value"]
            if e.get("action", "").lower() == "microsoft.compute/galleries/images/versions/write"
        ]
        # One accepted create per capture; the rest (if any) were refused 409: another capture's version.
        assert puts.count(201) == CONCURRENT and set(puts) <= {201, 409}, puts
