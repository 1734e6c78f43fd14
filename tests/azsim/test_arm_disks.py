"""Snapshots and disks through azure-mgmt-compute: create (200/202, never 201), read, list, SAS
grant/revoke against the DiskStore, delete rules (attached, active SAS)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.compute.models import CreationData, GrantAccessData, Snapshot, SnapshotSku
from azure.mgmt.compute.models import Disk as DiskModel

from tests.azsim.arm_fakes import SimHandle, disk_id, running_sim, wait_until


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory):
    with running_sim(tmp_path_factory.mktemp("arm-disks"), time_scale=0.0005) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _fresh(arm: SimHandle) -> None:
    arm.sim.reset()


def snapshot_body(source: str, **kwargs: object) -> Snapshot:
    return Snapshot(
        location="westeurope",
        creation_data=CreationData(create_option="Copy", source_resource_id=disk_id(source)),
        **kwargs,
    )


def test_snapshot_create__initial_202_then_succeeded_with_source_properties(arm: SimHandle) -> None:
    c = arm.compute()
    poller = c.snapshots.begin_create_or_update(
        "rg-build",
        "snap-os",
        snapshot_body("vm-win_OsDisk", incremental=True, sku=SnapshotSku(name="Standard_ZRS")),
    )
    initial = next(r for r in arm.sim.requests.records() if r["method"] == "PUT")
    assert initial["status"] == 202  # never 201: the SDK rejects it for snapshots
    snap = poller.result()
    assert snap.provisioning_state == "Succeeded"
    assert snap.incremental is True and snap.sku.name == "Standard_ZRS"
    assert (snap.os_type, snap.hyper_v_generation) == ("Windows", "V2")
    assert snap.security_profile.security_type == "TrustedLaunch"
    assert snap.creation_data.source_resource_id == disk_id("vm-win_OsDisk")
    assert snap.disk_size_gb == 127
    assert len(arm.store.blobs) == 1 + sum(1 for b in arm.store.blobs if b.startswith("disk-"))
    assert [s.name for s in c.snapshots.list_by_resource_group("rg-build")] == ["snap-os"]


def test_snapshot_create__missing_source_and_other_region(arm: SimHandle) -> None:
    c = arm.compute()
    with pytest.raises(ResourceNotFoundError):
        c.snapshots.begin_create_or_update("rg-build", "s", snapshot_body("no-such-disk"))
    body = snapshot_body("vm-web_OsDisk")
    body.location = "eastus"
    with pytest.raises(HttpResponseError) as e:
        c.snapshots.begin_create_or_update("rg-build", "s", body)
    assert e.value.status_code == 400


def test_grant_and_revoke_access__sas_valid_only_between(arm: SimHandle) -> None:
    c = arm.compute()
    c.snapshots.begin_create_or_update("rg-build", "snap", snapshot_body("vm-web_OsDisk")).result()
    access = c.snapshots.begin_grant_access(
        "rg-build", "snap", GrantAccessData(access="Read", duration_in_seconds=3600)
    ).result()
    assert access.access_sas.startswith("https://")
    assert arm.store.sas_valid(access.access_sas)
    assert c.snapshots.get("rg-build", "snap").disk_state == "ActiveSAS"
    c.snapshots.begin_revoke_access("rg-build", "snap").result()
    assert not arm.store.sas_valid(access.access_sas)
    assert c.snapshots.get("rg-build", "snap").disk_state == "Unattached"


def test_grant_access__expires_after_duration(arm: SimHandle) -> None:
    c = arm.compute()
    c.snapshots.begin_create_or_update("rg-build", "snap", snapshot_body("vm-web_OsDisk")).result()
    access = c.snapshots.begin_grant_access(
        "rg-build", "snap", GrantAccessData(access="Read", duration_in_seconds=60)
    ).result()
    # 60 Azure seconds = 30 ms here.
    wait_until(lambda: c.snapshots.get("rg-build", "snap").disk_state == "Unattached")
    assert not arm.store.sas_valid(access.access_sas)


def test_grant_access__disk_of_running_vm_refused(arm: SimHandle) -> None:
    with pytest.raises(ResourceExistsError):
        arm.compute().disks.begin_grant_access(
            "rg-build", "vm-web_OsDisk", GrantAccessData(access="Read", duration_in_seconds=60)
        )


def test_delete_snapshot__blocked_while_sas_active_then_completes_after_revoke(arm: SimHandle) -> None:
    c = arm.compute()
    c.snapshots.begin_create_or_update("rg-build", "snap", snapshot_body("vm-web_OsDisk")).result()
    c.snapshots.begin_grant_access(
        "rg-build", "snap", GrantAccessData(access="Read", duration_in_seconds=3600)
    ).result()
    deleting = c.snapshots.begin_delete("rg-build", "snap")
    # The delete is accepted but hangs (Azure/azure-cli#6927): the snapshot is still there.
    assert not deleting.done()
    assert c.snapshots.get("rg-build", "snap").provisioning_state == "Deleting"
    c.snapshots.begin_revoke_access("rg-build", "snap").result()
    deleting.result()
    with pytest.raises(ResourceNotFoundError):
        c.snapshots.get("rg-build", "snap")


def test_delete_snapshot__missing_is_noop_and_get_404(arm: SimHandle) -> None:
    c = arm.compute()
    c.snapshots.begin_delete("rg-build", "never-existed").result()
    with pytest.raises(ResourceNotFoundError) as e:
        c.snapshots.get("rg-build", "never-existed")
    assert "Microsoft.Compute/snapshots/never-existed" in str(e.value)


def test_disk_from_snapshot__copies_bytes_and_traits(arm: SimHandle) -> None:
    c = arm.compute()
    snap = c.snapshots.begin_create_or_update("rg-build", "snap", snapshot_body("vm-web_OsDisk")).result()
    disk = c.disks.begin_create_or_update(
        "rg-build",
        "restored",
        DiskModel(
            location="westeurope",
            creation_data=CreationData(create_option="Copy", source_resource_id=snap.id),
        ),
    ).result()
    assert disk.provisioning_state == "Succeeded" and disk.disk_state == "Unattached"
    assert disk.os_type == "Linux" and disk.hyper_v_generation == "V2"
    assert {d.name for d in c.disks.list_by_resource_group("rg-build")} >= {"restored", "vm-web_OsDisk"}
    blob_sizes = set(arm.store.blobs.values())
    assert 2 * 1024 * 1024 + 512 in blob_sizes
    c.disks.begin_delete("rg-build", "restored").result()
    with pytest.raises(ResourceNotFoundError):
        c.disks.get("rg-build", "restored")


def test_delete_attached_disk_refused(arm: SimHandle) -> None:
    with pytest.raises(ResourceExistsError) as e:
        arm.compute().disks.begin_delete("rg-build", "vm-web_data0")
    assert e.value.error.code == "OperationNotAllowed"
