"""The janitor's VMs, NICs and disks on the local cloud, as the app's identity: the scan lists the tagged
ones (VMs first, attached NICs and disks marked), a dry run changes nothing, a VM's delete takes its NIC
and disk along, a lone NIC and disk are deleted on their own, an attached one is left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient

from activities.janitor import clean_leftover, scan_leftovers
from shared.ids import capture_instance_id, new_run_id, vm_id
from shared.janitor import CleanInput, CleanResult, JanitorScope, Leftover, ScanInput, ScanResult, plan
from tests.activities.activity_cloud import Calls, poll
from tests.support.janitor_machines import BUILD, existing, orphans


def _clean(call: Calls, lo: Leftover, *, dry_run: bool = False) -> list[tuple[bool, str]]:
    p = plan(lo, owned=False, now=datetime.now(UTC), grace=timedelta(0), stuck_creating=timedelta(0))
    out = CleanResult.from_wire(
        call(clean_leftover, CleanInput(leftover=lo, actions=p.actions, dry_run=dry_run).to_wire())
    )
    return [(r.done, r.detail) for r in out.results]


def test_scan_plan_and_clean_machines(cloud: Any, call: Calls) -> None:
    sub = cloud.subscription_id
    compute = cloud.arm_client(ComputeManagementClient)
    network = cloud.arm_client(NetworkManagementClient)
    run = new_run_id(capture_instance_id(vm_id(sub, "rg-build", "vm-gone")), datetime(2026, 1, 1, tzinfo=UTC))
    made = orphans(compute, network, sub, run, "jv")
    scope = JanitorScope(subscription_id=sub, resource_group=BUILD)
    scan = ScanResult.from_wire(call(scan_leftovers, ScanInput(scopes=[scope]).to_wire()))
    assert scan.errors == [], scan.errors
    found = {lo.resource_id.lower(): lo for lo in scan.leftovers if lo.run_id == run}
    ids = {k: v.lower() for k, v in made.items()}
    assert set(found) == {ids[k] for k in made if k != "testOsDisk"}  # the untagged OS disk is not listed
    kinds = [lo.kind for lo in scan.leftovers if lo.run_id == run]
    assert kinds == sorted(kinds, key=["virtualMachine", "networkInterface", "disk"].index)  # VMs first
    assert found[ids["cloneNic"]].attached_to and found[ids["cloneDisk"]].attached_to
    assert not found[ids["loneNic"]].attached_to and not found[ids["loneDisk"]].attached_to
    grace = timedelta(0)
    kept = plan(
        found[ids["cloneDisk"]], owned=False, now=datetime.now(UTC), grace=grace, stuck_creating=grace
    )
    assert kept.actions == [] and kept.keep_reason == "still attached to a VM"

    before = existing(compute, network)
    assert _clean(call, found[ids["cloneVm"]], dry_run=True) == [
        (False, "dry run: would have started deleting the VM (its NIC and disks go with it)")
    ]
    assert existing(compute, network) == before

    # an attached disk is left alone even when asked to delete it (re-read just before acting)
    forced = CleanResult.from_wire(
        call(clean_leftover, CleanInput(leftover=found[ids["cloneDisk"]], actions=["deleteDisk"]).to_wire())
    )
    assert not forced.results[0].done and "attached to the VM" in forced.results[0].detail

    for key in ("cloneVm", "testVm", "loneNic", "loneDisk"):
        assert [done for done, _ in _clean(call, found[ids[key]])] == [True], key
    everything = set(ids.values())
    poll(lambda: not (everything & existing(compute, network)), bool, timeout=30)
    assert _clean(call, found[ids["loneNic"]]) == [(False, "skipped: already gone")]
