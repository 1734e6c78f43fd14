"""azsim against Microsoft's ARM specs: every operation of the spec extracts (arm_spec.py) is driven
over HTTPS, with the spec's own example request bodies where there is one (names and ids mapped onto
the world), and each answer is checked against the spec: status code declared, body valid against
the declared definition (errors against ``CloudError``), declared LRO headers present, the
Azure-AsyncOperation status body valid, and the final state where ``final-state-via`` says (the
``Location`` URL answers the declared 200 body: the resource for PUT/PATCH, the result for POST).

A new operation in the extracts fails here until it has a scenario.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from tests.azsim.arm_fakes import PIPELINE_OID, SUB, SimHandle, make_token, running_sim
from tests.azsim.arm_spec import Operation, Spec, load_spec

SPEC = load_spec()
pytestmark = pytest.mark.skipif(
    SPEC is None, reason="ARM spec extracts not found (set AZSIM_ARM_SPECS to the arm-specs folder)"
)
BUILD, IMAGES = "rg-build", "rg-images"
C = f"/subscriptions/{SUB}/resourceGroups/{{rg}}/providers/Microsoft.Compute"
API = {"compute": "2026-04-01", "disk": "2026-03-02", "gallery": "2026-03-03", "subscriptions": "2022-12-01"}


def spec() -> Spec:
    assert SPEC is not None
    return SPEC


class Wire:
    """Raw HTTPS to azsim plus the checks against the spec; collects every divergence."""

    def __init__(self, handle: SimHandle) -> None:
        self.handle = handle
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would replace the simulator's CA
        self.session.verify = str(handle.certs.ca_cert)
        self.session.headers["Authorization"] = f"Bearer {make_token(PIPELINE_OID)}"
        self.problems: list[str] = []
        self.checked: set[str] = set()

    def send(self, method: str, path: str, body: Any = None, **query: str) -> requests.Response:
        op = spec().operation_for(method, path)
        family = op.file.split("-")[0] if op else "compute"
        params = {"api-version": API.get(family, "2026-04-01"), **query}
        return self.session.request(method, self.handle.url + path, params=params, json=body, timeout=10)

    def call(self, op_id: str, path: str, body: Any = None, **query: str) -> requests.Response:
        """One operation: checked on its initial answer and, for an LRO, to its final state."""
        op = spec().operations[op_id]
        assert op.path_regex().match(path), f"{path} is not the path of {op_id}"
        resp = self.send(op.method, path, body, **query)
        self.checked.add(op_id)
        self.check_answer(op, resp)
        if resp.ok and "Azure-AsyncOperation" in resp.headers:
            self.finish(op, resp)
        return resp

    def note(self, op: Operation, what: str) -> None:
        self.problems.append(f"{op.id}: {what}")

    def check_answer(self, op: Operation, resp: requests.Response) -> None:
        status = str(resp.status_code)
        if not resp.ok:
            self.note(op, f"answered {status} {resp.text[:300]}")
            self.check_error(op, resp)
            return
        if status not in op.responses:
            self.note(op, f"status {status} is not declared (declared: {sorted(op.responses)})")
            return
        self.check_body(op, op.responses[status], resp, f"initial {status}")
        for header in op.headers.get(status, []):
            if header in resp.headers:
                continue
            if header == "Retry-After" and "x-ms-retry-after-ms" in resp.headers:
                continue  # sub-second delays go as x-ms-retry-after-ms (docs/azsim-arm.md)
            self.note(op, f"initial {status} lacks the declared header {header}")

    def check_body(self, op: Operation, definition: str | None, resp: requests.Response, what: str) -> None:
        if definition is None:
            if resp.content.strip() not in (b"", b"null"):
                self.note(op, f"{what}: body {resp.text[:120]!r} where the spec declares none")
            return
        try:
            body = resp.json()
        except ValueError:
            self.note(op, f"{what}: no JSON body where the spec declares {definition}")
            return
        for err in spec().validate(op.file, definition, body):
            self.note(op, f"{what} ({definition}): {err}")

    def check_error(self, op: Operation, resp: requests.Response) -> None:
        try:
            body = resp.json()
        except ValueError:
            self.note(op, f"error {resp.status_code} without a JSON body")
            return
        for err in spec().validate("common.json", "CloudError", body):
            self.note(op, f"error body (CloudError): {err}")

    def finish(self, op: Operation, resp: requests.Response) -> None:
        status_url = resp.headers["Azure-AsyncOperation"]
        deadline = time.monotonic() + 10
        while True:
            poll = self.session.get(status_url, timeout=10)
            body = poll.json() if poll.ok else {}
            # Compute's status body is not in its specs; the common OperationStatusResult is the nearest
            # shape. Compute adds ``properties.output`` (Run Command, beginGetAccess results).
            plain = {k: v for k, v in body.items() if k != "properties"}
            for err in spec().validate("types.json", "OperationStatusResult", plain):
                self.note(op, f"operation status: {err}")
            if body.get("status") not in ("InProgress", None) or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if body.get("status") != "Succeeded":
            self.note(op, f"operation ended {body.get('status')}: {body.get('error')}")
            return
        if op.final_state_via == "location":
            self.check_final_via_location(op, resp)

    def check_final_via_location(self, op: Operation, resp: requests.Response) -> None:
        location = resp.headers.get("Location")
        if location is None:
            self.note(op, "no Location header, so no final state via location")
            return
        final = self.session.get(location, timeout=10)
        if final.status_code != 200:
            self.note(op, f"Location URL answered {final.status_code} after the operation succeeded")
            return
        self.check_body(op, op.responses.get("200"), final, "final state via Location")

    def check_list(self, path: str, file: str, definition: str) -> None:
        """A list the extracts do not declare (subscription-wide lists): the rg list's definition."""
        resp = self.send("GET", path)
        if resp.status_code != 200:
            self.problems.append(f"GET {path}: answered {resp.status_code}")
            return
        self.problems += [
            f"GET {path} ({definition}): {e}" for e in spec().validate(file, definition, resp.json())
        ]

    def settle(self, path: str, method: str = "GET") -> dict[str, Any]:
        """GET a resource until it is no longer provisioning (for scenario set-up)."""
        deadline = time.monotonic() + 10
        while True:
            body: dict[str, Any] = self.send(method, path).json()
            state = (body.get("properties") or {}).get("provisioningState")
            if state not in ("Creating", "Updating") or time.monotonic() > deadline:
                return body
            time.sleep(0.01)


def fill(value: Any, names: dict[str, str]) -> Any:
    """The example's placeholders and names replaced by the world's (strings only, recursively)."""
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    if isinstance(value, str):
        for old, new in names.items():
            value = value.replace(old, new)
    return value


NAMES = {
    "{subscription-id}": SUB,
    "{subscriptionId}": SUB,
    "West US": "West Europe",
    "East US": "North Europe",
}


def example_body(family: str, name: str, key: str, **names: str) -> dict[str, Any]:
    body: dict[str, Any] = fill(copy.deepcopy(spec().example(family, name)["parameters"][key]), NAMES | names)
    return body


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    with running_sim(tmp_path_factory.mktemp("arm-conformance"), time_scale=0.0002) as handle:
        yield handle


@pytest.fixture
def wire(arm: SimHandle) -> Iterator[Wire]:
    arm.sim.reset()
    w = Wire(arm)
    yield w
    w.session.close()


def disk(name: str, rg: str = BUILD, kind: str = "disks") -> str:
    return f"{C.format(rg=rg)}/{kind}/{name}"


def vm(name: str) -> str:
    return f"{C.format(rg=BUILD)}/virtualMachines/{name}"


def gallery(name: str = "gal") -> str:
    return f"{C.format(rg=IMAGES)}/galleries/{name}"


# ---------------------------------------------------------------------------------- scenarios


def make_snapshot(w: Wire, name: str, source: str = "vm-web_OsDisk") -> str:
    body = {
        "location": "westeurope",
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk(source)}},
    }
    path = disk(name, IMAGES, "snapshots")
    w.send("PUT", path, body)
    w.settle(path)
    return path


def make_definition(w: Wire) -> str:
    w.send("PUT", gallery(), {"location": "westeurope"})
    w.settle(gallery())
    image = f"{gallery()}/images/web"
    body = example_body("gallery", "GalleryImage_Create.json", "galleryImage")
    body["properties"]["hyperVGeneration"] = "V2"
    body["properties"]["osType"] = "Linux"
    w.send("PUT", image, body)
    w.settle(image)
    return image


def make_version(w: Wire) -> str:
    image = make_definition(w)
    os_snap = make_snapshot(w, "snap-os")
    version = f"{image}/versions/1.0.0"
    body = {
        "location": "westeurope",
        "properties": {
            "publishingProfile": {"targetRegions": [{"name": "westeurope"}]},
            "storageProfile": {"osDiskImage": {"source": {"id": os_snap}}},
        },
    }
    w.send("PUT", version, body)
    w.settle(version)
    return version


def vms_scenario(w: Wire) -> None:
    w.call("VirtualMachines_ListAll", f"/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines")
    w.call("VirtualMachines_List", f"{C.format(rg=BUILD)}/virtualMachines")
    w.call("VirtualMachines_Get", vm("vm-web"))
    w.call("VirtualMachines_Get", vm("vm-web"), **{"$expand": "instanceView"})
    w.call("VirtualMachines_InstanceView", vm("vm-win") + "/instanceView")


def vm_power_scenario(w: Wire) -> None:
    w.call("VirtualMachines_PowerOff", vm("vm-web-3") + "/powerOff")
    w.call("VirtualMachines_Deallocate", vm("vm-web-2") + "/deallocate")
    w.call("VirtualMachines_Start", vm("vm-web-4") + "/start")
    w.call("VirtualMachines_Generalize", vm("vm-legacy") + "/generalize")
    run = spec().example("compute", "VirtualMachineRunCommand.json")["parameters"]["parameters"]
    w.call("VirtualMachines_RunCommand", vm("vm-win") + "/runCommand", run)


def vm_create_delete_scenario(w: Wire) -> None:
    w.call("VirtualMachines_Delete", vm("vm-web-3"))
    gone = w.settle(vm("vm-web-3"))
    assert gone.get("error", {}).get("code") == "ResourceNotFound", gone
    body = {
        "location": "westeurope",
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
            "storageProfile": {
                "osDisk": {
                    "createOption": "Attach",
                    "osType": "Linux",
                    "managedDisk": {"id": disk("vm-web-3_OsDisk")},
                }
            },
            # The deleted VM's NIC (detached by the delete) and its security type: both required.
            "networkProfile": {
                "networkInterfaces": [
                    {
                        "id": vm("vm-web-3").replace(
                            "Microsoft.Compute/virtualMachines/vm-web-3",
                            "Microsoft.Network/networkInterfaces/vm-web-3-nic",
                        )
                    }
                ]
            },
            "securityProfile": {"securityType": "Standard"},
        },
    }
    w.call("VirtualMachines_CreateOrUpdate", vm("vm-new"), body)
    w.call("VirtualMachines_CreateOrUpdate", vm("vm-new"), {**body, "tags": {"a": "b"}})


def disks_scenario(w: Wire) -> None:
    w.call("Disks_ListByResourceGroup", f"{C.format(rg=BUILD)}/disks")
    w.check_list(
        f"/subscriptions/{SUB}/providers/Microsoft.Compute/disks", "disk-2026-03-02.json", "DiskList"
    )
    w.call("Disks_Get", disk("vm-web_OsDisk"))
    # The example copies myDisk1 of its resource group: here a VM's data disk, into rg-images
    # (where the pipeline identity may also revoke access).
    body = example_body("disk", "Disk_Create_FromAnExistingManagedDisk.json", "disk")
    source = body["properties"]["creationData"]["sourceResourceId"]
    body["properties"]["creationData"]["sourceResourceId"] = source.replace("myResourceGroup", BUILD).replace(
        "myDisk1", "vm-web_data0"
    )
    copy_path = disk("disk-copy", IMAGES)
    w.call("Disks_CreateOrUpdate", copy_path, body)
    w.settle(copy_path)
    grant = example_body("disk", "Disk_BeginGetAccess.json", "grantAccessData")
    w.call("Disks_GrantAccess", copy_path + "/beginGetAccess", grant)
    w.call("Disks_RevokeAccess", copy_path + "/endGetAccess")
    w.call("Disks_Delete", copy_path)
    w.settle(copy_path)
    w.call("Disks_Delete", copy_path)  # already gone: 204


def snapshots_scenario(w: Wire) -> None:
    make_snapshot(w, "mySnapshot1")
    body = example_body(
        "disk", "Snapshot_Create_FromAnExistingSnapshot.json", "snapshot", myResourceGroup=IMAGES
    )
    path = disk("mySnapshot2", IMAGES, "snapshots")
    w.call("Snapshots_CreateOrUpdate", path, body)
    w.call("Snapshots_Get", path)
    w.call("Snapshots_ListByResourceGroup", f"{C.format(rg=IMAGES)}/snapshots")
    w.check_list(
        f"/subscriptions/{SUB}/providers/Microsoft.Compute/snapshots", "disk-2026-03-02.json", "SnapshotList"
    )
    grant = example_body("disk", "Snapshot_BeginGetAccess.json", "grantAccessData")
    w.call("Snapshots_GrantAccess", path + "/beginGetAccess", grant)
    w.call("Snapshots_RevokeAccess", path + "/endGetAccess")
    w.call("Snapshots_Delete", path)
    w.call("Snapshots_Delete", path)


def galleries_scenario(w: Wire) -> None:
    body = example_body("gallery", "Gallery_Create.json", "gallery")
    w.call("Galleries_CreateOrUpdate", gallery("myGallery"), body)
    w.call("Galleries_CreateOrUpdate", gallery("myGallery"), body)  # update: 200
    w.call("Galleries_Get", gallery("myGallery"))
    w.call("Galleries_ListByResourceGroup", f"{C.format(rg=IMAGES)}/galleries")
    w.check_list(
        f"/subscriptions/{SUB}/providers/Microsoft.Compute/galleries",
        "gallery-2026-03-03.json",
        "GalleryList",
    )
    image = gallery("myGallery") + "/images/myImage"
    definition = example_body("gallery", "GalleryImage_Create.json", "galleryImage")
    w.call("GalleryImages_CreateOrUpdate", image, definition)
    w.call("GalleryImages_CreateOrUpdate", image, definition)
    w.call("GalleryImages_Get", image)
    w.call("GalleryImages_ListByGallery", gallery("myGallery") + "/images")
    w.call("GalleryImages_Delete", image)
    w.settle(image)
    w.call("GalleryImages_Delete", image)
    w.call("Galleries_Delete", gallery("myGallery"))
    w.settle(gallery("myGallery"))
    w.call("Galleries_Delete", gallery("myGallery"))


def versions_scenario(w: Wire) -> None:
    image = make_definition(w)
    make_snapshot(w, "snap-os")
    body = example_body(
        "gallery",
        "GalleryImageVersion_Create_WithSnapshotsAsSource.json",
        "galleryImageVersion",
        **{"{resourceGroup}": BUILD, "{osSnapshotName}": "x", "{dataDiskName}": "vm-web-4_OsDisk"},
    )
    body["properties"]["storageProfile"]["osDiskImage"]["source"]["id"] = disk("snap-os", IMAGES, "snapshots")
    version = f"{image}/versions/1.0.0"
    w.call("GalleryImageVersions_CreateOrUpdate", version, body)
    w.call("GalleryImageVersions_Get", version)
    w.call("GalleryImageVersions_Get", version, **{"$expand": "ReplicationStatus"})
    w.call("GalleryImageVersions_ListByGalleryImage", image + "/versions")
    update = example_body(
        "gallery", "GalleryImageVersion_Update.json", "galleryImageVersion", **{"{resourceGroup}": IMAGES}
    )
    # The example's source is a managed image (not modelled): the version's own source keeps the body's shape.
    update["properties"]["storageProfile"] = body["properties"]["storageProfile"]
    w.call("GalleryImageVersions_Update", version, update)
    w.settle(version)
    w.call("GalleryImageVersions_Delete", version)
    w.call("GalleryImageVersions_Delete", version)


def updates_scenario(w: Wire) -> None:
    """The PATCH operations (their bodies are not in the extracts): tags, and a gallery's description."""
    make_definition(w)
    make_snapshot(w, "snap-u")
    targets = {
        "VirtualMachines_Update": vm("vm-web"),
        "Disks_Update": disk("vm-web_OsDisk"),
        "Snapshots_Update": disk("snap-u", IMAGES, "snapshots"),
        "Galleries_Update": gallery(),
        "GalleryImages_Update": gallery() + "/images/web",
    }
    for op_id, path in targets.items():
        body: dict[str, Any] = {"tags": {"patched": op_id}}
        if op_id.startswith("Galler"):
            body["properties"] = {"description": "patched"}
        w.call(op_id, path, body)
        after = w.send("GET", path).json()
        assert after["tags"] == {"patched": op_id}, (op_id, after.get("tags"))
    refused = w.send("PATCH", gallery(), {"properties": {"sharingProfile": {}}})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "InvalidParameter"


def locations_scenario(w: Wire) -> None:
    w.call("Subscriptions_ListLocations", f"/subscriptions/{SUB}/locations")


SCENARIOS: dict[str, Callable[[Wire], None]] = {
    "VirtualMachines_ListAll": vms_scenario,
    "VirtualMachines_List": vms_scenario,
    "VirtualMachines_Get": vms_scenario,
    "VirtualMachines_InstanceView": vms_scenario,
    "VirtualMachines_PowerOff": vm_power_scenario,
    "VirtualMachines_Deallocate": vm_power_scenario,
    "VirtualMachines_Start": vm_power_scenario,
    "VirtualMachines_Generalize": vm_power_scenario,
    "VirtualMachines_RunCommand": vm_power_scenario,
    "VirtualMachines_CreateOrUpdate": vm_create_delete_scenario,
    "VirtualMachines_Delete": vm_create_delete_scenario,
    "Subscriptions_ListLocations": locations_scenario,
    "VirtualMachines_Update": updates_scenario,
    "Disks_Update": updates_scenario,
    "Snapshots_Update": updates_scenario,
    "Galleries_Update": updates_scenario,
    "GalleryImages_Update": updates_scenario,
}
for _op in spec().operations if SPEC else ():
    if _op.startswith("Disks_"):
        SCENARIOS.setdefault(_op, disks_scenario)
    elif _op.startswith("Snapshots_"):
        SCENARIOS.setdefault(_op, snapshots_scenario)
    elif _op.startswith(("Galleries_", "GalleryImages_")):
        SCENARIOS.setdefault(_op, galleries_scenario)
    elif _op.startswith("GalleryImageVersions_"):
        SCENARIOS.setdefault(_op, versions_scenario)
GROUPS = sorted({fn.__name__ for fn in SCENARIOS.values()})


def test_every_spec_operation_has_a_scenario() -> None:
    ops = set(spec().operations)
    assert len(spec().readme_operations()) >= 30 and spec().readme_operations() <= ops
    assert {op for op in ops if op not in SCENARIOS} == set()


@pytest.mark.parametrize("group", GROUPS)
def test_operations_conform_to_the_spec(wire: Wire, group: str) -> None:
    fn = next(f for f in SCENARIOS.values() if f.__name__ == group)
    fn(wire)
    expected = {op for op, f in SCENARIOS.items() if f is fn}
    assert wire.checked >= expected, f"not exercised: {expected - wire.checked}"
    assert wire.problems == [], "\n".join(wire.problems)


def test_errors_are_cloud_errors_and_missing_resources_404(wire: Wire) -> None:
    for path in (vm("nope"), disk("nope"), disk("nope", kind="snapshots"), gallery("nope")):
        resp = wire.send("GET", path)
        assert resp.status_code == 404
        assert spec().validate("common.json", "CloudError", resp.json()) == []
        assert resp.json()["error"]["code"] == "ResourceNotFound"
    assert json.loads(wire.send("GET", vm("nope")).text)["error"]["message"]


def test_the_checker_catches_divergences() -> None:
    """The validator itself: what azsim must never answer is reported, with where and why."""
    bad = {
        "id": "/x",
        "location": "westeurope",
        "bogus": 1,
        "properties": {
            "provisioningState": 3,
            "timeCreated": "yesterday",
            "creationData": {"createOption": "No"},
        },
    }
    errors = spec().validate("disk-2026-03-02.json", "Snapshot", bad)
    assert any("'bogus' is not in the spec" in e for e in errors)
    assert any(e.startswith("$.properties.provisioningState: expected string") for e in errors)
    assert any("'yesterday' is not a date-time" in e for e in errors)
    assert any(e.startswith("$.properties.creationData.createOption: 'No' is not one of") for e in errors)
    assert spec().validate("disk-2026-03-02.json", "SnapshotList", {}) == [
        "$: required property 'value' missing"
    ]
    good = {"id": "/x", "location": "westeurope", "properties": {"creationData": {"createOption": "Copy"}}}
    assert spec().validate("disk-2026-03-02.json", "Snapshot", good) == []
