"""The ARM simulator inside the whole local cloud (``python -m azsim up`` as a subprocess): a managed
identity token from the MI endpoint, real disk bytes in Azurite, a SAS copy into a customer account,
the SAS refused after endGetAccess, and a copy fault injected from the fault file."""

from __future__ import annotations

import json
import time

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import CreationData, GrantAccessData, Snapshot
from azure.storage.blob import BlobClient

from azsim.testing import local_cloud

RULES = {
    "rules": [
        {
            "match": {"copy": {"account": "^stexports$", "blob": "^broken"}},
            "effect": {"type": "copy", "outcome": "fail"},
        }
    ]
}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("arm-full")
    faults = workdir / "faults.json"
    faults.write_text(json.dumps(RULES))
    with local_cloud(workdir / "cloud", time_scale=0.001, faults=faults) as env, env.apply():
        yield env


def wait_copy(blob: BlobClient, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = blob.get_blob_properties().copy.status
        if status != "pending" or time.monotonic() > deadline:
            return str(status)
        time.sleep(0.05)


def test_snapshot_sas_copy_real_bytes_then_revoked(cloud) -> None:
    compute = cloud.arm_client(ComputeManagementClient, polling_interval=0.05)
    vm = compute.virtual_machines.get("rg-build", "vm-web")
    compute.virtual_machines.begin_deallocate("rg-build", "vm-web").result()
    compute.snapshots.begin_create_or_update(
        "rg-build",
        "snap-export",
        Snapshot(
            location="westeurope",
            creation_data=CreationData(
                create_option="Copy", source_resource_id=vm.storage_profile.os_disk.managed_disk.id
            ),
        ),
    ).result()
    sas = (
        compute.snapshots.begin_grant_access(
            "rg-build", "snap-export", GrantAccessData(access="Read", duration_in_seconds=3600)
        )
        .result()
        .access_sas
    )
    service = cloud.blob_service("stexports")
    container = service.get_container_client("vhds")
    if not container.exists():
        container.create_container()
    target = container.get_blob_client("vm-web-os.vhd")
    target.start_copy_from_url(sas)
    assert wait_copy(target) == "success"
    size = target.get_blob_properties().size
    assert size == 2 * 1024 * 1024 + 512  # contentMiB 2 + footer
    assert target.download_blob(offset=size - 512, length=8).readall() == b"conectix"

    compute.snapshots.begin_revoke_access("rg-build", "snap-export").result()
    again = container.get_blob_client("after-revoke.vhd")
    try:
        again.start_copy_from_url(sas)
        outcome = wait_copy(again)
    except HttpResponseError as exc:  # Azurite refuses the revoked SAS when the copy starts
        outcome = f"refused:{exc.status_code}"
    assert outcome != "success", outcome
    # The request log never carries the SAS.
    log = json.dumps(cloud_requests(cloud))
    assert "sig=" not in log


def test_copy_fault_from_fault_file(cloud) -> None:
    compute = cloud.arm_client(ComputeManagementClient, polling_interval=0.05)
    vm = compute.virtual_machines.get("rg-build", "vm-web-2")
    snap = compute.snapshots.begin_create_or_update(
        "rg-build",
        "snap-broken",
        Snapshot(
            location="westeurope",
            creation_data=CreationData(
                create_option="Copy", source_resource_id=vm.storage_profile.os_disk.managed_disk.id
            ),
        ),
    ).result()
    sas = (
        compute.snapshots.begin_grant_access(
            "rg-build", snap.name, GrantAccessData(access="Read", duration_in_seconds=600)
        )
        .result()
        .access_sas
    )
    container = cloud.blob_service("stexports").get_container_client("vhds")
    if not container.exists():
        container.create_container()
    blob = container.get_blob_client("broken-copy.vhd")
    blob.start_copy_from_url(sas)
    assert wait_copy(blob) == "failed"
    compute.snapshots.begin_revoke_access("rg-build", snap.name).result()


def cloud_requests(cloud) -> dict:
    import ssl
    import urllib.request

    ctx = ssl.create_default_context(cafile=cloud.ca_bundle)
    with urllib.request.urlopen(cloud.control_url + "/requests", context=ctx, timeout=10) as resp:
        return json.loads(resp.read())
