"""The capture's activities against the local cloud, on vm-web (Linux Gen2 + one data disk):
guest prepare, deallocate, generalize, snapshots, gallery checks, definition, version + replication,
VHD export (copy, SAS revocation, abort of a stalled copy), deletes, and no secret anywhere.

Every test stands alone (it passes run by itself, in any order, on any xdist worker). What several
tests need is built once per module by fixtures through the activities themselves: ``web`` (vm-web
deallocated and generalized), ``web_snapshots`` (a snapshot of each of its disks), ``definition``
(gallery galActivities with definition web-ubuntu), ``web_version`` (version 1.0.0 of web-ubuntu) and
``export_container``. A test that exercises one of those steps itself works on its own resources
(another VM, capture ID, gallery or definition), so it never changes what a fixture promised.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import pytest
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
from tests.activities.activity_cloud import Calls, poll

CAPTURE = "cap-web"
GALLERY = {"resourceGroup": "rg-images", "name": "galActivities", "createIfMissing": True}
DEFINITION = {"name": "web-ubuntu", "publisher": "contoso", "offer": "web", "sku": "ubuntu-22"}
REGIONS = [
    {"name": "westeurope", "replicaCount": 2, "storageAccountType": "Standard_ZRS"},
    {"name": "northeurope"},
    {"name": "eastus2"},
]


# --- helpers (each drives the activities the way the orchestrator does) ---------------------------


def _facts(cloud: Any, call: Calls, name: str = "vm-web") -> VmFacts:
    return VmFacts.from_wire(
        call(virtual_machines.get_vm_facts, {"vmId": vm_id(cloud.subscription_id, "rg-build", name)})
    )


def _power(call: Calls, vm: str) -> PowerState:
    return PowerState.from_wire(call(virtual_machines.get_power_state, {"vmId": vm}))


def _prepare(cloud: Any, call: Calls, name: str) -> VmFacts:
    """Deprovision the guest, deallocate and generalize a running Linux VM; return its new facts."""
    facts = _facts(cloud, call, name)
    prep = GuestPrepareResult.from_wire(
        call(virtual_machines.start_guest_prepare, {"vmId": facts.id, "osType": "Linux"})
    )
    assert prep.started and prep.command == "RunShellScript"
    poll(lambda: _power(call, facts.id), lambda s: s.power_state == "stopped")
    call(virtual_machines.start_deallocate, {"vmId": facts.id})
    poll(lambda: _power(call, facts.id), lambda s: s.power_state == "deallocated")
    assert PowerState.from_wire(call(virtual_machines.generalize_vm, {"vmId": facts.id})).generalized
    return _facts(cloud, call, name)


def _snapshot_payload(facts: VmFacts, capture: str, disk: Any) -> dict[str, Any]:
    return {
        "captureId": capture,
        "disk": disk.to_wire(),
        "subscriptionId": facts.subscription_id,
        "resourceGroup": "rg-build",
        "location": facts.location,
        "hyperVGeneration": facts.hyper_v_generation,
        "tags": {"ci-run": "1"},
    }


def _wait_snapshot(call: Calls, snapshot_id: str) -> SnapshotResult:
    return poll(
        lambda: SnapshotResult.from_wire(call(snapshots.get_snapshot, {"snapshotId": snapshot_id})),
        lambda s: s.provisioning_state == "Succeeded",
    )


def _snapshot_all(call: Calls, facts: VmFacts, capture: str) -> dict[str, SnapshotResult]:
    """A finished snapshot of every disk of the VM, keyed by disk key ("os", "lun0", ...)."""
    started = [
        SnapshotResult.from_wire(call(snapshots.start_snapshot, _snapshot_payload(facts, capture, d)))
        for d in facts.disks
    ]
    return {s.disk_key: _wait_snapshot(call, s.snapshot_id) for s in started}


def _ensure_definition(call: Calls, facts: VmFacts, **definition: str) -> DefinitionResult:
    """Gallery galActivities (created if missing) with a definition made from the VM's facts."""
    payload = {
        "gallery": {**GALLERY, "subscriptionId": facts.subscription_id},
        "definition": {**DEFINITION, **definition},
        "vm": facts.to_wire(),
        "location": facts.location,
    }
    return DefinitionResult.from_wire(call(gallery.ensure_definition, payload))


def _v1_definition(cloud: Any, name: str, sku: str) -> None:
    """A Hyper-V V1 Linux definition in galActivities, made directly through ARM (not by the capture)."""
    body = {
        "location": "westeurope",
        "properties": {
            "osType": "Linux",
            "osState": "Generalized",
            "hyperVGeneration": "V1",
            "identifier": {"publisher": "contoso", "offer": "web", "sku": sku},
        },
    }
    cloud.arm_client(ComputeManagementClient).gallery_images.begin_create_or_update(
        "rg-images", "galActivities", name, cm.GalleryImage(body)
    ).result()


def _version_payload(
    facts: VmFacts, snaps: dict[str, SnapshotResult], definition: str, version: str, **over: Any
) -> dict[str, Any]:
    return {
        "captureId": CAPTURE,
        "gallery": {**GALLERY, "subscriptionId": facts.subscription_id},
        "definitionName": definition,
        "version": version,
        "location": "westeurope",
        "osSnapshotId": snaps["os"].snapshot_id,
        "targetRegions": [{"name": "westeurope"}],
        **over,
    }


def _version_status(call: Calls, started: VersionStatus) -> VersionStatus:
    ref = {"versionId": started.version_id, "operationUrl": started.operation_url}
    return VersionStatus.from_wire(call(gallery.get_version_status, ref))


def _succeeded_version(call: Calls, payload: dict[str, Any]) -> VersionStatus:
    started = VersionStatus.from_wire(call(gallery.start_image_version, payload))
    poll(
        lambda: _version_status(call, started),
        lambda s: (s.provisioning_state or "").lower() == "succeeded",
        timeout=90,
    )
    return started


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


def _export(
    cloud: Any,
    call: Calls,
    facts: VmFacts,
    snaps: dict[str, SnapshotResult],
    capture: str,
    key: str,
    container: str = "vhds",
) -> CopyStatus:
    disk = next(d for d in facts.disks if d.key == key)
    payload = {
        "captureId": capture,
        "snapshotId": snaps[key].snapshot_id,
        "diskKey": key,
        "diskName": disk.name,
        "sizeGb": disk.size_gb,
        "accountUrl": cloud.storage_account_url("stexports"),
        "container": container,
        "sasDurationSeconds": 3600,
    }
    return CopyStatus.from_wire(call(exports.start_export, payload))


# --- module fixtures: the state a capture of vm-web has reached, built once per module ----------------


@pytest.fixture(scope="module")
def web(cloud: Any, call: Calls) -> VmFacts:
    """vm-web deprovisioned, deallocated and generalized (the capture's first steps)."""
    facts = _prepare(cloud, call, "vm-web")
    assert facts.generalized and facts.power_state == "deallocated"
    return facts


@pytest.fixture(scope="module")
def web_snapshots(call: Calls, web: VmFacts) -> dict[str, SnapshotResult]:
    """Finished snapshots of vm-web's disks under the capture ID ``CAPTURE``."""
    snaps = _snapshot_all(call, web, CAPTURE)
    assert sorted(snaps) == ["lun0", "os"]
    return snaps


@pytest.fixture(scope="module")
def definition(call: Calls, web: VmFacts) -> DefinitionResult:
    """Gallery galActivities with the V2 Linux definition web-ubuntu, made from vm-web by the activity."""
    return _ensure_definition(call, web)


@pytest.fixture(scope="module")
def web_version(
    call: Calls, web: VmFacts, web_snapshots: dict[str, SnapshotResult], definition: DefinitionResult
) -> VersionStatus:
    """Version 1.0.0 of web-ubuntu made by ``CAPTURE`` (westeurope only, to be quick), provisioned."""
    return _succeeded_version(call, _version_payload(web, web_snapshots, "web-ubuntu", "1.0.0"))


@pytest.fixture(scope="module")
def export_container(cloud: Any, call: Calls) -> str:
    """The export container "vhds" of stexports, created by the export preflight as in a capture."""
    url = cloud.storage_account_url("stexports")
    ok = ExportCheckResult.from_wire(
        call(preflight.check_export_target, {"accountUrl": url, "container": "vhds"})
    )
    assert ok.problem is None, ok.problem
    return "vhds"


# --- tests ------------------------------------------------------------------------------------------


def test_prepare_deallocate_generalize(cloud: Any, call: Calls) -> None:
    # vm-web-2 is a Linux Gen2 VM with a data disk like vm-web; the fixture ``web`` prepares vm-web.
    before = _facts(cloud, call, "vm-web-2")
    assert (before.power_state, before.generalized) == ("running", False)
    facts = _prepare(cloud, call, "vm-web-2")
    assert facts.generalized and facts.power_state == "deallocated"


def test_snapshots_are_created_once_per_disk(cloud: Any, call: Calls, web: VmFacts) -> None:
    capture = "cap-snaps"  # not the fixtures' capture: this test creates its own snapshots
    results: dict[str, SnapshotResult] = {}
    for disk in web.disks:
        payload = _snapshot_payload(web, capture, disk)
        first = SnapshotResult.from_wire(call(snapshots.start_snapshot, payload))
        assert first.name == snapshot_name(capture, disk.lun) and first.disk_key == disk.key
        done = _wait_snapshot(call, first.snapshot_id)
        assert (done.disk_key, done.lun) == (disk.key, disk.lun)
        again = SnapshotResult.from_wire(call(snapshots.start_snapshot, payload))  # a re-executed activity
        assert again.snapshot_id == first.snapshot_id
        results[disk.key] = done
    assert sorted(results) == ["lun0", "os"]
    compute = cloud.arm_client(ComputeManagementClient)
    names = sorted(
        s.name
        for s in compute.snapshots.list_by_resource_group("rg-build")
        if s.name.startswith(f"{capture}-")
    )
    assert names == [f"{capture}-lun0", f"{capture}-os"]
    snap = compute.snapshots.get("rg-build", f"{capture}-os")
    assert snap.tags[TAG_CAPTURE_ID] == capture and snap.tags["ci-run"] == "1"


def test_gallery_check_before_anything_exists(cloud: Any, call: Calls, web: VmFacts) -> None:
    # galUntouched: a gallery no test creates (the fixtures create galActivities).
    untouched = {"name": "galUntouched"}
    ok = _check(call, web, gallery=untouched)
    assert (ok.gallery_exists, ok.definition, ok.resolved_version, ok.problems) == (False, None, "1.0.0", [])
    strict = _check(
        call, web, gallery={**untouched, "createIfMissing": False}, definition={"createIfMissing": False}
    )
    assert len(strict.problems) == 2
    assert "gallery galUntouched does not exist" in strict.problems[0]
    assert "image definition web-ubuntu does not exist" in strict.problems[1]


def test_definition_is_created_from_the_vm(cloud: Any, call: Calls, web: VmFacts) -> None:
    # Its own gallery, so that both the gallery and the definition are really created here.
    own = {"name": "galDefinitions"}
    payload = {
        "gallery": {**GALLERY, **own, "subscriptionId": web.subscription_id},
        "definition": DEFINITION,
        "vm": web.to_wire(),
        "location": web.location,
        "tags": {"ci-run": "1"},
    }
    assert not _check(call, web, gallery=own).gallery_exists
    created = DefinitionResult.from_wire(call(gallery.ensure_definition, payload))
    assert created.gallery_created and created.definition_created
    assert created.definition_id.endswith("/galleries/galDefinitions/images/web-ubuntu")
    again = DefinitionResult.from_wire(call(gallery.ensure_definition, payload))
    assert not again.gallery_created and not again.definition_created
    made = cloud.arm_client(ComputeManagementClient).gallery_images.get(
        "rg-images", "galDefinitions", "web-ubuntu"
    )
    p = made.as_dict()["properties"]
    assert (p["osType"], p["osState"], p["hyperVGeneration"], p.get("architecture", "x64")) == (
        "Linux",
        "Generalized",
        "V2",
        "x64",
    )
    check = _check(call, web, gallery=own)
    assert (
        check.problems == [] and check.definition is not None and check.definition.hyper_v_generation == "V2"
    )


def test_incompatible_definitions_are_named_with_the_fix(
    cloud: Any, call: Calls, web: VmFacts, definition: DefinitionResult
) -> None:
    _v1_definition(cloud, "web-v1", sku="legacy")
    v1 = _check(call, web, definition={"name": "web-v1"})
    assert v1.problems == [
        "the image definition web-v1 is Hyper-V V1 but vm-web is V2: use a V2 definition or let the capture create one"
    ]
    windows_tl = _facts(cloud, call, "vm-win")
    mixed = _check(call, windows_tl)  # against web-ubuntu (the fixture ``definition``)
    assert len(mixed.problems) == 2
    assert "is for Linux but vm-win runs Windows" in mixed.problems[0]
    assert "no SecurityType feature but vm-win uses Trusted Launch" in mixed.problems[1]


def test_image_version_replicates_to_every_region(
    cloud: Any, call: Calls, web: VmFacts, web_snapshots: dict[str, SnapshotResult]
) -> None:
    # Its own definition: web-ubuntu's versions belong to the fixture ``web_version``.
    dname = "web-ubuntu-repl"
    assert _ensure_definition(call, web, name=dname, sku="ubuntu-22-repl").definition_created
    payload = _version_payload(
        web,
        web_snapshots,
        dname,
        "1.0.0",
        dataSnapshots=[{"lun": 0, "snapshotId": web_snapshots["lun0"].snapshot_id}],
        targetRegions=REGIONS,
        endOfLifeDate="2027-12-31",
        tags={"image-pipeline:source-vm": web.id},
    )
    started = VersionStatus.from_wire(call(gallery.start_image_version, payload))
    assert started.exists and started.version_id.endswith(f"/images/{dname}/versions/1.0.0")
    seen: set[tuple[str, str]] = set()

    def status() -> VersionStatus:
        st = _version_status(call, started)
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
        "rg-images", "galActivities", dname, "1.0.0"
    )
    assert version.tags[TAG_CAPTURE_ID] == CAPTURE

    other = {**payload, "captureId": "cap-other"}
    with pytest.raises(AzureOperationError, match="already exists and was not made by this capture"):
        call(gallery.start_image_version, other)


def test_a_version_azure_refuses_later_reports_azures_code_and_message(
    cloud: Any,
    call: Calls,
    web: VmFacts,
    web_snapshots: dict[str, SnapshotResult],
    definition: DefinitionResult,
) -> None:
    # A Gen2 source into a V1 definition: Azure accepts the PUT and fails the operation with Conflict.
    # Its own V1 definition, so that the failed version shows in no other test's checks.
    _v1_definition(cloud, "web-v1-refused", sku="legacy-refused")
    payload = _version_payload(web, web_snapshots, "web-v1-refused", "1.0.0")
    try:
        started = VersionStatus.from_wire(call(gallery.start_image_version, payload))
    except AzureOperationError as exc:  # refused at once is acceptable too, as long as it says why
        assert "Hypervisor generation" in str(exc) or "V1" in str(exc)
        return
    failed = poll(
        lambda: _version_status(call, started),
        lambda s: (s.provisioning_state or "").lower() == "failed",
    )
    assert failed.error and "Conflict" in failed.error and "Hypervisor generation" in failed.error


def test_version_checks_know_their_own_version(call: Calls, web: VmFacts, web_version: VersionStatus) -> None:
    assert web_version.version_id.endswith("/images/web-ubuntu/versions/1.0.0")
    ours = _check(call, web, version="1.0.0")
    assert ours.problems == [] and ours.version_exists and ours.version_is_ours
    theirs = _check(call, web, version="1.0.0", capture="cap-other")
    assert theirs.version_exists and not theirs.version_is_ours
    assert theirs.problems == [
        'version 1.0.0 of image definition web-ubuntu already exists: choose another version, or use "auto" '
        "for the next patch version"
    ]
    assert _check(call, web, capture="cap-other").resolved_version == "1.0.1"
    assert _check(call, web).resolved_version == "1.0.0"  # auto, re-run of the same capture


def test_export_target_checks(cloud: Any, call: Calls, monkeypatch: pytest.MonkeyPatch) -> None:
    # A container no other test uses, so the check really creates it here.
    url = cloud.storage_account_url("stexports")
    container = cloud.blob_service("stexports").get_container_client("vhds-checked")
    assert not container.exists()
    ok = ExportCheckResult.from_wire(
        call(preflight.check_export_target, {"accountUrl": url, "container": "vhds-checked"})
    )
    assert ok.reachable and ok.container_exists and ok.problem is None
    assert container.exists()
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


def test_export_copies_and_revoking_kills_the_sas(
    cloud: Any, call: Calls, web: VmFacts, web_snapshots: dict[str, SnapshotResult], export_container: str
) -> None:
    first = _export(cloud, call, web, web_snapshots, CAPTURE, "os")
    assert first.status in ("pending", "success") and first.copy_id
    assert first.blob_url.endswith(f"/vhds/{CAPTURE}/vm-web_OsDisk.vhd") and "?" not in first.blob_url
    again = _export(cloud, call, web, web_snapshots, CAPTURE, "os")  # a re-execution reuses the copy
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
    ref = {"snapshotId": web_snapshots["os"].snapshot_id}
    revoked = Done.from_wire(call(snapshots.revoke_snapshot_access, ref))
    assert revoked.changed
    with pytest.raises(HttpResponseError) as refused:
        BlobClient.from_blob_url(sas).download_blob(offset=0, length=512).readall()
    assert refused.value.status_code in (403, 404)
    again_revoked = Done.from_wire(call(snapshots.revoke_snapshot_access, ref))
    assert not again_revoked.changed


def test_a_stalled_copy_is_aborted(
    cloud: Any, call: Calls, web: VmFacts, web_snapshots: dict[str, SnapshotResult], export_container: str
) -> None:
    started = _export(cloud, call, web, web_snapshots, "cap-stall", "lun0")
    assert started.status == "pending"
    ref = {"blobUrl": started.blob_url, "copyId": started.copy_id}
    aborted = CopyStatus.from_wire(call(exports.abort_copy, ref))
    assert aborted.status == "aborted"
    assert CopyStatus.from_wire(call(exports.abort_copy, ref)).status == "aborted"  # idempotent
    assert CopyStatus.from_wire(call(exports.get_copy_status, ref)).status == "aborted"
    call(snapshots.revoke_snapshot_access, {"snapshotId": web_snapshots["lun0"].snapshot_id})


def test_a_failed_copy_start_raises_without_the_sas(
    cloud: Any, call: Calls, web: VmFacts, web_snapshots: dict[str, SnapshotResult]
) -> None:
    with pytest.raises(AzureOperationError) as caught:
        _export(cloud, call, web, web_snapshots, "cap-nocontainer", "lun0", container="no-such-container")
    text = str(caught.value)
    assert "ContainerNotFound" in text and "start the VHD copy" in text
    assert not contains_secret(text) and "sig=" not in text.lower()
    assert caught.value.__cause__ is None
    call(snapshots.revoke_snapshot_access, {"snapshotId": web_snapshots["lun0"].snapshot_id})


def _delete_snapshot(call: Any, ref: dict[str, Any]) -> Done:
    return Done.from_wire(call(snapshots.delete_snapshot, ref))


def test_deletes_are_idempotent(cloud: Any, call: Calls, web: VmFacts, definition: DefinitionResult) -> None:
    # Its own snapshots and version (in its own definition): the fixtures' ones stay for other tests.
    snaps = _snapshot_all(call, web, "cap-delete")
    dname = "web-ubuntu-delete"
    _ensure_definition(call, web, name=dname, sku="ubuntu-22-delete")
    version = _succeeded_version(call, _version_payload(web, snaps, dname, "1.0.0", captureId="cap-delete"))
    assert sorted(snaps) == ["lun0", "os"]
    for snap in snaps.values():
        ref = {"snapshotId": snap.snapshot_id}
        assert Done.from_wire(call(snapshots.delete_snapshot, ref)).changed
        poll(functools.partial(_delete_snapshot, call, ref), lambda d: not d.changed)
    vref = {"versionId": version.version_id}
    assert Done.from_wire(call(gallery.delete_image_version, vref)).changed
    poll(lambda: VersionStatus.from_wire(call(gallery.get_version_status, vref)), lambda s: not s.exists)
    assert not Done.from_wire(call(gallery.delete_image_version, vref)).changed


def test_no_result_error_or_log_carries_a_secret(
    cloud: Any,
    call: Calls,
    web: VmFacts,
    web_snapshots: dict[str, SnapshotResult],
    export_container: str,
    activity_logs: list[logging.LogRecord],
) -> None:
    # The paths where a SAS exists: an export (grant, copy, status), a refused copy start, revocation.
    # (The autouse fixture ``activity_logs`` checks every other test's texts and logs the same way.)
    start = len(call.texts)
    first = _export(cloud, call, web, web_snapshots, "cap-secret", "lun0")
    poll(
        lambda: CopyStatus.from_wire(
            call(exports.get_copy_status, {"blobUrl": first.blob_url, "copyId": first.copy_id})
        ),
        lambda s: s.status != "pending",
    )
    with pytest.raises(AzureOperationError):
        _export(cloud, call, web, web_snapshots, "cap-secret-refused", "os", container="no-such-container")
    for key in ("os", "lun0"):
        call(snapshots.revoke_snapshot_access, {"snapshotId": web_snapshots[key].snapshot_id})
    texts = call.texts[start:]
    assert len(texts) >= 5  # the calls above really ran through the recorder
    assert any(first.blob_url in t for t in texts)
    leaks = [t for t in texts if contains_secret(t) or "sig=" in t.lower()]
    assert leaks == []
    logged = [r.getMessage() for r in activity_logs]
    assert any("start_export" in m for m in logged)
    assert any("start_export" in m and "failed" in m for m in logged)
    assert [m for m in logged if contains_secret(m) or "sig=" in m.lower()] == []
