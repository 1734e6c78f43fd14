"""The whole local cloud, as the app sees it: snapshot -> grant (SAS) -> copy through the blob front with
latency and injected faults from files -> endGetAccess makes the SAS (and a pending copy) fail."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import CreationData, GrantAccessData, Snapshot, SnapshotSku
from azure.storage.blob import BlobClient

from azsim.storage.copies import FAULT_AT_FRACTION
from azsim.testing import local_cloud

FAULTS = {
    "rules": [
        {
            "match": {"copy": {"account": "stexports", "blob": "fail\\.vhd$"}},
            "effect": {"type": "copy", "outcome": "fail"},
        },
        {
            "match": {"copy": {"account": "stexports", "blob": "stall\\.vhd$"}},
            "effect": {"type": "copy", "outcome": "stall"},
        },
    ]
}
# Copies take about a second (1 MiB at 1 MB/s); everything else is instant.
LATENCY = {
    "snapshot_base_s": 0,
    "snapshot_per_gib_s": 0,
    "grant_access_s": 0,
    "revoke_access_s": 0,
    "copy_mb_per_s": 1.0,
    "poll_interval_s": 0.1,
}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    root = tmp_path_factory.mktemp("azsim-copy")
    (root / "faults.json").write_text(json.dumps(FAULTS))
    (root / "latency.json").write_text(json.dumps(LATENCY))
    with (
        local_cloud(
            root / "wd", time_scale=1.0, faults=root / "faults.json", latency=root / "latency.json"
        ) as c,
        c.apply(),
    ):
        yield c


@pytest.fixture(scope="module")
def granted(cloud):
    """A snapshot of vm-web-3's OS disk (1 MiB of content) with read access granted."""
    compute = cloud.arm_client(ComputeManagementClient)
    vm = compute.virtual_machines.get("rg-build", "vm-web-3")
    name = f"snap-{uuid.uuid4().hex[:6]}"
    compute.snapshots.begin_create_or_update(
        "rg-build",
        name,
        Snapshot(  # type: ignore[call-overload]  # flattened properties: accepted at runtime, not in the overloads
            location=vm.location,
            sku=SnapshotSku(name="Standard_LRS"),
            creation_data=CreationData(
                create_option="Copy", source_resource_id=vm.storage_profile.os_disk.managed_disk.id
            ),
        ),
    ).result()
    sas = (
        compute.snapshots.begin_grant_access(
            "rg-build", name, GrantAccessData(access="Read", duration_in_seconds=600)
        )
        .result()
        .access_sas
    )
    return compute, name, sas


@pytest.fixture
def container(cloud):
    c = cloud.blob_service("stexports").get_container_client(f"c-{uuid.uuid4().hex[:8]}")
    c.create_container()
    return c


def _settle(blob, deadline_s: float = 20.0):
    seen = []
    deadline = time.monotonic() + deadline_s
    while True:
        props = blob.get_blob_properties()
        seen.append(props.copy)
        if props.copy.status != "pending":
            return props, seen
        assert time.monotonic() < deadline, "copy still pending"
        time.sleep(0.1)


def test_copy_from_a_snapshot_sas_takes_time_then_succeeds(granted, container):
    _, _, sas = granted
    dest = container.get_blob_client("ok.vhd")
    assert dest.start_copy_from_url(sas)["copy_status"] == "pending"
    props, seen = _settle(dest)
    assert props.copy.status == "success"
    pending = [int(c.progress.split("/")[0]) for c in seen if c.status == "pending"]
    assert len(pending) >= 3 and pending == sorted(pending) and pending[-1] > pending[0]
    data = dest.download_blob().readall()
    assert data == BlobClient.from_blob_url(sas).download_blob().readall()
    assert data[-512:-504] == b"conectix"


def test_fault_file_fails_and_stalls_copies(granted, container):
    _, _, sas = granted
    failing = container.get_blob_client("fail.vhd")
    failing.start_copy_from_url(sas)
    stalling = container.get_blob_client("stall.vhd")
    stalling.start_copy_from_url(sas)
    props, _ = _settle(failing)
    assert props.copy.status == "failed" and props.copy.status_description
    # Under load the stalling copy can start noticeably after the failing one: first wait (with a
    # deadline) for it to reach the point where a stall freezes, then watch that it stays there.
    deadline = time.monotonic() + 20.0
    while True:
        copy = stalling.get_blob_properties().copy
        assert copy.status == "pending"
        copied, total = (int(n) for n in copy.progress.split("/"))
        if copied >= int(total * FAULT_AT_FRACTION):
            break
        assert time.monotonic() < deadline, f"the stalling copy never got halfway: {copy.progress}"
        time.sleep(0.1)
    until = time.monotonic() + 2.0  # about twice the simulated copy time
    progress = set()
    while time.monotonic() < until:
        copy = stalling.get_blob_properties().copy
        assert copy.status == "pending"
        progress.add(copy.progress)
        time.sleep(0.1)
    assert len(progress) == 1, f"a stalled copy must stop advancing: {sorted(progress)}"


def test_end_get_access_fails_a_pending_copy_and_refuses_the_sas(granted, container):
    compute, name, sas = granted
    dest = container.get_blob_client("late.vhd")
    dest.start_copy_from_url(sas)
    compute.snapshots.begin_revoke_access("rg-build", name).result()
    props, _ = _settle(dest)
    assert props.copy.status == "failed"
    with pytest.raises(HttpResponseError) as err:
        BlobClient.from_blob_url(sas).get_blob_properties()
    assert err.value.status_code == 403
    with pytest.raises(HttpResponseError) as copy_err:
        container.get_blob_client("again.vhd").start_copy_from_url(sas)
    assert copy_err.value.error_code == "CannotVerifyCopySource"  # type: ignore[attr-defined]  # set by azure-storage
