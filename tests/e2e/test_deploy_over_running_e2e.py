"""End to end: deploying this code over a capture that an earlier version left running.

The fixture (tests/fixtures/README.md) is the durable store of a real capture recorded mid-flight by the
code before orchestration versioning (commit f4ab62e): the capture waits on its image version and two
VHD exports, each of which waits on a durable timer. devhost is started with this code on that store, as
a deployment restarts the host on the task hub it finds. Every instance of the old run must stop at its
next replay with the advice-style refusal, without one more ARM write, and a new capture of the same VM
must then run normally.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devhost.engine.dump import dump_store, load_store
from orchestrators.versioning import PIPELINE_VERSION
from tests.support.http import wait_for
from tests.support.policy import TERMINAL
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "pre_versioning_capture.json"
WRITES = ("PUT", "POST", "PATCH", "DELETE")


def _started_versions(stack: Stack, instance_id: str) -> list[Any]:
    """``ExecutionStarted.Version`` of the instance's executions, read from devhost's store (the status API
    does not show it, as the extension's does not)."""
    tables = dump_store(stack.devhost.workdir / "durable.sqlite3")
    events = [json.loads(r["event"]) for r in tables["history"] if r["instance_id"] == instance_id]
    return [e.get("Version") for e in events if e["EventType"] == 0]


def test_a_capture_left_running_by_the_previous_code_is_refused_and_a_new_one_completes(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    recorded = json.loads(FIXTURE.read_text())
    capture_id = recorded["capture"]
    old = {row["instance_id"]: row for row in recorded["tables"]["instances"]}
    assert {r["runtime_status"] for r in old.values()} == {"Running"}  # the recording is mid-flight
    assert len(old) == 4  # capture_image, publish_version and two export_disk
    for row in recorded["tables"]["history"]:
        event = json.loads(row["event"])
        if event["EventType"] == 0:
            assert event["Version"] == ""  # recorded before versioning: the refusal is what runs

    # The deployment: the new code starts on the store the old host left (make_stack's first work dir).
    load_store(tmp_path / "stack0" / "devhost" / "durable.sqlite3", recorded["tables"])
    stack = make_stack()

    status = stack.wait(capture_id, timeout=60)
    assert status["runtimeStatus"] == "Failed", status
    error = status["error"]
    assert error["code"] == "UnreplayableHistory" and error["step"] == "deploy", error
    assert capture_id in error["message"] and "before orchestration versioning" in error["message"]
    assert f"this code (version {PIPELINE_VERSION})" in error["message"]
    assert "Drain running captures" in error["advice"] and "janitor" in error["advice"]

    def old_run_ended() -> dict[str, Any] | None:
        by_id = {i["instanceId"]: i for i in stack.instances() if i["instanceId"] in old}
        return by_id if all(i["runtimeStatus"] in TERMINAL for i in by_id.values()) else None

    by_id = wait_for("every instance of the old run to end", old_run_ended, timeout=30)
    for instance_id in old:  # the sub-orchestrations of the old run are refused too
        instance = by_id[instance_id]
        assert instance["runtimeStatus"] == "Failed", instance
        assert "UnreplayableHistory" in json.dumps(instance.get("output")), instance
    writes = [r for r in stack.sim("requests")["value"] if r["method"] in WRITES]
    assert writes == [], writes  # nothing of the old run touched Azure after the deployment

    # A new capture of the same VM (the same instance id) runs on the new code, stamped with its version.
    done = stack.run(stack.request("vm-web"), timeout=150)
    assert done["runtimeStatus"] == "Completed", done.get("error")
    assert done["id"] == capture_id
    # Completing at all proves it: a capture of another version would have refused itself.
    assert _started_versions(stack, capture_id) == [PIPELINE_VERSION]
    assert len(done["result"]["exportedBlobs"]) == 2
