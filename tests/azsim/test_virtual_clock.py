"""azsim's simulated clock (--virtual-clock) and disk-access validity at time scale 0.

The clock stands still until advanced; a skip (``ifIdle``) is refused while a hold is open and stops
at azsim's own next event (a copy's end, a SAS's expiry). At time scale 0 a SAS granted for an hour
still works: validity windows are never scaled to zero.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import CreationData, GrantAccessData, Snapshot, SnapshotSku

from azsim.core.clock import SimClock
from azsim.testing import CloudEnv, local_cloud

# Everything instant but the copy: 1 MiB at 0.1 MB/s is about 10.5 simulated seconds.
LATENCY = {
    "snapshot_base_s": 0,
    "snapshot_per_gib_s": 0,
    "grant_access_s": 0,
    "revoke_access_s": 0,
    "copy_mb_per_s": 0.1,
}


def _grant(cloud: CloudEnv, seconds: int) -> str:
    compute = cloud.arm_client(ComputeManagementClient)
    vm = compute.virtual_machines.get("rg-build", "vm-web-3")
    name = f"snap-{uuid.uuid4().hex[:6]}"
    source = vm.storage_profile.os_disk.managed_disk.id
    body = Snapshot(
        location=vm.location,
        sku=SnapshotSku(name="Standard_LRS"),
        creation_data=CreationData(create_option="Copy", source_resource_id=source),
    )
    compute.snapshots.begin_create_or_update("rg-build", name, body).result()
    access = GrantAccessData(access="Read", duration_in_seconds=seconds)
    sas: str = compute.snapshots.begin_grant_access("rg-build", name, access).result().access_sas
    return sas


def _dest(cloud: CloudEnv, blob: str) -> Any:
    container = cloud.blob_service("stexports").get_container_client(f"c-{uuid.uuid4().hex[:8]}")
    container.create_container()
    return container.get_blob_client(blob)


def test_at_time_scale_0_a_granted_sas_copies(tmp_path: Path) -> None:
    with local_cloud(tmp_path / "wd", time_scale=0) as cloud, cloud.apply():
        sas = _grant(cloud, 3600)
        time.sleep(0.2)  # at time scale 0 this is "later" for every scaled duration
        dest = _dest(cloud, "scale0.vhd")
        dest.start_copy_from_url(sas)
        props = dest.get_blob_properties()
        assert props.copy.status == "success"
        assert dest.download_blob().readall()[-512:-504] == b"conectix"


def test_virtual_clock_plays_a_copy_and_a_sas_expiry_in_simulated_time(tmp_path: Path) -> None:
    (tmp_path / "latency.json").write_text(json.dumps(LATENCY))
    with (
        local_cloud(tmp_path / "wd", virtual_clock=True, latency=tmp_path / "latency.json") as cloud,
        cloud.apply(),
    ):
        assert cloud.clock()["virtual"] is True
        sas = _grant(cloud, 3600)
        dest = _dest(cloud, "virtual.vhd")
        dest.start_copy_from_url(sas)
        time.sleep(0.3)  # wall time does not move the clock
        assert dest.get_blob_properties().copy.status == "pending"
        state = cloud.clock()
        now, due = state["now"], state["nextDue"]
        assert now == 0 and 10 < due < 11  # the copy's end, before the SAS's expiry at 3600
        with cloud.hold():
            held = cloud._clock_call("POST", "/advance", {"ifIdle": True})
            assert held["moved"] is False and held["now"] == now
        skipped = cloud._clock_call("POST", "/advance", {"to": 7200, "ifIdle": True})
        assert skipped["moved"] is True and skipped["now"] == due  # stops at azsim's own next event
        assert dest.get_blob_properties().copy.status == "success"
        assert cloud.clock()["nextDue"] == 3600  # the SAS's expiry, in simulated seconds
        cloud.advance(3600)
        with pytest.raises(HttpResponseError):
            _dest(cloud, "late.vhd").start_copy_from_url(sas)


def test_sim_clock_refuses_to_skip_while_busy_or_held_and_never_goes_back() -> None:
    clock = SimClock(epoch=1000.0)
    dues: list[float | None] = [50.0]
    clock.add_due_source(lambda: dues[0])
    with clock.busy():
        assert clock.advance(to=10, if_idle=True) is False
    hold = clock.hold("test")
    assert clock.advance(if_idle=True) is False
    assert clock.release(hold) and not clock.release(hold)
    assert clock.advance(to=10, if_idle=True) and clock.now() == 10
    assert clock.advance(to=5) is False and clock.now() == 10
    assert clock.advance(if_idle=True) and clock.now() == 50 and clock.wall() == 1050
    dues[0] = None
    assert clock.advance(if_idle=True) is False  # nothing due and no target: nothing to skip to
    assert clock.advance(by=30, if_idle=True) and clock.now() == 80


def test_a_skip_a_rounding_error_short_of_an_event_lands_on_the_event() -> None:
    clock = SimClock(epoch=1_764_000_000.0)
    clock.add_due_source(lambda: 112.49088)
    # what a client computes: (epoch + event) - epoch, one float rounding short of the event
    assert clock.advance(to=112.49088 - 2e-7, if_idle=True)
    assert clock.now() == 112.49088
