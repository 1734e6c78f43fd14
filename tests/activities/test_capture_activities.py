"""The capture's activities in order against the local cloud, on vm-web (Linux Gen2 + one data disk):
guest prepare, deallocate, generalize, snapshots, gallery checks, definition, version + replication,
VHD export (copy, SAS revocation, abort of a stalled copy), deletes, and no secret anywhere.

Tests in this module build on each other's Azure state (like the capture itself); ``state`` holds it.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from activity_cloud import Calls, poll
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as cm
from azure.storage.blob import BlobClient, BlobServiceClient

from activities import exports, gallery, preflight, snapshots, virtual_machines
from shared import clients
from shared.contracts import (
    CopyStatus,
    DefinitionResult,
    Done,
    ExportCheckResult,
    GalleryCheckResult,
    GuestPrepareResult,
    PowerState,
    SnapshotResult,
    VersionStatus,
    VmFacts,
)
from shared.errors import AzureOperationError
from shared.ids import TAG_CAPTURE_ID, snapshot_name, vm_id
from shared.redaction import contains_secret

CAPTURE = "cap-web"
GALLERY = {"resourceGroup": "rg-images", "name": "galActivities", "createIfMissing": True}
DEFINITION = {"name": "web-ubuntu", "publisher": "contoso", "offer": "web", "sku": "ubuntu-22"}
REGIONS = [
    {"name": "westeurope", "replicaCount": 2, "storageAccountType": "Standard_ZRS"},
    {"name": "northeurope"},
    {"name": "eastus2"},
]
state: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def activity_logs() -> Any:
    """Everything the activities log during this module (checked for secrets at the end)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("activities")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)


def _facts(cloud: Any, call: Calls, name: str = "vm-web") -> VmFacts:
    return VmFacts.from_wire(
        call(virtual_machines.get_vm_facts, {"vmId": vm_id(cloud.subscription_id, "rg-build", name)})
    )


def _power(call: Calls, vm: str) -> PowerState:
    return PowerState.from_wire(call(virtual_machines.get_power_state, {"vmId": vm}))


def _check(
    call: Calls, facts: VmFacts, version: str = "auto", capture: str | None = CAPTURE, **over: Any
) -> GalleryCheckResult:
    payload = {
        "gallery": {**GALLERY, "subscriptionId": facts.subscription_id, **over.get("gallery", {})},
        "definition": {**DEFINITION, **over.get("definition", {})},
        "version": version,
        "vm": facts.to_wire(),
    }
    if capture:
        payload["captureId"] = capture
    return GalleryCheckResult.from_wire(call(preflight.check_gallery, payload))


def test_prepare_deallocate_generalize(cloud: Any, call: Calls) -> None:
    facts = _facts(cloud, call)
    prep = GuestPrepareResult.from_wire(
        call(virtual_machines.start_guest_prepare, {"vmId": facts.id, "osType": "Linux"})
    )
    assert prep.started and prep.command == "RunShellScript"
    poll(lambda: _power(call, facts.id), lambda s: s.power_state == "stopped")
    call(virtual_machines.start_deallocate, {"vmId": facts.id})
    poll(lambda: _power(call, facts.id), lambda s: s.power_state == "deallocated")
    assert PowerState.from_wire(call(virtual_machines.generalize_vm, {"vmId": facts.id})).generalized
    state["facts"] = _facts(cloud, call)
    assert state["facts"].generalized


def test_snapshots_are_created_once_per_disk(cloud: Any, call: Calls) -> None:
    facts: VmFacts = state["facts"]
    results: dict[str, SnapshotResult] = {}
    for disk in facts.disks:
        payload = {
            "captureId": CAPTURE,
            "disk": disk.to_wire(),
            "subscriptionId": facts.subscription_id,
            "resourceGroup": "rg-build",
            "location": facts.location,
            "hyperVGeneration": facts.hyper_v_generation,
            "tags": {"ci-run": "1"},
        }
        first = SnapshotResult.from_wire(call(snapshots.start_snapshot, payload))
        assert first.name == snapshot_name(CAPTURE, disk.lun) and first.disk_key == disk.key
        done = poll(
            lambda sid=first.snapshot_id: SnapshotResult.from_wire(
                call(snapshots.get_snapshot, {"snapshotId": sid})
            ),
            lambda s: s.provisioning_state == "Succeeded",
        )
        assert (done.disk_key, done.lun) == (disk.key, disk.lun)
        again = SnapshotResult.from_wire(call(snapshots.start_snapshot, payload))  # a re-executed activity
        assert again.snapshot_id == first.snapshot_id
        results[disk.key] = done
    compute = cloud.arm_client(ComputeManagementClient)
    names = sorted(
        s.name for s in compute.snapshots.list_by_resource_group("rg-build") if s.name.startswith(CAPTURE)
    )
    assert names == [f"{CAPTURE}-lun0", f"{CAPTURE}-os"]
    snap = compute.snapshots.get("rg-build", f"{CAPTURE}-os")
    assert snap.tags[TAG_CAPTURE_ID] == CAPTURE and snap.tags["ci-run"] == "1"
    state["snapshots"] = results


def test_gallery_check_before_anything_exists(cloud: Any, call: Calls) -> None:
    facts: VmFacts = state["facts"]
    ok = _check(call, facts)
    assert (ok.gallery_exists, ok.definition, ok.resolved_version, ok.problems) == (False, None, "1.0.0", [])
    strict = _check(call, facts, gallery={"createIfMissing": False}, definition={"createIfMissing": False})
    assert len(strict.problems) == 2
    assert "gallery galActivities does not exist" in strict.problems[0]
    assert "image definition web-ubuntu does not exist" in strict.problems[1]


def test_definition_is_created_from_the_vm(cloud: Any, call: Calls) -> None:
    facts: VmFacts = state["facts"]
    payload = {
        "gallery": {**GALLERY, "subscriptionId": facts.subscription_id},
        "definition": DEFINITION,
        "vm": facts.to_wire(),
        "location": facts.location,
        "tags": {"ci-run": "1"},
    }
    created = DefinitionResult.from_wire(call(gallery.ensure_definition, payload))
    assert created.gallery_created and created.definition_created
    assert created.definition_id.endswith("/galleries/galActivities/images/web-ubuntu")
    again = DefinitionResult.from_wire(call(gallery.ensure_definition, payload))
    assert not again.gallery_created and not again.definition_created
    definition = cloud.arm_client(ComputeManagementClient).gallery_images.get(
        "rg-images", "galActivities", "web-ubuntu"
    )
    p = definition.as_dict()["properties"]
    assert (p["osType"], p["osState"], p["hyperVGeneration"], p.get("architecture", "x64")) == (
        "Linux",
        "Generalized",
        "V2",
        "x64",
    )
    check = _check(call, facts)
    assert (
        check.problems == [] and check.definition is not None and check.definition.hyper_v_generation == "V2"
    )


def test_incompatible_definitions_are_named_with_the_fix(cloud: Any, call: Calls) -> None:
    facts: VmFacts = state["facts"]
    compute = cloud.arm_client(ComputeManagementClient)
    body = {
        "location": "westeurope",
        "properties": {
            "osType": "Linux",
            "osState": "Generalized",
            "hyperVGeneration": "V1",
            "identifier": {"publisher": "contoso", "offer": "web", "sku": "legacy"},
        },
    }
    compute.gallery_images.begin_create_or_update(
        "rg-images", "galActivities", "web-v1", cm.GalleryImage(body)
    ).result()
    v1 = _check(call, facts, definition={"name": "web-v1"})
    assert v1.problems == [
        "the image definition web-v1 is Hyper-V V1 but vm-web is V2: use a V2 definition or let the capture create one"
    ]
    windows_tl = _facts(cloud, call, "vm-win")
    mixed = _check(call, windows_tl)
    assert len(mixed.problems) == 2
    assert "is for Linux but vm-win runs Windows" in mixed.problems[0]
    assert "no SecurityType feature but vm-win uses Trusted Launch" in mixed.problems[1]


def test_image_version_replicates_to_every_region(cloud: Any, call: Calls) -> None:
    facts: VmFacts = state["facts"]
    snaps: dict[str, SnapshotResult] = state["snapshots"]
    payload = {
        "captureId": CAPTURE,
        "gallery": {**GALLERY, "subscriptionId": facts.subscription_id},
        "definitionName": "web-ubuntu",
        "version": "1.0.0",
        "location": "westeurope",
        "osSnapshotId": snaps["os"].snapshot_id,
        "dataSnapshots": [{"lun": 0, "snapshotId": snaps["lun0"].snapshot_id}],
        "targetRegions": REGIONS,
        "endOfLifeDate": "2027-12-31",
        "tags": {"image-pipeline:source-vm": facts.id},
    }
    started = VersionStatus.from_wire(call(gallery.start_image_version, payload))
    assert started.exists and started.version_id.endswith("/images/web-ubuntu/versions/1.0.0")
    seen: set[tuple[str, str]] = set()

    def status() -> VersionStatus:
        st = VersionStatus.from_wire(
            call(
                gallery.get_version_status,
                {"versionId": started.version_id, "operationUrl": started.operation_url},
            )
        )
        seen.update((r.region, r.state) for r in st.regions)
        return st

    final = poll(
        status,
        lambda s: len(s.regions) == 3 and all(r.state == "Completed" for r in s.regions),
        timeout=90,
    )
    assert {r.region for r in final.regions} == {"westeurope", "northeurope", "eastus2"}
    assert all(r.progress == 100 for r in final.regions) and final.error is None
    assert any(state_ != "Completed" for _, state_ in seen), f"never saw replication in progress: {seen}"
    again = VersionStatus.from_wire(
        call(gallery.start_image_version, payload)
    )  # re-executed: finds its own version
    assert again.version_id == started.version_id
    version = cloud.arm_client(ComputeManagementClient).gallery_image_versions.get(
        "rg-images", "galActivities", "web-ubuntu", "1.0.0"
    )
    assert version.tags[TAG_CAPTURE_ID] == CAPTURE
    state["version"] = started

    other = {**payload, "captureId": "cap-other"}
    with pytest.raises(AzureOperationError, match="already exists and was not made by this capture"):
        call(gallery.start_image_version, other)


def test_a_version_azure_refuses_later_reports_azures_code_and_message(cloud: Any, call: Calls) -> None:
    # A Gen2 source into the V1 definition: Azure accepts the PUT and fails the operation with Conflict.
    snaps: dict[str, SnapshotResult] = state["snapshots"]
    payload = {
        "captureId": CAPTURE,
        "gallery": {**GALLERY, "subscriptionId": state["facts"].subscription_id},
        "definitionName": "web-v1",
        "version": "1.0.0",
        "location": "westeurope",
        "osSnapshotId": snaps["os"].snapshot_id,
        "targetRegions": [{"name": "westeurope"}],
    }
    try:
        started = VersionStatus.from_wire(call(gallery.start_image_version, payload))
    except AzureOperationError as exc:  # refused at once is acceptable too, as long as it says why
        assert "Hypervisor generation" in str(exc) or "V1" in str(exc)
        return
    ref = {"versionId": started.version_id, "operationUrl": started.operation_url}
    failed = poll(
        lambda: VersionStatus.from_wire(call(gallery.get_version_status, ref)),
        lambda s: (s.provisioning_state or "").lower() == "failed",
    )
    assert failed.error and "Conflict" in failed.error and "Hypervisor generation" in failed.error


def test_version_checks_know_their_own_version(cloud: Any, call: Calls) -> None:
    facts: VmFacts = state["facts"]
    ours = _check(call, facts, version="1.0.0")
    assert ours.problems == [] and ours.version_exists and ours.version_is_ours
    theirs = _check(call, facts, version="1.0.0", capture="cap-other")
    assert theirs.version_exists and not theirs.version_is_ours
    assert theirs.problems == [
        'version 1.0.0 of image definition web-ubuntu already exists: choose another version, or use "auto" '
        "for the next patch version"
    ]
    assert _check(call, facts, capture="cap-other").resolved_version == "1.0.1"
    assert _check(call, facts).resolved_version == "1.0.0"  # auto, re-run of the same capture


def test_export_target_checks(cloud: Any, call: Calls, monkeypatch: pytest.MonkeyPatch) -> None:
    url = cloud.storage_account_url("stexports")
    ok = ExportCheckResult.from_wire(
        call(preflight.check_export_target, {"accountUrl": url, "container": "vhds"})
    )
    assert ok.reachable and ok.container_exists and ok.problem is None
    assert cloud.blob_service("stexports").get_container_client("vhds").exists()
    # Storage clients retry a refused connection with their own backoff (15 s, x3): skip that wait here.
    monkeypatch.setattr(
        clients,
        "blob_service",
        lambda account_url: BlobServiceClient(account_url, credential=clients.credential(), retry_total=0),
    )
    gone = ExportCheckResult.from_wire(
        call(
            preflight.check_export_target, {"accountUrl": "https://127.0.0.1:9/nothing", "container": "vhds"}
        )
    )
    assert not gone.reachable and gone.problem and "could not reach the storage account" in gone.problem


def _export(cloud: Any, call: Calls, capture: str, key: str, container: str = "vhds") -> CopyStatus:
    snap: SnapshotResult = state["snapshots"][key]
    disk = next(d for d in state["facts"].disks if d.key == key)
    payload = {
        "captureId": capture,
        "snapshotId": snap.snapshot_id,
        "diskKey": key,
        "diskName": disk.name,
        "sizeGb": disk.size_gb,
        "accountUrl": cloud.storage_account_url("stexports"),
        "container": container,
        "sasDurationSeconds": 3600,
    }
    return CopyStatus.from_wire(call(exports.start_export, payload))


def test_export_copies_and_revoking_kills_the_sas(cloud: Any, call: Calls) -> None:
    first = _export(cloud, call, CAPTURE, "os")
    assert first.status in ("pending", "success") and first.copy_id
    assert first.blob_url.endswith(f"/vhds/{CAPTURE}/vm-web_OsDisk.vhd") and "?" not in first.blob_url
    again = _export(cloud, call, CAPTURE, "os")  # a re-executed activity reuses the running copy
    assert again.copy_id == first.copy_id
    seen: list[str] = []

    def status() -> CopyStatus:
        st = CopyStatus.from_wire(
            call(exports.get_copy_status, {"blobUrl": first.blob_url, "copyId": first.copy_id})
        )
        seen.append(st.status)
        return st

    done = poll(status, lambda s: s.status != "pending", timeout=60)
    assert done.status == "success" and done.bytes_total > 0 and done.bytes_copied == done.bytes_total
    exported = cloud.blob_service("stexports").get_blob_client("vhds", f"{CAPTURE}/vm-web_OsDisk.vhd")
    assert exported.download_blob(offset=done.bytes_total - 512, length=512).readall()[:8] == b"conectix"

    # The test (never the activity's caller) fetches a SAS to prove that revocation kills it.
    compute = cloud.arm_client(ComputeManagementClient)
    sas = compute.snapshots.begin_grant_access(
        "rg-build", f"{CAPTURE}-os", cm.GrantAccessData({"access": "Read", "durationInSeconds": 600})
    ).result()["accessSAS"]
    assert BlobClient.from_blob_url(sas).download_blob(offset=0, length=512).readall()
    revoked = Done.from_wire(
        call(snapshots.revoke_snapshot_access, {"snapshotId": state["snapshots"]["os"].snapshot_id})
    )
    assert revoked.changed
    with pytest.raises(HttpResponseError) as refused:
        BlobClient.from_blob_url(sas).download_blob(offset=0, length=512).readall()
    assert refused.value.status_code in (403, 404)
    again_revoked = Done.from_wire(
        call(snapshots.revoke_snapshot_access, {"snapshotId": state["snapshots"]["os"].snapshot_id})
    )
    assert not again_revoked.changed


def test_a_stalled_copy_is_aborted(cloud: Any, call: Calls) -> None:
    started = _export(cloud, call, "cap-stall", "lun0")
    assert started.status == "pending"
    ref = {"blobUrl": started.blob_url, "copyId": started.copy_id}
    aborted = CopyStatus.from_wire(call(exports.abort_copy, ref))
    assert aborted.status == "aborted"
    assert CopyStatus.from_wire(call(exports.abort_copy, ref)).status == "aborted"  # idempotent
    assert CopyStatus.from_wire(call(exports.get_copy_status, ref)).status == "aborted"
    call(snapshots.revoke_snapshot_access, {"snapshotId": state["snapshots"]["lun0"].snapshot_id})


def test_a_failed_copy_start_raises_without_the_sas(cloud: Any, call: Calls) -> None:
    with pytest.raises(AzureOperationError) as caught:
        _export(cloud, call, "cap-nocontainer", "lun0", container="no-such-container")
    text = str(caught.value)
    assert "ContainerNotFound" in text and "start the VHD copy" in text
    assert not contains_secret(text) and "sig=" not in text.lower()
    assert caught.value.__cause__ is None
    call(snapshots.revoke_snapshot_access, {"snapshotId": state["snapshots"]["lun0"].snapshot_id})


def test_deletes_are_idempotent(cloud: Any, call: Calls) -> None:
    for snap in state["snapshots"].values():
        ref = {"snapshotId": snap.snapshot_id}
        assert Done.from_wire(call(snapshots.delete_snapshot, ref)).changed
        poll(lambda ref=ref: Done.from_wire(call(snapshots.delete_snapshot, ref)), lambda d: not d.changed)
    version: VersionStatus = state["version"]
    ref = {"versionId": version.version_id}
    assert Done.from_wire(call(gallery.delete_image_version, ref)).changed
    poll(lambda: VersionStatus.from_wire(call(gallery.get_version_status, ref)), lambda s: not s.exists)
    assert not Done.from_wire(call(gallery.delete_image_version, ref)).changed


def test_no_result_error_or_log_carries_a_secret(call: Calls, activity_logs: list[logging.LogRecord]) -> None:
    assert len(call.texts) > 40  # the checks above really ran through the recorder
    leaks = [t for t in call.texts if contains_secret(t) or "sig=" in t.lower()]
    assert leaks == []
    logged = [r.getMessage() for r in activity_logs]
    assert any("start_export" in m for m in logged)
    assert [m for m in logged if contains_secret(m) or "sig=" in m.lower()] == []
