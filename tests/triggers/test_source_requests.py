"""Intake of the request's ``source`` (shared/sources.py, shared/source_intake.py): the four forms, and the
400s — every problem at once, each naming its field."""

from __future__ import annotations

from typing import Any

import pytest

from shared.ids import capture_instance_id
from shared.requests import CaptureRequest, validate_request
from tests.triggers.intake_support import SUB, VM_ID, valid_request

GROUP = f"/subscriptions/{SUB}/resourceGroups/rg-legacy-images/providers"
IMAGE = f"{GROUP}/Microsoft.Compute/images/img-linux-gen2"
SNAP = f"/subscriptions/{SUB}/resourceGroups/rg-build/providers/Microsoft.Compute/snapshots/snap-os"
SNAP_DATA = f"/subscriptions/{SUB}/resourceGroups/rg-build/providers/Microsoft.Compute/snapshots/snap-lun0"
ACCOUNT = f"{GROUP}/Microsoft.Storage/storageAccounts/stlegacyvhds"
BLOBS = "https://stlegacyvhds.blob.core.windows.net"


def _request(source: dict[str, Any], **over: Any) -> dict[str, Any]:
    body = valid_request(source=source, **over)
    for field in ("sourceVmId", "captureMode", "prepare"):
        if field not in over:
            del body[field]
    return body


def _vhds(
    os_uri: str = f"{BLOBS}/vhds/app-os.vhd", data: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    source: dict[str, Any] = {
        "vhds": {"storageAccountId": ACCOUNT, "os": {"uri": os_uri}, "data": data or []},
        "osType": "Linux",
        "hyperVGeneration": "V2",
    }
    source.update(extra)
    return source


def errors_of(body: Any) -> dict[str, str]:
    request, errors = validate_request(body)
    assert request is None, "expected the request to be refused"
    found = {e.field: e.message for e in errors}
    assert len(found) == len(errors), errors  # one entry per field: nothing reported twice
    return found


def accepted(body: Any) -> CaptureRequest:
    request, errors = validate_request(body)
    assert errors == [] and request is not None, errors
    return request


def test_the_vm_forms_are_one_and_the_same() -> None:
    old = accepted(valid_request())
    new_body = valid_request(source={"vmId": VM_ID})
    del new_body["sourceVmId"]
    new = accepted(new_body)
    both = accepted(valid_request(source={"vmId": VM_ID}))
    for r in (old, new, both):
        assert (r.source_kind, r.source_id, r.source_vm_id, r.vm_id) == ("vm", VM_ID, VM_ID, VM_ID)
        # One running capture per VM, whichever spelling started it.
        assert r.capture_id == capture_instance_id(VM_ID)
    # The wire form carries both, so a request stored by this version replays on the previous one's fields.
    assert new.to_wire()["sourceVmId"] == VM_ID and new.to_wire()["source"] == {"vmId": VM_ID}


def test_each_other_form_is_accepted_without_a_capture_mode() -> None:
    image = accepted(_request({"managedImageId": IMAGE}))
    assert (image.source_kind, image.source_id, image.source_vm_id) == ("managedImage", IMAGE, None)
    assert image.capture_id.startswith("capture-img-linux-gen2-")
    snaps = accepted(_request({"snapshots": {"os": SNAP, "data": [{"lun": 0, "id": SNAP_DATA}]}}))
    assert (snaps.source_kind, snaps.source_id) == ("snapshots", SNAP)
    vhds = accepted(_request(_vhds(data=[{"lun": 1, "uri": f"{BLOBS}/vhds/data/lun1.vhd"}])))
    assert (vhds.source_kind, vhds.source_id) == ("vhds", f"{BLOBS}/vhds/app-os.vhd")
    assert vhds.gallery_subscription_id == SUB and vhds.capture_id.startswith("capture-app-os-")
    with pytest.raises(ValueError, match="not a VM"):
        _ = image.vm_id
    # Replays: what intake stored parses back to the same request.
    for r in (image, snaps, vhds):
        assert CaptureRequest.from_wire(r.to_wire()) == r


def test_a_request_without_a_source_or_with_two_is_refused() -> None:
    body = valid_request()
    del body["sourceVmId"]
    assert "exactly one of vmId, managedImageId, snapshots, vhds" in errors_of(body)["source"]
    two = errors_of(_request({"managedImageId": IMAGE, "snapshots": {"os": SNAP}}))
    assert "names managedImageId and snapshots" in two["source"]
    empty = errors_of(_request({}))
    assert "name the source" in empty["source"]


def test_vm_only_fields_with_another_source_are_all_named_at_once() -> None:
    body = _request(
        {"managedImageId": IMAGE},
        captureMode="specialized",
        prepare="none",
        consistency="crash",
        vhdExport={"accountUrl": "https://stexports.blob.core.windows.net", "container": "vhds"},
    )
    found = errors_of(body)
    assert {"captureMode", "prepare", "consistency", "vhdExport"} <= set(found), found
    assert "applies only to a VM source (source.vmId); this source is managedImageId" in found["captureMode"]
    assert "only with a VM source" in found["vhdExport"]


def test_a_vm_source_still_needs_its_capture_mode() -> None:
    body = valid_request(source={"vmId": VM_ID})
    del body["sourceVmId"], body["captureMode"]
    assert "never assumed" in errors_of(body)["captureMode"]


def test_source_vm_id_beside_another_source_or_another_vm_is_refused() -> None:
    assert (
        "not beside another source"
        in errors_of(valid_request(source={"managedImageId": IMAGE}))["sourceVmId"]
    )
    other = VM_ID.replace("vm-web", "vm-other")
    assert "names another VM" in errors_of(valid_request(source={"vmId": other}))["sourceVmId"]


def test_os_options_go_with_vhds_and_snapshots_only_and_vhds_need_them() -> None:
    found = errors_of(_request({"managedImageId": IMAGE, "osType": "Linux", "osState": "Specialized"}))
    assert set(found) == {"source.osType", "source.osState"}
    assert "a managedImageId source says it itself" in found["source.osType"]
    bare = _vhds()
    del bare["osType"], bare["hyperVGeneration"]
    found = errors_of(_request(bare))
    assert set(found) == {"source.osType", "source.hyperVGeneration"}
    assert "A VHD carries no OS type or generation".lower() in found["source.osType"].lower()
    assert "source.hyperVGeneration" in errors_of(_request(_vhds(hyperVGeneration="V3")))


@pytest.mark.parametrize(
    ("form", "value", "field"),
    [
        ({"managedImageId": VM_ID}, None, "source.managedImageId"),
        ({"managedImageId": "img-linux-gen2"}, None, "source.managedImageId"),
        ({"snapshots": {"os": IMAGE}}, None, "source.snapshots.os"),
        (
            {"snapshots": {"os": SNAP, "data": [{"lun": 64, "id": SNAP_DATA}]}},
            None,
            "source.snapshots.data[0].lun",
        ),
        (
            {"snapshots": {"os": SNAP, "data": [{"lun": "0", "id": SNAP_DATA}]}},
            None,
            "source.snapshots.data[0].lun",
        ),
        (
            {"snapshots": {"os": SNAP, "data": [{"lun": 0, "id": SNAP}, {"lun": 0, "id": SNAP_DATA}]}},
            None,
            "source.snapshots.data",
        ),
        ({"vmId": IMAGE}, None, "source.vmId"),
        ({"snapshots": {"os": SNAP}, "extra": 1}, None, "source.extra"),
    ],
)
def test_a_bad_source_field_is_refused_naming_it(form: dict[str, Any], value: Any, field: str) -> None:
    body = _request(form) if "vmId" not in form else valid_request(source=form, sourceVmId=IMAGE)
    if "vmId" in form:
        del body["sourceVmId"]
    assert field in errors_of(body), errors_of(body)


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("https://evil.example/vhds/a.vhd", "is not a blob of the storage account stlegacyvhds"),
        (
            "https://stexports.blob.core.windows.net/vhds/a.vhd",
            "is not a blob of the storage account stlegacyvhds",
        ),
        (
            "https://stlegacyvhds.blob.core.windows.net.evil.example/vhds/a.vhd",
            "is not a blob of the storage",
        ),
        ("http://stlegacyvhds.blob.core.windows.net/vhds/a.vhd", "must be an https URL"),
        ("https://stlegacyvhds.blob.core.windows.net/vhds/a.vhd?sv=2024&sig=abc", "no SAS"),
        ("https://user:pw@stlegacyvhds.blob.core.windows.net/vhds/a.vhd", "must not carry credentials"),
        (
            "https://stlegacyvhds.blob.core.windows.net:8443/vhds/a.vhd",
            "is not a blob of the storage account",
        ),
        ("https://127.0.0.1/stlegacyvhds/vhds/a.vhd", "is not a blob of the storage account"),
        ("https://stlegacyvhds.blob.core.windows.net/vhds/../etc/a.vhd", "'.' or '..' path segments"),
        ("https://stlegacyvhds.blob.core.windows.net/VHDS/a.vhd", "container"),
        ("https://stlegacyvhds.blob.core.windows.net/vhds/", "the blob name"),
        ("https://stlegacyvhds.blob.core.windows.net/vhds/a%2e.vhd", "the blob name"),
        ("https://stlegacyvhds.blob.core.windows.net/vhds/a.vhd\r\nHost: x", "control characters"),
    ],
)
def test_a_vhd_uri_outside_the_named_accounts_blob_endpoint_is_refused(uri: str, why: str) -> None:
    found = errors_of(_request(_vhds(os_uri=uri)))
    assert why in found["source.vhds.os.uri"], found


def test_every_bad_vhd_uri_is_reported_at_once() -> None:
    data = [
        {"lun": 0, "uri": f"{BLOBS}/vhds/ok.vhd"},
        {"lun": 1, "uri": "https://evil.example/vhds/b.vhd"},
    ]
    found = errors_of(_request(_vhds(os_uri="https://evil.example/a.vhd", data=data), captureMode="inPlace"))
    assert {"source.vhds.os.uri", "source.vhds.data[1].uri", "captureMode"} <= set(found), found
    assert "source.vhds.data[0].uri" not in found


def test_the_janitor_finds_the_subscription_of_a_stored_source() -> None:
    from shared.sources import source_subscription

    assert source_subscription({"managedImageId": IMAGE}) == SUB
    assert source_subscription(_vhds()) == SUB
    assert source_subscription({"nothing": 1}) is None and source_subscription(None) is None


def test_the_api_documents_example_is_a_request_the_app_takes() -> None:
    from shared.api_examples import MANAGED_IMAGE_EXAMPLE

    assert accepted(MANAGED_IMAGE_EXAMPLE["value"]).source_kind == "managedImage"


def test_http_and_queue_start_one_capture_per_source_without_reading_a_vm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    import triggers.queue_captures as queue_captures
    from tests.triggers.intake_support import QueueRun, RecordingClient, post

    client = RecordingClient()
    body = json.dumps(_request({"managedImageId": IMAGE})).encode()
    first, again = post(client, body), post(client, body)
    assert (first.status_code, again.status_code) == (202, 409)
    assert "A capture of " + IMAGE in again.get_body().decode()
    (started,) = client.started
    assert started[0].startswith("capture-img-linux-gen2-") and started[1]["request"]["source"] == {
        "managedImageId": IMAGE
    }
    run = QueueRun()
    monkeypatch.setattr(queue_captures, "_send_poison", lambda payload, queue: run.poisoned.append(payload))

    def no_vm(vm_id: str) -> None:
        raise AssertionError(f"the queue trigger read a VM for a VHD source: {vm_id}")

    monkeypatch.setattr(queue_captures, "read_vm", no_vm)
    run.deliver(json.dumps(_request(_vhds())).encode())
    assert run.poisoned == [] and len(run.client.started) == 1
    assert run.client.started[0][0].startswith("capture-app-os-")
