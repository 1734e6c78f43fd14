"""Cancel during the copy (compensation checked on the simulated Azure side) and completion notices
for completed, failed and canceled captures, read from the results queue (and a local webhook)."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError

from shared.ids import capture_instance_id
from tests.support.http import wait_for
from tests.support.policy import RESULTS_QUEUE
from tests.support.stack import Stack
from tests.support.webhooks import WebhookReceiver

pytestmark = pytest.mark.e2e


def _notices(stack: Stack, capture_id: str) -> list[dict[str, Any]]:
    return [m for m in stack.read_queue(RESULTS_QUEUE) if m.get("captureId") == capture_id]


def _capture_snapshots(stack: Stack, capture_id: str) -> list[str]:
    return [
        s.name
        for s in stack.compute().snapshots.list_by_resource_group("rg-build")
        if (s.tags or {}).get("image-pipeline:capture-id") == capture_id
    ]


def test_cancel_during_the_copy_aborts_revokes_and_cleans_up(cstack: Stack) -> None:
    s = cstack
    with WebhookReceiver() as hook:
        body = s.queue_request(
            "vm-cancel",
            vhdExport={"accountUrl": s.cloud.storage_account_url("stexports"), "container": "vhds"},
            notify={"webhookUrl": hook.url},
        )
        from tests.support.http import http

        code, answer, _ = http("POST", s.devhost.url("/api/captures"), body)
        assert code == 202, answer
        cid = answer["id"]
        copying = s.wait(
            cid,
            until=lambda st: st["disks"] and all(d.get("copyState") == "pending" for d in st["disks"]),
            timeout=120,
        )
        assert copying["runtimeStatus"] == "Running"
        # While copying, each snapshot has an active read access (SAS).
        snaps = {d["snapshotId"].lower() for d in copying["disks"]}
        assert all(d["activeAccess"] for d in s.sim("state")["disks"] if d["id"].lower() in snaps)

        code, answer = s.cancel(cid, {"reason": "changed my mind"})
        assert code == 202, answer
        assert answer["captureStatusUri"].endswith(f"/api/captures/{cid}")

        status = s.wait(cid, timeout=120)
        assert status["runtimeStatus"] == "Canceled", status
        assert status["cancelRequested"] is True and status["cancelReason"] == "changed my mind"
        assert status["error"]["code"] == "Canceled"
        for d in status["disks"]:
            assert d["copyState"] == "aborted" and d["accessRevoked"] is True, d
        cleaned = " | ".join(status["cleaned"])
        assert cleaned.count("aborted") == 2 and cleaned.count("revoked") == 2, cleaned
        assert cleaned.count("deleted") >= 2, cleaned  # both snapshots (and the version, if it was created)
        assert status["generalized"] is True and "stays generalized" in status["irreversibleNote"]
        stages = {x["name"]: x["state"] for x in status["stages"]}
        assert stages["export"] == "canceled" and stages["generalize"] == "succeeded", stages

        # Azure's side: no access left, no snapshot left, no version left, the copies aborted.
        state = s.sim("state")
        assert not [d for d in state["disks"] if d["id"].lower() in snaps and d["activeAccess"]]
        assert _capture_snapshots(s, cid) == []
        with pytest.raises(ResourceNotFoundError):
            s.compute().gallery_image_versions.get("rg-images", "galContoso", "vm-cancel-def", "1.0.0")
        blobs = s.cloud.blob_service("stexports").get_container_client("vhds")
        copies = [
            blobs.get_blob_client(b.name).get_blob_properties().copy.status
            for b in blobs.list_blobs(name_starts_with=f"{status['runId']}/")
        ]
        assert copies and all(c == "aborted" for c in copies), copies

        # The notice: on the queue and at the webhook, once each.
        notices = wait_for("the canceled notice", lambda: _notices(s, cid))
        assert len(notices) == 1
        n = notices[0]
        assert n["outcome"] == "canceled" and n["trigger"] == "http" and n["generalized"] is True
        assert n["error"]["code"] == "Canceled" and n["cleaned"] == status["cleaned"]
        assert n["exportedBlobs"] == []  # no copy finished
        wait_for("the webhook notice", lambda: hook.bodies)
        assert hook.bodies[0]["noticeId"] == n["noticeId"]

    # Cancelling it again: it is over.
    code, answer = s.cancel(cid)
    assert code == 409 and answer["runtimeStatus"] == "Canceled"


def test_notices_for_completed_and_failed_captures(cstack: Stack) -> None:
    s = cstack
    from tests.support.http import http

    # Completed: a capture without export.
    code, answer, _ = http("POST", s.devhost.url("/api/captures"), s.queue_request("vm-notice"))
    assert code == 202, answer
    done = s.wait(answer["id"])
    assert done["runtimeStatus"] == "Completed", done
    n = wait_for("the completed notice", lambda: _notices(s, answer["id"]))[0]
    assert n["outcome"] == "completed" and "error" not in n
    assert n["imageVersionId"] == done["result"]["imageVersionId"] and n["imageVersion"] == "1.0.0"
    assert {r["region"]: r["state"] for r in n["regions"]} == {
        "westeurope": "Completed",
        "eastus2": "Completed",
    }
    assert n["generalized"] is True and n["snapshotsDeleted"] and n["timings"]

    # Failed: the definition does not exist and may not be created (fails in preflight, VM untouched).
    body = s.queue_request("vm-fail", imageDefinition={"name": "no-such-def", "createIfMissing": False})
    code, answer, _ = http("POST", s.devhost.url("/api/captures"), body)
    assert code == 202, answer
    failed = s.wait(answer["id"])
    assert failed["runtimeStatus"] == "Failed", failed
    n = wait_for("the failed notice", lambda: _notices(s, answer["id"]))[0]
    assert n["outcome"] == "failed" and n["error"]["step"] == "preflight" and n["error"]["message"]
    assert n["generalized"] is False and "imageVersionId" not in n
    assert n["sourceVmId"] == s.vm_id("vm-fail")
    assert capture_instance_id(s.vm_id("vm-fail")) == n["captureId"]
