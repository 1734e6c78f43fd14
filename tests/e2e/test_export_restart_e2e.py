"""End to end: a VHD copy that outlives its snapshot SAS is restarted with a longer access and completes.

azsim counts the SAS lifetime in Azure seconds and ends a pending copy with 403
``CannotVerifyCopySource`` when its source SAS expires. The settings below make the SAS (about
1,000 Azure s) far shorter than the slowed OS disk copy (~3,500 Azure s), so it needs restarts
(1,000 → 2,000 → 4,000 s: two when the grants land on time, fewer when the host runs late).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.http import http
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

SHORT_SAS = {
    # Sized for a copy 1/30 of this fast: ~1 s for the disks here, plus the margin.
    "CAPTURE_EXPECTED_COPY_MBPS": "1000000",
    "CAPTURE_SAS_MARGIN_SECONDS": "1000",
}


def _custom_status(stack: Stack, instance_id: str) -> dict[str, Any]:
    code, body, _ = http("GET", stack.devhost.url(f"/runtime/webhooks/durabletask/instances/{instance_id}"))
    assert code in (200, 202), body
    stack.seen.append(json.dumps(body))
    return dict(body["customStatus"])


def test_copy_outliving_its_sas_is_restarted_and_the_capture_completes(
    make_stack: Callable[..., Stack],
) -> None:
    # ~2 MiB (OS) and ~1 MiB (data) of real bytes at 600 B/s: ~3,500 and ~1,750 Azure s of copying.
    stack = make_stack(latency={"copy_mb_per_s": 0.0006}, env=SHORT_SAS)
    status = stack.run(stack.request("vm-web"), timeout=240)
    assert status["runtimeStatus"] == "Completed", status.get("error")
    assert len(status["result"]["exportedBlobs"]) == 2
    disks = {d["key"]: d for d in status["disks"]}
    assert all(d["copyState"] == "success" and d["accessRevoked"] is True for d in disks.values()), disks
    run_id = status.get("runId") or status["id"]
    restarts = {k: _custom_status(stack, f"{run_id}:export:{k}")["restarts"] for k in disks}
    # How many restarts it takes depends on when, in wall time, each grant lands relative to the
    # copy's simulated progress (under load: later, so fewer); at least one proves the mechanism.
    assert 1 <= restarts["os"] <= 3, restarts
    blobs = stack.cloud.blob_service("stexports").get_container_client("vhds")
    for url in status["result"]["exportedBlobs"]:
        name = url.split("/vhds/", 1)[1]
        props = blobs.get_blob_client(name).get_blob_properties()
        assert props.copy.status == "success"
    assert stack.active_access() == []  # no grant, first or restarted, outlived the capture
