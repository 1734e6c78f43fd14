"""Capture runs: one capture id per VM, one run id per capture run, and every name derived from the run id.

Units for the naming (``shared.ids``), the backward-compatible ``CaptureInput.runId`` and the helpers
the HTTP endpoints use to find a run's sub-orchestrations; then two captures of the same VM through
devhost (real Durable SDK, scripted fake activities) checking what each run hands to its activities.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.contracts import CaptureInput
from shared.ids import (
    TAG_CAPTURE_ID,
    TAG_RUN_ID,
    capture_instance_id,
    export_blob_name,
    made_by_run,
    new_run_id,
    ownership_tags,
    snapshot_name,
)
from shared.status import CaptureProgress
from shared.status_view import run_id_of
from tests.orchestrators.fake_runs import REQUEST
from triggers.http_cancel import sub_instances
from triggers.starting import previous_run_id

LONG_VM = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-build/providers/"
    "Microsoft.Compute/virtualMachines/" + "golden-web-server-image-source-" * 3
)
NOW = datetime(2025, 5, 1, 10, 0, 7, 123456, tzinfo=UTC)


def test_run_id_is_the_capture_id_plus_the_utc_second() -> None:
    cid = capture_instance_id(REQUEST["sourceVmId"])
    assert new_run_id(cid, NOW) == f"{cid}-20250501100007"
    # A naive datetime is taken as UTC; another time zone is converted.
    assert new_run_id(cid, NOW.replace(tzinfo=None)) == f"{cid}-20250501100007"
    from datetime import timedelta, timezone

    assert new_run_id(cid, NOW.astimezone(timezone(timedelta(hours=2)))) == f"{cid}-20250501100007"


def test_run_ids_of_one_vm_never_repeat() -> None:
    cid = capture_instance_id(REQUEST["sourceVmId"])
    first = new_run_id(cid, NOW)
    # The same second again (a fast failing run, then a retry) or a clock behind: the next second.
    assert new_run_id(cid, NOW, first) == f"{cid}-20250501100008"
    assert new_run_id(cid, NOW.replace(hour=9), first) == f"{cid}-20250501100008"
    # Later: the clock wins. A previous run id of another shape (a pre-run-id capture) is ignored.
    assert new_run_id(cid, NOW.replace(minute=5), first) == f"{cid}-20250501100507"
    assert new_run_id(cid, NOW, cid) == first
    assert new_run_id(cid, NOW, "capture-other-0123456789-20990101000000") == first


def test_names_fit_azure_limits_for_the_longest_vm_name_and_lun() -> None:
    cid = capture_instance_id(LONG_VM)
    assert len(cid) == 59  # the instance id is unchanged (slug of 40)
    run = new_run_id(cid, NOW)
    assert len(run) == 74
    name = snapshot_name(run, 63)
    assert name == f"{run}-lun63" and len(name) == 80  # Microsoft.Compute/snapshots: at most 80
    assert snapshot_name(run, None) == f"{run}-os"
    assert export_blob_name(run, "vm_OsDisk") == f"{run}/vm_OsDisk.vhd"


def test_captures_from_before_run_ids_keep_their_names() -> None:
    cid = capture_instance_id(REQUEST["sourceVmId"])
    assert snapshot_name(cid, None) == f"{cid}-os" and snapshot_name(cid, 0) == f"{cid}-lun0"
    assert export_blob_name(cid, "d") == f"{cid}/d.vhd"


def test_an_overlong_id_is_shortened_deterministically_and_distinctly() -> None:
    a, b = "x" * 90 + "a", "x" * 90 + "b"
    assert len(snapshot_name(a, 63)) <= 80 and snapshot_name(a, 63).endswith("-lun63")
    assert snapshot_name(a, 63) == snapshot_name(a, 63) != snapshot_name(b, 63)


def test_ownership_is_the_run_not_the_vm() -> None:
    tags = ownership_tags("run-2", {TAG_CAPTURE_ID: "cap", "ci": "1"})
    assert tags == {TAG_CAPTURE_ID: "cap", TAG_RUN_ID: "run-2", "ci": "1"}
    assert made_by_run(tags) == "run-2"
    assert ownership_tags("cap")[TAG_CAPTURE_ID] == "cap"
    # Made before run ids existed: only the capture id tag, which was that run's id.
    assert made_by_run({TAG_CAPTURE_ID: "cap"}) == "cap"
    assert made_by_run(None) is None


def test_capture_input_without_run_id_replays_as_its_capture_id() -> None:
    old = {"captureId": "capture-vm-1", "request": REQUEST}
    assert CaptureInput.from_wire(old).run_id == "capture-vm-1"
    new = CaptureInput.from_wire({**old, "runId": "capture-vm-1-20250501100007"})
    assert new.run_id == "capture-vm-1-20250501100007"
    assert new.to_wire()["runId"] == "capture-vm-1-20250501100007"


def test_endpoints_find_the_current_runs_sub_orchestrations() -> None:
    progress = CaptureProgress(capture_id="capture-x", run_id="capture-x-20250501100007", source_vm_id="v")
    progress.export = True
    progress.disks = []
    wire = json.dumps(progress.to_wire())
    assert run_id_of("capture-x", wire) == "capture-x-20250501100007"
    assert run_id_of("capture-x", None) == "capture-x"
    legacy = CaptureProgress(capture_id="capture-x", source_vm_id="v").to_wire()
    assert run_id_of("capture-x", legacy) == "capture-x"
    assert sub_instances("capture-x", wire) == ["capture-x-20250501100007:version"]
    # The trigger reads the previous run id from the previous instance's input (text or decoded).
    assert previous_run_id(json.dumps({"captureId": "c", "runId": "c-1"})) == "c-1"
    assert previous_run_id({"captureId": "c"}) == "c"
    assert previous_run_id(None) is None and previous_run_id("not json") is None


def _payloads(calls: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [c["payload"] for c in calls if c["name"] == name]


@pytest.mark.timeout(300)
def test_two_captures_of_one_vm_hand_each_run_its_own_names(run_with: Any) -> None:
    run = run_with({"dataDisks": 1})
    first = run.capture()
    assert first["runtimeStatus"] == "Completed", first.get("error")
    split = len(run.call_log())
    second = run.capture()
    assert second["runtimeStatus"] == "Completed", second.get("error")
    assert second["id"] == first["id"] and second["runId"] != first["runId"]

    cid = first["id"]
    for status, calls in ((first, run.call_log()[:split]), (second, run.call_log()[split:])):
        rid = status["runId"]
        assert rid.startswith(f"{cid}-") and status["result"]["runId"] == rid
        assert [p["runId"] for p in _payloads(calls, "check_gallery")] == [rid]
        snaps = _payloads(calls, "start_snapshot")
        assert sorted(p["disk"]["key"] for p in snaps) == ["lun0", "os"]
        for p in snaps:
            assert p["runId"] == rid
            assert p["tags"][TAG_RUN_ID] == rid and p["tags"][TAG_CAPTURE_ID] == cid
        (version,) = _payloads(calls, "start_image_version")
        assert version["runId"] == rid
        assert version["tags"][TAG_RUN_ID] == rid and version["tags"][TAG_CAPTURE_ID] == cid
        assert {p["runId"] for p in _payloads(calls, "start_export")} == {rid}
        (notice,) = _payloads(calls, "publish_notice")
        assert notice["notice"]["captureId"] == cid and notice["notice"]["runId"] == rid
        # The run's own sub-orchestrations, beside (not over) the other run's.
        assert run.instance(f"{rid}:version")["runtimeStatus"] == "Completed"
        assert run.instance(f"{rid}:export:os")["runtimeStatus"] == "Completed"
