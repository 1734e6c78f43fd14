"""Subscription-wide lists through azure-mgmt-compute (what ``az snapshot list`` without ``-g`` calls):
snapshots, disks, galleries and managed images across resource groups, filtered to what the caller
may read (ARM answers 200 with fewer items, never 403), in the spec's ``value`` list shape."""

from __future__ import annotations

import uuid

import pytest
from azure.mgmt.compute.models import CreationData, Gallery, Snapshot

from tests.azsim.arm_fakes import READER_OID, SUB, SimHandle, disk_id, running_sim


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory):
    with running_sim(tmp_path_factory.mktemp("arm-sublists"), time_scale=0) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _fresh(arm: SimHandle) -> None:
    arm.sim.reset()


def _snapshot(arm: SimHandle, rg: str, name: str) -> None:
    body = Snapshot(
        location="westeurope",
        creation_data=CreationData(create_option="Copy", source_resource_id=disk_id("vm-web_OsDisk")),
    )
    arm.compute().snapshots.begin_create_or_update(rg, name, body).result()


def test_snapshots_list__spans_resource_groups(arm: SimHandle) -> None:
    _snapshot(arm, "rg-build", "snap-a")
    _snapshot(arm, "rg-images", "snap-b")
    c = arm.compute()
    everywhere = {(s.name, s.id.split("/")[4]) for s in c.snapshots.list()}
    assert everywhere == {("snap-a", "rg-build"), ("snap-b", "rg-images")}
    assert [s.name for s in c.snapshots.list_by_resource_group("rg-images")] == ["snap-b"]
    # The reader (Reader on the subscription) sees the same; a principal without any role sees none.
    assert {s.name for s in arm.compute(READER_OID).snapshots.list()} == {"snap-a", "snap-b"}
    assert list(arm.compute(str(uuid.uuid4())).snapshots.list()) == []


def test_disks_list__every_vm_disk_of_the_subscription(arm: SimHandle) -> None:
    c = arm.compute()
    names = {d.name for d in c.disks.list()}
    expected = {vm.storage_profile.os_disk.name for vm in c.virtual_machines.list_all()}
    assert expected and expected <= names
    assert names == {d.name for d in c.disks.list_by_resource_group("rg-build")}
    assert all(d.id.startswith(f"/subscriptions/{SUB}/resourceGroups/") for d in c.disks.list())


def test_galleries_list__world_gallery_and_a_new_one(arm: SimHandle) -> None:
    c = arm.compute()
    before = {g.name for g in c.galleries.list()}
    assert before == {g.name for g in c.galleries.list_by_resource_group("rg-images")}
    c.galleries.begin_create_or_update("rg-images", "galnew", Gallery(location="westeurope")).result()
    assert {g.name for g in c.galleries.list()} == before | {"galnew"}
    assert list(arm.compute(str(uuid.uuid4())).galleries.list()) == []


def test_managed_images_list__the_world_images_by_group(arm: SimHandle) -> None:
    c = arm.compute()
    legacy = {"img-linux-gen2", "img-windows-gen1", "legacy-web"}
    assert {i.name for i in c.images.list()} == legacy
    assert {i.name for i in c.images.list_by_resource_group("rg-legacy-images")} == legacy
    assert list(c.images.list_by_resource_group("rg-images")) == []
    raw = [r for r in arm.sim.requests.records() if r["path"].endswith("/Microsoft.Compute/images")]
    assert raw and all(r["status"] == 200 for r in raw)
