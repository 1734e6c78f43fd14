"""Specialized captures end to end (devhost + azsim + Azurite, real SDKs): the VM is never generalized.

Each test ends with the secret scan of the ``make_stack``/``stack`` fixtures (tests/e2e/conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from azure.mgmt.compute.models import Gallery, GalleryImage, GalleryImageIdentifier

from tests.support.stack import Stack, running_stack
from tests.support.worlds import RELEASE_STAGES, WORLD

pytestmark = pytest.mark.e2e

REGIONS = [{"name": "westeurope"}, {"name": "eastus2"}]
# 94 GiB of disks: replicate faster than Azure's ~40 MB/s so the tests stay short.
FAST_REPLICATION = {"replication_mb_per_s": 400}


def _specialized(stack: Stack, vm: str, **overrides: Any) -> dict[str, Any]:
    body = stack.request(vm, export=False, targetRegions=REGIONS, captureMode="specialized", **overrides)
    del body["prepare"]
    return body


def _vm_actions(stack: Stack, vm: str) -> list[str]:
    """The POST actions ARM saw on the VM (deallocate, start, generalize, runCommand...), in order."""
    tail = f"/virtualMachines/{vm}/"
    return [
        r["path"].rsplit("/", 1)[1]
        for r in stack.sim("requests")["value"]
        if r["method"] == "POST" and tail in r["path"]
    ]


def _order(stack: Stack, vm: str) -> list[str]:
    """The VM's actions and the snapshot creations (PUT) in the order ARM saw them."""
    out = []
    for r in stack.sim("requests")["value"]:
        if r["method"] == "POST" and f"/virtualMachines/{vm}/" in r["path"]:
            out.append(r["path"].rsplit("/", 1)[1])
        elif r["method"] == "PUT" and "/snapshots/" in r["path"]:
            out.append("snapshot")
    return out


def _definition_state(stack: Stack, name: str) -> str:
    state = stack.compute().gallery_images.get("rg-images", "galContoso", name).os_state
    return str(getattr(state, "value", state))


def _assert_versions_specialized(stack: Stack, definition: str) -> None:
    version = stack.compute().gallery_image_versions.get(
        "rg-images", "galContoso", definition, "1.0.0", expand="ReplicationStatus"
    )
    regions = {s.region.replace(" ", "").lower(): s.state for s in version.replication_status.summary or []}
    assert regions == {"westeurope": "Completed", "eastus2": "Completed"}, regions
    # An image version's OS state is its definition's (the version has no osState of its own).
    assert _definition_state(stack, definition) == "Specialized"


def test_crash_consistent_capture_of_a_running_linux_vm_keeps_it_running(make_stack: Any) -> None:
    stack = make_stack(latency=FAST_REPLICATION)
    status = stack.run(_specialized(stack, "vm-web"))
    assert status["runtimeStatus"] == "Completed", status.get("error")
    assert (status["captureMode"], status["consistency"], status["sourceState"]) == (
        "specialized",
        "crash-consistent",
        "untouched",
    )
    result = status["result"]
    assert (result["captureMode"], result["consistency"], result["sourceState"]) == (
        "specialized",
        "crash-consistent",
        "untouched",
    )
    stages = {s["name"]: s["state"] for s in status["stages"]}
    assert stages == {
        "preflight": "succeeded",
        "deallocate": "skipped",
        "snapshot": "succeeded",
        "restart": "skipped",
        "publish": "succeeded",
        "export": "skipped",
        **dict.fromkeys(RELEASE_STAGES, "skipped"),
        "cleanup": "succeeded",
    }, stages
    assert status["generalized"] is False and "irreversibleNote" not in status
    _assert_versions_specialized(stack, "vm-web-def")
    # Azure's side: the VM was never touched (no deallocate, generalize, start or Run Command).
    assert _vm_actions(stack, "vm-web") == []
    vm = stack.vm_state("vm-web")
    assert (vm["powerState"], vm["generalized"], vm["guestState"]) == ("running", False, "normal")


def test_stopped_consistency_deallocates_for_the_snapshots_then_starts_the_vm_again(make_stack: Any) -> None:
    stack = make_stack(latency=FAST_REPLICATION)
    status = stack.run(_specialized(stack, "vm-web-2", consistency="stopped"))
    assert status["runtimeStatus"] == "Completed", status.get("error")
    assert (status["consistency"], status["sourceState"]) == ("stopped", "untouched")
    stages = {s["name"]: s["state"] for s in status["stages"]}
    assert stages["deallocate"] == stages["restart"] == "succeeded", stages
    assert "prepare" not in stages and "generalize" not in stages
    # Deallocated before every snapshot, started once they were all taken (not after the replication).
    order = [a for a in _order(stack, "vm-web-2") if a in ("deallocate", "start", "snapshot")]
    assert order == ["deallocate", "snapshot", "snapshot", "start"], order
    assert "generalize" not in _vm_actions(stack, "vm-web-2")
    vm = stack.vm_state("vm-web-2")
    assert (vm["powerState"], vm["generalized"]) == ("running", False)
    _assert_versions_specialized(stack, "vm-web-2-def")


def test_a_generalized_existing_definition_is_refused_in_preflight(stack: Stack) -> None:
    compute = stack.compute()
    compute.galleries.begin_create_or_update(
        "rg-images", "galContoso", Gallery(location="westeurope")
    ).result()
    compute.gallery_images.begin_create_or_update(
        "rg-images",
        "galContoso",
        "web-generalized",
        GalleryImage(  # type: ignore[call-overload]  # flattened properties: accepted at runtime
            location="westeurope",
            os_type="Linux",
            os_state="Generalized",
            hyper_v_generation="V2",
            identifier=GalleryImageIdentifier(publisher="contoso", offer="web", sku="gen"),
        ),
    ).result()
    before = len(stack.sim("requests")["value"])
    definition = {"name": "web-generalized", "createIfMissing": False}
    status = stack.run(_specialized(stack, "vm-web", imageDefinition=definition, consistency="stopped"))
    assert status["runtimeStatus"] == "Failed"
    err = status["error"]
    assert (err["step"], err["code"]) == ("preflight", "PreflightFailed")
    assert "holds Generalized images but the capture makes a specialized image" in err["message"]
    assert "osState Specialized" in err["message"] and '"inPlace"' in err["message"]
    # Nothing done: ARM saw reads only since the definition was made, and the VM still runs.
    writes = [r for r in stack.sim("requests")["value"][before:] if r["method"] not in ("GET", "HEAD")]
    assert writes == [], writes
    assert (stack.vm_state("vm-web")["powerState"], status["generalized"]) == ("running", False)
    assert [
        v.name
        for v in compute.gallery_image_versions.list_by_gallery_image(
            "rg-images", "galContoso", "web-generalized"
        )
    ] == []


def test_a_specialized_existing_definition_is_refused_for_in_place(stack: Stack) -> None:
    first = stack.run(_specialized(stack, "vm-web-3", imageDefinition={"name": "spec-def", **_ident()}))
    assert first["runtimeStatus"] == "Completed", first.get("error")
    body = stack.request("vm-web", export=False, targetRegions=REGIONS, captureMode="inPlace")
    body["imageDefinition"] = {"name": "spec-def", "createIfMissing": False}
    status = stack.run(body)
    assert status["runtimeStatus"] == "Failed"
    assert "holds Specialized images but the capture makes a generalized image" in status["error"]["message"]
    assert '"specialized"' in status["error"]["message"]
    assert (status["captureMode"], status["sourceState"], status["generalized"]) == (
        "inPlace",
        "untouched",
        False,
    )
    assert stack.vm_state("vm-web")["powerState"] == "running" and _vm_actions(stack, "vm-web") == []


def _ident() -> dict[str, str]:
    return {"publisher": "contoso", "offer": "web", "sku": "spec"}


def test_intake_of_the_mode_fields(stack: Stack) -> None:
    def errors(body: dict[str, Any]) -> dict[str, str]:
        code, answer, _ = stack.post(body)
        assert code == 400, answer
        return {e["field"]: e["message"] for e in answer["errors"]}

    unknown = errors(stack.request("vm-web", captureMode="copy"))
    assert "must be one of the capture modes" in unknown["captureMode"]
    assert '"inPlace" generalizes the VM itself' in unknown["captureMode"]
    assert '"specialized" leaves the VM as it is' in unknown["captureMode"]
    assert '"clone" leaves the VM as it is' in unknown["captureMode"]
    in_place = errors(stack.request("vm-web", captureMode="inPlace", consistency="crash"))
    assert set(in_place) == {"consistency"} and "only with captureMode" in in_place["consistency"]
    deprovision = errors(stack.request("vm-web", captureMode="specialized", prepare="deprovision"))
    assert set(deprovision) == {"prepare"}
    bad = errors(_specialized(stack, "vm-web", consistency="application"))
    assert set(bad) == {"consistency"}
    no_prepare = stack.request("vm-web", captureMode="inPlace")
    del no_prepare["prepare"]
    assert set(errors(no_prepare)) == {"prepare"}
    # Nothing was started.
    assert stack.capture_instances("vm-web") == []


def test_cancel_after_the_deallocate_starts_the_vm_again(make_stack: Any) -> None:
    # Snapshots that take a while, so the cancel arrives while the VM is deallocated for them.
    stack = make_stack(latency={"snapshot_base_s": 2000})
    code, answer, _ = stack.post(_specialized(stack, "vm-web", consistency="stopped"))
    assert code == 202, answer
    cid = answer["id"]
    stack.wait(cid, until=lambda st: {s["name"]: s["state"] for s in st["stages"]}["snapshot"] == "running")
    assert stack.vm_state("vm-web")["powerState"] in ("deallocating", "deallocated")
    code, answer = stack.cancel(cid, {"reason": "not now"})
    assert code == 202, answer
    status = stack.wait(cid)
    assert status["runtimeStatus"] == "Canceled", json.dumps(status, indent=1)
    assert any("vm-web started again" in c for c in status["cleaned"]), status["cleaned"]
    assert status["generalized"] is False
    vm = stack.vm_state("vm-web")
    assert (vm["powerState"], vm["generalized"]) == ("running", False)
    assert _vm_actions(stack, "vm-web")[-1] == "start"


def test_a_failure_after_the_deallocate_starts_the_vm_again(make_stack: Any) -> None:
    rule = {
        "name": "snapshot-fails",
        "match": {"action": "Microsoft.Compute/snapshots/write", "path": "-lun0$"},
        "effect": {"type": "lroFailure", "code": "BadRequest", "message": "Cannot snapshot (azsim fault)."},
        "count": 1,
    }
    stack = make_stack(faults={"rules": [rule]})
    status = stack.run(_specialized(stack, "vm-web-2", consistency="stopped"))
    assert status["runtimeStatus"] == "Failed"
    assert (status["error"]["step"], status["error"]["code"]) == ("snapshot", "BadRequest"), status["error"]
    assert any("vm-web-2 started again" in c for c in status["cleaned"]), status["cleaned"]
    vm = stack.vm_state("vm-web-2")
    assert (vm["powerState"], vm["generalized"]) == ("running", False)
    assert [a for a in _vm_actions(stack, "vm-web-2") if a in ("deallocate", "start")] == [
        "deallocate",
        "start",
    ]


def test_event_grid_specialized_tag_captures_the_deallocated_vm_and_leaves_it_so(tmp_path: Path) -> None:
    world = json.loads(WORLD.read_text())
    vm = next(v for v in world["virtualMachines"] if v["name"] == "vm-web-4")
    vm["tags"] = {
        "image-pipeline:mode": "specialized",
        "image-pipeline:gallery": "rg-images/galContoso",
        "image-pipeline:definition": "web-4-spec",
        "image-pipeline:identifier": "contoso/web/spec4",
        "image-pipeline:regions": "westeurope",
    }
    (tmp_path / "world.json").write_text(json.dumps(world))
    with running_stack(tmp_path / "s", world=tmp_path / "world.json") as stack:
        code, answer = stack.deliver([stack.deallocation_event("vm-web-4")])
        assert code == 200, answer
        instances = _wait_instances(stack, "vm-web-4")
        status = stack.wait(instances[0]["instanceId"])
        assert status["runtimeStatus"] == "Completed", status.get("error")
        assert (status["captureMode"], status["consistency"], status["sourceState"]) == (
            "specialized",
            "stopped",
            "untouched",
        )
        stages = {s["name"]: s["state"] for s in status["stages"]}
        assert stages["deallocate"] == stages["restart"] == "skipped", stages
        assert _definition_state(stack, "web-4-spec") == "Specialized"
        assert _vm_actions(stack, "vm-web-4") == []
        assert stack.vm_state("vm-web-4")["powerState"] == "deallocated"
        stack.assert_no_secrets()


def _wait_instances(stack: Stack, vm: str) -> list[dict[str, Any]]:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = stack.capture_instances(vm)
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"no capture of {vm} started:\n{stack.devhost.log_tail(40)}")
