"""Pure parts of the orchestration: poll/retry timing, region list, preflight verdicts, instance ids."""

from __future__ import annotations

import itertools

import pytest

from orchestrators.capture.rules import preflight_problems, region_problems, target_regions
from orchestrators.publish_version import replication_verdict
from orchestrators.timing import expected_copy_seconds, poll_delay, retry_delay
from shared.contracts import (
    CapturePolicy,
    DiskFacts,
    ExportCheckResult,
    GalleryCheckResult,
    RegionReplication,
    TargetRegion,
    VersionStatus,
    VmFacts,
)
from shared.ids import capture_instance_id
from shared.status import export_instance_id, version_instance_id

POLICY = CapturePolicy(poll_min_seconds=15, poll_max_seconds=300, expected_copy_mbps=60)


def test_poll_delay_grows_geometrically_from_min_and_is_capped():
    delays = [poll_delay(POLICY, n) for n in range(12)]
    assert delays[0] == 15
    assert delays[1] == 22.5
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert max(delays) == 300


def test_poll_delay_respects_expected_remaining_duration():
    # A copy expected to take another 20 minutes is not polled every 15 s ...
    assert poll_delay(POLICY, 0, expected_remaining_seconds=1200) == 300
    # ... and one expected to take 2 minutes is polled at a quarter of that.
    assert poll_delay(POLICY, 0, expected_remaining_seconds=120) == 30


def test_a_24_hour_copy_stays_within_the_request_budget_per_execution():
    policy = CapturePolicy(expected_copy_mbps=60)
    size = 5 * 1024**4  # 5 TiB: about 24 h at 60 MB/s
    assert 80_000 < expected_copy_seconds(policy, size) < 95_000
    # Polls at most every poll_max (300 s): <= 288/day, split into executions of max_polls_per_execution.
    polls_per_day = 86_400 / policy.poll_max_seconds
    executions = polls_per_day / policy.max_polls_per_execution
    assert executions < 10
    # Each poll costs ~8 history events (timer + activity, 2 episodes); one execution stays < 400.
    assert policy.max_polls_per_execution * 8 + 20 < 400


def test_retry_delay_doubles_and_is_capped():
    policy = CapturePolicy(transient_retry_first_seconds=30, poll_max_seconds=300)
    assert [retry_delay(policy, a) for a in range(3)] == [30, 60, 120]
    assert retry_delay(policy, 20) == 480  # 16 x first


def test_vm_region_is_always_replicated():
    regions = target_regions(
        [TargetRegion(name="eastus2"), TargetRegion(name="uksouth", replica_count=2)], "westeurope"
    )
    assert [r.name for r in regions] == ["eastus2", "uksouth", "westeurope"]
    assert regions[-1].replica_count == 1
    same = target_regions([TargetRegion(name="westeurope", replica_count=3)], "WestEurope")
    assert [(r.name, r.replica_count) for r in same] == [("westeurope", 3)]


def _facts(power: str = "running", generalized: bool = False) -> VmFacts:
    disk = DiskFacts(key="os", name="vm-web_OsDisk", id="/x/disks/vm-web_OsDisk", size_gb=30)
    return VmFacts(
        id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-web",
        name="vm-web",
        resource_group="rg",
        subscription_id="s",
        location="westeurope",
        os_type="Linux",
        hyper_v_generation="V2",
        security_type="Standard",
        architecture="x64",
        power_state=power,
        generalized=generalized,
        os_disk=disk,
    )


def test_preflight_collects_every_problem():
    gallery = GalleryCheckResult(
        gallery_exists=True,
        resolved_version="1.0.0",
        version_exists=True,
        problems=["the image definition web-ubuntu is Hyper-V V1 but vm-web is V2: use a V2 definition"],
    )
    export = ExportCheckResult(reachable=False, container_exists=False, problem="stexports answered 403")
    problems = preflight_problems("deprovision", _facts(power="deallocated"), gallery, export)
    assert len(problems) == 4
    assert "V1" in problems[0]
    assert any("1.0.0 already exists" in p for p in problems)
    assert any("deallocated" in p and "prepare 'none'" in p for p in problems)
    assert "stexports answered 403" in problems


def test_preflight_passes_a_clean_request():
    gallery = GalleryCheckResult(gallery_exists=False, resolved_version="1.0.0", version_exists=False)
    assert preflight_problems("deprovision", _facts(), gallery, None) == []
    assert preflight_problems("none", _facts(power="deallocated"), gallery, None) == []


@pytest.mark.parametrize(
    ("states", "provisioning", "verdict"),
    [
        ({"westeurope": "Completed", "eastus2": "Completed"}, "Succeeded", "completed"),
        ({"westeurope": "Completed", "eastus2": "Replicating"}, "Succeeded", "replicating"),
        ({"westeurope": "Completed"}, "Succeeded", "replicating"),  # a region Azure does not list yet
        ({"westeurope": "Completed", "eastus2": "Completed"}, "Creating", "replicating"),
        ({"westeurope": "Completed", "eastus2": "Failed"}, "Succeeded", "failed"),
        ({}, "Failed", "failed"),
    ],
)
def test_replication_verdict(states, provisioning, verdict):
    status = VersionStatus(
        version_id="v",
        provisioning_state=provisioning,
        regions=[
            RegionReplication(region=k.title(), state=v, progress=100 if v == "Completed" else 40)
            for k, v in states.items()
        ],
    )
    got, rows = replication_verdict(status, ["westeurope", "eastus2"])
    assert got == verdict
    assert [r.region for r in rows] == ["westeurope", "eastus2"]


def test_instance_ids_are_deterministic_and_distinct_per_vm():
    a = "/subscriptions/s1/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/vm-web"
    b = "/subscriptions/s1/resourceGroups/rg-other/providers/Microsoft.Compute/virtualMachines/vm-web"
    assert capture_instance_id(a) == capture_instance_id(
        a.upper().replace("VIRTUALMACHINES", "virtualMachines")
    )
    assert capture_instance_id(a) != capture_instance_id(b)
    cid = capture_instance_id(a)
    assert version_instance_id(cid) == f"{cid}:version"
    assert export_instance_id(cid, "lun0") == f"{cid}:export:lun0"


def test_gallery_region_is_a_target_region_too():
    regions = target_regions([TargetRegion(name="eastus2")], "westeurope", "UK South")
    assert [r.name for r in regions] == ["eastus2", "westeurope", "uksouth"]
    assert [r.name for r in target_regions([], "westeurope", "westeurope")] == ["westeurope"]


KNOWN = ["eastus", "eastus2", "northeurope", "westeurope"]


def test_region_problems_one_actionable_sentence_per_unknown_region():
    requested = [TargetRegion(name="westeuropa"), TargetRegion(name="eastus2"), TargetRegion(name="atlantis")]
    problems = region_problems(requested, _facts(), "galContoso", None, "sub-1", KNOWN)
    assert problems == [
        "target region westeuropa is not a region of subscription sub-1 (did you mean westeurope?); "
        "choose one of: eastus, eastus2, northeurope, westeurope",
        "target region atlantis is not a region of subscription sub-1; "
        "choose one of: eastus, eastus2, northeurope, westeurope",
    ]
    assert region_problems([TargetRegion(name="eastus")], _facts(), "g", "West Europe", "s", KNOWN) == []


def test_region_problems_cover_the_regions_added_for_the_vm_and_the_gallery():
    facts = _facts().model_copy(update={"location": "westus3"})
    problems = region_problems([], facts, "galContoso", "southindia", "sub-1", KNOWN)
    assert len(problems) == 2
    assert "vm-web's region westus3 (always replicated)" in problems[0]
    assert "the region southindia of gallery galContoso" in problems[1]
    # Asked for explicitly: reported once, as a target region.
    once = region_problems([TargetRegion(name="westus3")], facts, "g", "westus3", "sub-1", KNOWN)
    assert len(once) == 1 and once[0].startswith("target region westus3")


def test_region_problems_do_not_judge_on_an_empty_region_list():
    assert region_problems([TargetRegion(name="westeuropa")], _facts(), "g", None, "s", []) == []
