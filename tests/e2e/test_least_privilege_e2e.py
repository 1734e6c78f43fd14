"""The app's captures with its identity holding only the roles of ``shared/app-actions.json``.

One stack (azsim + Azurite + devhost running the real function_app.py) whose world gives the app's
identity nothing but those custom roles, at the example world's scopes. The scenarios run one after
another: a plain capture to three regions, a capture with export, an Event Grid triggered capture, a
cancel during the copy, a capture that fails terminally, a specialized capture with consistency stopped,
clone captures, one with retention and sharing, the Marketplace routes, a boot test, a janitor sweep
that cleans up an orphaned run, then captures from a managed image, a snapshot and VHD blobs. Each
must end as in the normal suite (an action missing from a role is a 403 there, so a
failed capture or a refusal in azsim's log). Then what azsim authorised for the identity, read from
``/_sim/authorizations``, must equal the roles exactly (per scope), and each feature's share of it
must match the per-feature breakdown in the same file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.ids import capture_instance_id
from tests.e2e.least_privilege import (
    APP_PRINCIPAL,
    OPERATOR,
    SCOPE_KINDS,
    Authorizations,
    Grant,
    diff,
    example_scopes,
    feature_grants,
    least_privilege_world,
    load_actions,
    role_grants,
)
from tests.support.http import http, wait_for
from tests.support.janitor_machines import existing, orphans
from tests.support.policy import PATIENT_COPIES
from tests.support.stack import Stack, running_stack
from tests.support.worlds import JANITOR_FAULTS, WORLD

pytestmark = pytest.mark.e2e

_BUILD = example_scopes(json.loads(WORLD.read_text())["subscriptions"][0]["id"])["buildGroup"][0]
# JANITOR_SCOPES unset: the recent subscriptions. The clone is built in the example world's build group,
# and the boot tests' VMs go there too (on their per-region vnets).
ENV = {
    **PATIENT_COPIES,
    "JANITOR_GRACE_SECONDS": "0",
    "CAPTURE_BUILD_RESOURCE_GROUP": _BUILD.rsplit("/", 1)[1],
    "CAPTURE_BUILD_SUBNET_ID": f"{_BUILD}/providers/Microsoft.Network/virtualNetworks/vnet-build/subnets/snet-clones",
    "BOOT_TEST_SUBNET_TEMPLATE": "/subscriptions/{subscription}/resourceGroups/rg-image-build/providers/"
    "Microsoft.Network/virtualNetworks/vnet-boottest-{region}/subnets/snet-boot-tests",
}


# The first clone VM create of the run is refused, as Azure refuses a size it cannot offer (terminal).
# It runs before the boot-test scenario, which creates VMs in the same group.
CLONE_SKU = {
    "name": "first-clone-sku-not-available",
    "match": {"action": "Microsoft.Compute/virtualMachines/write", "path": "/resourceGroups/rg-image-build/"},
    "effect": {"type": "vmCreateFailure", "reason": "skuNotAvailable"},
    "count": 1,
}


@pytest.fixture(scope="module")
def lp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("least-privilege")
    world = least_privilege_world(workdir / "world.json")
    faults = {"rules": [*JANITOR_FAULTS["rules"], CLONE_SKU]}
    with running_stack(workdir, world=world, fast_queues=True, faults=faults, env=ENV) as s:
        yield s
        s.assert_no_secrets()


def _operator_compute(s: Stack) -> Any:
    """A compute client as the test's operator (Owner), so the test's own calls are not the app's."""
    from azure.identity import ManagedIdentityCredential
    from azure.mgmt.compute import ComputeManagementClient

    return s.cloud.arm_client(
        ComputeManagementClient, ManagedIdentityCredential(client_id=OPERATOR["clientId"])
    )


def _operator_network(s: Stack) -> Any:
    from azure.identity import ManagedIdentityCredential
    from azure.mgmt.network import NetworkManagementClient

    return s.cloud.arm_client(
        NetworkManagementClient, ManagedIdentityCredential(client_id=OPERATOR["clientId"])
    )


def _app_authorizations(s: Stack) -> Authorizations:
    world = json.loads((s.workdir / "world.json").read_text())
    app = next(p for p in world["principals"] if p["displayName"] == APP_PRINCIPAL)
    return Authorizations.read(s.sim(f"authorizations?principal={app['objectId']}"))


def _export(s: Stack) -> dict[str, str]:
    return {"accountUrl": s.cloud.storage_account_url("stexports"), "container": "vhds"}


def _start_copying(s: Stack, vm: str) -> dict[str, Any]:
    code, answer, _ = http("POST", s.devhost.url("/api/captures"), s.queue_request(vm, vhdExport=_export(s)))
    assert code == 202, answer
    copying = s.wait(
        answer["id"],
        until=lambda st: bool(st["disks"]) and all(d.get("copyState") == "pending" for d in st["disks"]),
        timeout=90,
    )
    assert copying["runtimeStatus"] == "Running", copying
    return copying


def _terminate(s: Stack, instance_id: str) -> None:
    url = s.devhost.url(f"/runtime/webhooks/durabletask/instances/{instance_id}/terminate?reason=operator")
    code, body, _ = http("POST", url)
    assert code in (202, 410), (code, body)


def _run_janitor(s: Stack) -> dict[str, Any]:
    before = s.devhost.log_text().count("janitor summary: ")
    code, body, _ = http("POST", s.devhost.url("/admin/functions/janitor"), {"input": ""})
    assert code == 202, body

    def summary() -> Any:
        lines = [x for x in s.devhost.log_text().splitlines() if "janitor summary: " in x]
        return lines[before] if len(lines) > before else None

    line = wait_for("the janitor's summary", summary, timeout=60)
    return dict(json.loads(line.split("janitor summary: ", 1)[1]))


# --- the scenarios: each returns nothing; it asserts its outcome as the normal suite does --------------


def plain_capture(s: Stack) -> None:
    status = s.run(s.request("vm-web", export=False))
    assert status["runtimeStatus"] == "Completed", status.get("error")
    assert {r["region"]: r["state"] for r in status["result"]["regions"]} == {
        "westeurope": "Completed",
        "eastus2": "Completed",
        "northeurope": "Completed",
    }


def specialized_stopped_capture(s: Stack) -> None:
    body = s.request("vm-web-3", export=False, captureMode="specialized", consistency="stopped")
    del body["prepare"]
    status = s.run(body)
    assert status["runtimeStatus"] == "Completed", status.get("error")
    vm = s.vm_state("vm-web-3")
    assert (vm["powerState"], vm["generalized"]) == ("running", False), vm


def retention_and_share(s: Stack) -> None:
    """A second specialized version of vm-web-3 keeps only itself and grants the world's group the reader role."""
    group = "4e9bc235-54f2-58f2-a18c-f29263f4fb63"  # gallery-consumers (examples/world.json)
    share = {"principals": [{"principalId": group, "principalType": "Group"}]}
    body = s.request("vm-web-3", export=False, captureMode="specialized", version="auto", share=share)
    del body["prepare"]
    status = s.run({**body, "retention": {"keepLatest": 1}})
    assert status["runtimeStatus"] == "Completed", status.get("error")
    assert len(status["result"]["retention"]["deleted"]) == 1, status["result"]
    assert [x["state"] for x in status["result"]["shared"]] == ["created"], status["result"]


def clone_refused(s: Stack) -> None:
    """The first clone VM create is refused (SkuNotAvailable, the CLONE_SKU fault): its NIC and disks go alone."""
    status = s.run(s.queue_request("vm-queue", captureMode="clone"))
    assert status["runtimeStatus"] == "Failed" and status["error"]["code"] == "SkuNotAvailable", status
    assert status["clone"]["state"] == "deleted", status["clone"]


def clone_capture(s: Stack) -> None:
    status = s.run(s.queue_request("vm-queue", captureMode="clone", vhdExport=_export(s)))
    assert status["runtimeStatus"] == "Completed", status.get("error")
    assert status["clone"]["state"] == "deleted" and status["sourceState"] == "untouched"
    vm = s.vm_state("vm-queue")
    assert (vm["powerState"], vm["generalized"]) == ("running", False), vm


def capture_with_export(s: Stack) -> None:
    status = s.run(s.request("vm-web-2"))
    assert status["runtimeStatus"] == "Completed", status.get("error")
    assert len(status["result"]["exportedBlobs"]) == 2
    assert all(d["accessRevoked"] is True for d in status["disks"])
    assert s.active_access() == []


def eventgrid_capture(s: Stack) -> None:
    code, answer = s.deliver([s.deallocation_event("vm-golden")])
    assert code == 200 and answer["outcomes"] == {"started": 1}, answer
    status = s.wait(capture_instance_id(s.vm_id("vm-golden")))
    assert status["runtimeStatus"] == "Completed", status.get("error")


def cancel_during_copy(s: Stack) -> None:
    copying = _start_copying(s, "vm-cancel")
    code, answer = s.cancel(copying["id"], {"reason": "least privilege"})
    assert code == 202, answer
    status = s.wait(copying["id"], timeout=90)
    assert status["runtimeStatus"] == "Canceled", status
    assert all(d["copyState"] == "aborted" and d["accessRevoked"] is True for d in status["disks"]), status
    assert s.active_access() == []


def failing_capture(s: Stack) -> None:
    body = s.queue_request("vm-fail", imageDefinition={"name": "no-such-def", "createIfMissing": False})
    status = s.run(body)
    assert status["runtimeStatus"] == "Failed", status
    assert "AuthorizationFailed" not in json.dumps(status), status
    assert s.vm_state("vm-fail")["powerState"] == "running", s.vm_state("vm-fail")


def boot_test_capture(s: Stack) -> None:
    """A boot test: westeurope boots and runs its smoke script; northeurope's VM is refused (the fault
    boot-test-vm-refused), so its NIC is deleted on its own; the version is deleted (onFailure)."""
    body = s.request(
        "vm-web-4",
        export=False,
        captureMode="specialized",
        targetRegions=[{"name": "westeurope"}, {"name": "northeurope"}],
        verify={"bootTest": True, "smokeScript": "echo ok", "onFailure": "delete"},
    )
    del body["prepare"]
    # A definition of its own: the marketplace vhd route later captures vm-web-4 generalized.
    body["imageDefinition"]["name"] = "vm-web-4-boot"
    status = s.run(body)
    assert status["runtimeStatus"] == "Failed", status
    assert status["error"].get("azureCode") == "SkuNotAvailable", status["error"]
    verdicts = {b["region"]: (b["state"], b["cleaned"]) for b in status["bootTests"]}
    assert verdicts == {"westeurope": ("passed", True), "northeurope": ("failed", True)}, verdicts
    assert status["imageVersionState"] == "deleted"


def _source_capture(s: Stack, source: dict[str, Any], definition: str) -> None:
    body = {
        "source": source,
        "gallery": {"resourceGroup": "rg-images", "name": "galContoso"},
        "imageDefinition": {"name": definition, "publisher": "contoso", "offer": "lp", "sku": definition},
        "version": "1.0.0",
        "targetRegions": [{"name": "westeurope"}, {"name": "eastus2"}],
    }
    status = s.run(body)
    assert status["runtimeStatus"] == "Completed", status.get("error")


def managed_image_capture(s: Stack) -> None:
    image = f"/subscriptions/{s.cloud.subscription_id}/resourceGroups/rg-legacy-images/providers/Microsoft.Compute/images/img-windows-gen1"
    _source_capture(s, {"managedImageId": image}, "lp-from-image")


def snapshot_capture(s: Stack) -> None:
    compute = _operator_compute(s)
    disk = compute.disks.get(
        "rg-build", compute.virtual_machines.get("rg-build", "vm-web").storage_profile.os_disk.name
    )
    snap = compute.snapshots.begin_create_or_update(
        "rg-build",
        "lp-source-os",
        {
            "location": disk.location,
            "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk.id}},
        },
    ).result()
    _source_capture(s, {"snapshots": {"os": snap.id}}, "lp-from-snapshots")


def vhd_capture(s: Stack) -> None:
    sub = f"/subscriptions/{s.cloud.subscription_id}"
    account = s.cloud.storage_account_url("stlegacyvhds")
    source = {
        "vhds": {
            "storageAccountId": f"{sub}/resourceGroups/rg-legacy-images/providers/Microsoft.Storage/storageAccounts/stlegacyvhds",
            "os": {"uri": f"{account}/vhds/app-os.vhd"},
            "data": [{"lun": 0, "uri": f"{account}/vhds/app-data0.vhd"}],
        },
        "osType": "Linux",
        "hyperVGeneration": "V2",
    }
    _source_capture(s, source, "lp-from-vhds")


ORPHAN: dict[str, Any] = {}


def orphaned_run(s: Stack) -> None:
    """A run terminated mid-copy by an operator (its snapshots still exposed), and a failed version of it."""
    victim = _start_copying(s, "vm-notice")
    snaps = {d["snapshotId"].lower() for d in victim["disks"]}
    compute = _operator_compute(s)
    run_tags = dict(compute.snapshots.get("rg-build", sorted(snaps)[0].rsplit("/", 1)[1]).tags or {})
    run_id = run_tags["image-pipeline:run-id"]
    version = {
        "location": "westeurope",
        "tags": {k: v for k, v in run_tags.items() if k != "image-pipeline:disk"},
        "properties": {
            "publishingProfile": {"targetRegions": [{"name": "westeurope"}]},
            "storageProfile": {
                "osDiskImage": {"source": {"id": next(x for x in snaps if x.endswith("-os"))}}
            },
        },
    }
    poller = compute.gallery_image_versions.begin_create_or_update(
        "rg-images", "galContoso", "vm-notice-def", "9.9.9", version
    )
    with pytest.raises(Exception):  # noqa: B017 - the injected replication failure ends the LRO Failed
        poller.result()
    for instance in (victim["id"], f"{run_id}:export:os", f"{run_id}:export:lun0", f"{run_id}:version"):
        _terminate(s, instance)
    assert s.wait(victim["id"], timeout=30)["runtimeStatus"] == "Terminated"
    # what a clone and a boot test of that run would have left in the build group (made by the operator)
    machines = orphans(compute, _operator_network(s), s.cloud.subscription_id, run_id, "lp-orphan")
    ORPHAN.update(snapshots=snaps, machines={v.lower() for v in machines.values()})


def janitor_sweep(s: Stack) -> None:
    """The janitor (run on demand, grace 0) revokes and deletes the orphaned snapshots and version, and the
    orphaned VMs (their NICs and disks go along), the lone NIC and disk in the build group."""
    snaps = ORPHAN["snapshots"]
    report = _run_janitor(s)
    acted = {a["action"] for a in report["actions"] if a["done"]}
    assert {
        "revokeAccess",
        "deleteSnapshot",
        "deleteVersion",
        "deleteVm",
        "deleteNic",
        "deleteDisk",
    } <= acted, report
    assert report["errors"] == [], report
    compute = _operator_compute(s)

    def gone() -> bool:
        return not snaps & {x.id.lower() for x in compute.snapshots.list_by_resource_group("rg-build")}

    wait_for("the orphaned snapshots to go", gone, timeout=30)
    network = _operator_network(s)
    wait_for(
        "the orphaned VMs, NICs and disks to go",
        lambda: not ORPHAN["machines"] & existing(compute, network) or None,
        timeout=60,
    )


# The example world's "reader-only" service principal plays a Partner Center principal.
PARTNER_CENTER_STANDIN = "b238e621-424b-5f06-bd00-d0f513770f55"


def _marketplace_request(s: Stack, vm: str, marketplace: dict[str, Any], *, export: bool) -> dict[str, Any]:
    body = s.request(vm, export=export, prepare="none", marketplace=marketplace)
    body["targetRegions"] = [{"name": "westeurope"}]
    return body


def marketplace_gallery_capture(s: Stack) -> None:
    """Gallery route: the subscription's tenant read, Compute Gallery Image Reader granted on the gallery."""
    mp = {
        "route": "gallery",
        "publisherTenantId": s.cloud.tenant_id,
        "partnerCenterPrincipals": [PARTNER_CENTER_STANDIN],
    }
    status = s.run(_marketplace_request(s, "vm-plain", mp, export=False))
    assert status["runtimeStatus"] == "Completed", status.get("error")
    assert status["result"]["marketplace"]["grants"][0]["assignmentId"], status["result"]["marketplace"]


def marketplace_vhd_capture(s: Stack) -> None:
    """VHD route: the VHDs checked, then a SAS from the endpoint (a user delegation key) reads one."""
    from azure.storage.blob import BlobClient

    from tests.support.leaks import sas_values

    status = s.run(_marketplace_request(s, "vm-web-4", {"route": "vhd"}, export=True))
    assert status["runtimeStatus"] == "Completed", status.get("error")
    code, issued, _ = http("POST", s.devhost.url(f"/api/captures/{status['id']}/marketplace-sas"))
    assert code == 200, issued
    s.known_secrets += sas_values(issued["containerSasUri"])
    data = BlobClient.from_blob_url(issued["vhds"][0]["sasUri"]).download_blob(offset=0, length=512).readall()
    assert len(data) == 512


# (scenario, the features whose actions it must use exactly, the features it may use some of)
CAPTURE = ("capture.inPlace", "prepareRunningVm", "createIfMissing")


def migration_deleting_sources(s: Stack) -> None:
    """A migration of rg-legacy-images whose sources go once verified (last: it deletes the images)."""
    body = {
        "scope": f"/subscriptions/{s.cloud.subscription_id}/resourceGroups/rg-legacy-images",
        "gallery": {"resourceGroup": "rg-images", "name": "galContoso"},
        "definitionName": "lp-mig-{image}",
        "targetRegions": [{"name": "westeurope"}, {"name": "eastus2"}],
        "deleteSourceAfter": "verified",
    }
    code, answer, _ = http("POST", s.devhost.url("/api/migrations"), body)
    s.seen.append(json.dumps(answer))
    assert code == 202, answer

    def ended() -> Any:
        _, view, _ = http("GET", s.devhost.url(f"/api/migrations/{answer['id']}"))
        return view if view.get("runtimeStatus") in ("Completed", "Failed", "Terminated") else None

    view = wait_for("the migration to end", ended, timeout=240)
    s.seen.append(json.dumps(view))
    assert view["counts"]["done"] == view["counts"]["total"] == view["counts"]["sourcesDeleted"] == 3, view


SCENARIOS: list[tuple[Callable[[Stack], None], tuple[str, ...], tuple[str, ...]]] = [
    (plain_capture, CAPTURE, ()),
    (specialized_stopped_capture, ("capture.specialized", "stoppedConsistency"), ("createIfMissing",)),
    (retention_and_share, ("retention", "share"), ("capture.specialized",)),
    (capture_with_export, ("capture.inPlace", "prepareRunningVm", "export"), CAPTURE),
    (clone_refused, ("cloneCleanup",), ("capture.clone", "createIfMissing")),
    (clone_capture, ("capture.clone", "cloneExport"), ("createIfMissing", "export")),
    (eventgrid_capture, ("capture.inPlace", "eventGrid"), CAPTURE),
    (cancel_during_copy, ("cancel",), (*CAPTURE, "export")),
    (failing_capture, (), CAPTURE),
    (orphaned_run, (), (*CAPTURE, "export")),
    (janitor_sweep, ("janitor",), ()),
    # Before the marketplace vhd route, which generalizes vm-web-4.
    (boot_test_capture, ("bootTest",), ("capture.specialized", "createIfMissing", "cancel")),
    (marketplace_gallery_capture, ("marketplace.gallery",), CAPTURE),
    (marketplace_vhd_capture, ("marketplace.vhd",), (*CAPTURE, "export")),
    (managed_image_capture, ("source.managedImage",), ("createIfMissing",)),
    (snapshot_capture, ("source.snapshots",), ("createIfMissing",)),
    (vhd_capture, ("source.vhds",), ("createIfMissing",)),
    (migration_deleting_sources, ("migrate", "source.managedImage"), ("createIfMissing",)),
]


def test_the_roles_are_exactly_what_the_app_uses(lp: Stack, tmp_path: Path) -> None:
    ORPHAN.clear()
    actions = load_actions()
    scopes = example_scopes(lp.cloud.subscription_id)
    kinds = [k for k in SCOPE_KINDS if k in {r["scope"] for r in actions["roles"]}]
    seen = _app_authorizations(lp)
    used_by: dict[str, set[Grant]] = {}
    problems: list[str] = []
    for scenario, exact, allowed in SCENARIOS:
        try:
            scenario(lp)
        except AssertionError as exc:
            refused = _app_authorizations(lp).since(seen).denied
            raise AssertionError(
                f"{scenario.__name__} did not end as in the normal suite"
                + (f"; azsim refused the app: {'; '.join(refused)}" if refused else "")
                + f"\n{exc}"
            ) from None
        now = _app_authorizations(lp)
        step = now.since(seen)
        seen = now
        used = step.grants(scopes, kinds)
        used_by[scenario.__name__] = used
        if step.denied:
            problems.append(f"{scenario.__name__}: azsim refused " + "; ".join(step.denied))
        must = feature_grants(actions, *exact)
        may = must | feature_grants(actions, *allowed)
        if not must <= used or not used <= may:
            wrong = diff(used & must | (used - may), must, listed_name=f"features {exact}")
            problems.append(f"{scenario.__name__}:\n{wrong}")
    dump = {k: sorted(map(list, v)) for k, v in used_by.items()}
    (tmp_path / "used.json").write_text(json.dumps(dump, indent=1))

    without_role = set(actions["withoutRole"]["actions"])
    if seen.implicit != without_role:
        problems.append(
            f"granted without a role: {sorted(seen.implicit)}, listed in withoutRole: {sorted(without_role)}"
        )
    union = set().union(*used_by.values())
    whole = diff(union, role_grants(actions["roles"]), listed_name="shared/app-actions.json's roles")
    assert not whole and not problems, (
        "\n".join([whole, *problems]) + f"\n(per scenario: {tmp_path / 'used.json'})"
    )
