"""The Marketplace hand-off end to end: real SDKs, devhost running the app, azsim + Azurite behind it.

Gallery route: a publisher tenant the gallery's subscription is not in is refused in preflight (nothing
created); otherwise the Partner Center principals get Compute Gallery Image Reader on the gallery and the
result lists the ids. VHD route: a misaligned VHD fails the hand-off naming the disk, the rule and the fix;
a good one gets a SAS from ``POST /api/captures/{id}/marketplace-sas`` only, which lists and reads the blob
through the blob front, cannot write, and appears in no store, log, status or notice (the fixture's secret
scan looks for the issued signature verbatim). Function keys are required, as in Azure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.storage.blob import BlobClient, ContainerClient

from tests.support.http import http
from tests.support.leaks import sas_values
from tests.support.policy import TERMINAL
from tests.support.stack import Stack
from tests.support.worlds import WORLD

pytestmark = pytest.mark.e2e

PARTNER_CENTER = {
    "Microsoft Partner Center Resource Provider": "0b3ab7a8-7a3c-4f62-9c3e-5d1a6e0f5c11",
    "Compute Image Registry": "5e2c1d07-4b8f-4a0e-8f57-2b6a7b1c9d22",
}
OTHER_TENANT = "11111111-2222-3333-4444-555555555555"
READER_ROLE = "cf7c76d2-98a3-4358-a134-615aa78bf44d"
SAS_TIMEOUT = 240.0


def _vm(name: str, os_format: str = "fixed") -> dict[str, Any]:
    return {
        "name": name,
        "resourceGroup": "rg-build",
        "location": "westeurope",
        "osType": "Linux",
        "hyperVGeneration": "V2",
        "vmSize": "Standard_D2s_v5",
        "powerState": "deallocated",
        "guestDeprovisioned": True,
        "osDisk": {"name": f"{name}_OsDisk", "sizeGiB": 30, "contentMiB": 1, "vhdFormat": os_format},
        "dataDisks": [{"name": f"{name}_data0", "lun": 0, "sizeGiB": 32, "contentMiB": 1}],
        "tags": {},
    }


def _world(path: Path) -> Path:
    world = json.loads(WORLD.read_text())
    world["virtualMachines"] += [_vm("vm-mp"), _vm("vm-mp-bad", "misaligned")]
    world["principals"] += [
        {
            "objectId": oid,
            "displayName": name,
            "clientId": oid[::-1][:8] + oid[8:],
            "kind": "servicePrincipal",
        }
        for name, oid in PARTNER_CENTER.items()
    ]
    path.write_text(json.dumps(world, indent=1))
    return path


@pytest.fixture
def mp_stack(make_stack: Callable[..., Stack], tmp_path: Path) -> Stack:
    env = {"MARKETPLACE_PARTNER_CENTER_PRINCIPALS": ",".join(PARTNER_CENTER.values())}
    stack = make_stack(world=_world(tmp_path / "world.json"), require_keys=True, env=env)
    return stack


def _call(stack: Stack, method: str, path: str, body: Any = None, *, key: bool = True) -> tuple[int, Any]:
    headers = {"x-functions-key": stack.devhost.function_key} if key else {}
    code, answer, _ = http(method, stack.devhost.url(path), body, headers=headers)
    return code, answer


def _seen(stack: Stack, method: str, path: str, body: Any = None, *, key: bool = True) -> tuple[int, Any]:
    """An API call whose answer goes into the secret check (every answer but an issued SAS)."""
    code, answer = _call(stack, method, path, body, key=key)
    stack.seen.append(json.dumps(answer))
    return code, answer


def _run(
    stack: Stack, body: dict[str, Any], timeout: float = SAS_TIMEOUT, *, sas_while_running: bool = False
) -> dict[str, Any]:
    code, answer = _seen(stack, "POST", "/api/captures", body)
    assert code == 202, f"POST answered {code}: {answer}"
    if sas_while_running:  # the export is minutes of (simulated) copying: the capture cannot have finished
        code, refused = _seen(stack, "POST", f"/api/captures/{answer['id']}/marketplace-sas")
        assert code == 409 and refused["error"]["code"] == "CaptureNotHandedOff", refused
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, status = _seen(stack, "GET", f"/api/captures/{answer['id']}")
        assert code == 200, status
        if status["runtimeStatus"] in TERMINAL:
            return dict(status)
        time.sleep(0.3)
    raise AssertionError(f"capture did not end: {stack.devhost.log_tail(60)}")


def _request(stack: Stack, vm: str, marketplace: dict[str, Any], *, export: bool) -> dict[str, Any]:
    body = stack.request(vm, export=export, marketplace=marketplace, prepare="none")
    body["targetRegions"] = [{"name": "westeurope"}]
    return body


def _assignments(stack: Stack, scope: str) -> list[dict[str, Any]]:
    request = HttpRequest(
        "GET",
        f"{scope}/providers/Microsoft.Authorization/roleAssignments",
        params={"api-version": "2022-04-01"},
    )
    response = stack.compute().send_request(request)
    assert response.status_code == 200, response.text()
    return list(response.json()["value"])


def test_gallery_route_checks_the_tenant_in_preflight_and_grants_partner_center(mp_stack: Stack) -> None:
    stack = mp_stack
    tenant = stack.cloud.tenant_id
    # The publisher's tenant is another one: refused before anything changes.
    refused = _run(
        stack, _request(stack, "vm-mp", {"route": "gallery", "publisherTenantId": OTHER_TENANT}, export=False)
    )
    assert refused["runtimeStatus"] == "Failed", refused
    assert refused["error"]["code"] == "PreflightFailed"
    assert (
        f"is in tenant {tenant}, not in the publisher's tenant {OTHER_TENANT}" in refused["error"]["message"]
    )
    assert [s["state"] for s in refused["stages"] if s["name"] == "snapshot"] == ["pending"]
    state = stack.sim("state")
    assert not [d for d in state["disks"] if "/snapshots/" in d["id"].lower()], "preflight made a snapshot"
    assert not [g for g in state["galleries"] if g.lower().endswith("/galcontoso")], (
        "preflight made a gallery"
    )

    # The publisher's tenant (the setting's principals): both get the read role on the gallery.
    done = _run(
        stack, _request(stack, "vm-mp", {"route": "gallery", "publisherTenantId": tenant}, export=False)
    )
    assert done["runtimeStatus"] == "Completed", json.dumps(done, indent=1)[:3000]
    handed = done["result"]["marketplace"]
    gallery_id = (
        f"/subscriptions/{stack.cloud.subscription_id}/resourceGroups/rg-images"
        "/providers/Microsoft.Compute/galleries/galContoso"
    )
    assert handed["galleryId"] == gallery_id
    assert handed["imageDefinitionId"] == f"{gallery_id}/images/vm-mp-def"
    assert (
        handed["imageVersionId"]
        == done["result"]["imageVersionId"]
        == f"{gallery_id}/images/vm-mp-def/versions/1.0.0"
    )
    assert handed["tenantId"] == tenant
    assert sorted(g["principalId"] for g in handed["grants"]) == sorted(PARTNER_CENTER.values())
    assert all(g["assignmentId"] for g in handed["grants"])
    granted = {
        a["properties"]["principalId"]
        for a in _assignments(stack, gallery_id)
        if a["properties"]["roleDefinitionId"].lower().endswith(READER_ROLE)
        and a["properties"]["scope"].lower() == gallery_id.lower()
    }
    assert granted == set(PARTNER_CENTER.values())
    # No VHD route: the SAS endpoint has nothing to give.
    code, answer = _seen(stack, "POST", f"/api/captures/{done['id']}/marketplace-sas")
    assert code == 409 and answer["error"]["code"] == "MarketplaceVhdRouteNotRequested", answer


def test_vhd_route_refuses_a_misaligned_vhd_and_the_endpoint_alone_issues_a_working_sas(
    mp_stack: Stack,
) -> None:
    stack = mp_stack
    bad = _run(stack, _request(stack, "vm-mp-bad", {"route": "vhd"}, export=True))
    assert bad["runtimeStatus"] == "Failed", bad
    error = bad["error"]
    assert error["code"] == "MarketplaceVhdRuleFailed", error
    assert "disk vm-mp-bad_OsDisk (os): 1 MiB alignment" in error["message"]
    assert "resize the image to 2 MiB" in error["message"]  # the fix
    assert "vm-mp-bad_data0" not in error["message"]  # the data disk is fine
    assert bad["imageVersionState"] == "completed"  # kept, as the advice says
    assert [v["problems"] != [] for v in bad["marketplace"]["vhds"]] == [True, False]
    code, answer = _seen(stack, "POST", f"/api/captures/{bad['id']}/marketplace-sas")
    assert code == 409 and answer["error"]["code"] == "CaptureNotHandedOff", answer

    good = _run(
        stack,
        _request(stack, "vm-mp", {"route": "vhd", "sasValidDays": 5}, export=True),
        sas_while_running=True,
    )
    assert good["runtimeStatus"] == "Completed", json.dumps(good, indent=1)[:3000]
    handed = good["result"]["marketplace"]
    assert [v["problems"] for v in handed["vhds"]] == [[], []]
    assert handed["sasEndpoint"] == f"/api/captures/{good['id']}/marketplace-sas"
    path = handed["sasEndpoint"]

    assert _seen(stack, "POST", path, key=False)[0] == 401
    assert _seen(stack, "POST", "/api/captures/nope-not-there/marketplace-sas")[0] == 404
    code, answer = _seen(stack, "POST", path, {"days": 8})
    assert code == 400 and answer["errors"][0]["field"] == "days", answer

    code, issued = _call(stack, "POST", path)  # the one answer that holds a SAS: never in `seen`
    assert code == 200, issued
    stack.known_secrets += sas_values(issued["containerSasUri"])
    assert stack.known_secrets, issued.keys()
    assert "sp=rl" in issued["containerSasUri"] and "sr=c" in issued["containerSasUri"]
    assert issued["kind"] == "userDelegation"
    left = datetime.fromisoformat(issued["expiresOn"].replace("Z", "+00:00")) - datetime.now(UTC)
    assert timedelta(days=5) - timedelta(minutes=7) < left <= timedelta(days=5)  # the request's sasValidDays

    # The SAS lists the container and reads (copies) the VHD through the blob front, and nothing more.
    container = ContainerClient.from_container_url(issued["containerSasUri"])
    names = {b.name for b in container.list_blobs()}
    # Container-level, as Partner Center asks: it lists this capture's VHDs (and the refused capture's).
    assert {v["blobUrl"].split("/vhds/", 1)[1] for v in handed["vhds"]} < names
    os_sas = next(v["sasUri"] for v in issued["vhds"] if v["disk"] == "vm-mp_OsDisk")
    data = BlobClient.from_blob_url(os_sas).download_blob().readall()
    assert len(data) == 1024 * 1024 + 512 and data[-512:-504] == b"conectix"
    with pytest.raises(HttpResponseError) as refused:
        BlobClient.from_blob_url(os_sas).upload_blob(b"x", overwrite=True)
    assert refused.value.status_code == 403
    # The status still names only URLs without a query.
    _, status = _seen(stack, "GET", f"/api/captures/{good['id']}")
    assert "sig=" not in json.dumps(status)


def test_marketplace_fields_are_checked_at_intake_and_missing_principals_in_preflight(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    stack = make_stack(world=_world(tmp_path / "world.json"), require_keys=True)  # no principals set
    tenant = stack.cloud.tenant_id
    refused: list[tuple[dict[str, Any], bool, str, str]] = [
        ({"route": "vhd"}, False, "marketplace.route", "add vhdExport"),
        ({"route": "gallery", "sasValidDays": 7}, False, "marketplace.sasValidDays", 'only with route "vhd"'),
        ({"route": "vhd", "sasValidDays": 21}, True, "marketplace.sasValidDays", "less than or equal to 7"),
        (
            {"route": "gallery", "partnerCenterPrincipals": ["pc"]},
            False,
            "marketplace.partnerCenterPrincipals",
            "GUIDs",
        ),
        (
            {"route": "gallery", "publisherTenantId": "contoso"},
            False,
            "marketplace.publisherTenantId",
            "GUID",
        ),
        ({"route": "store"}, False, "marketplace.route", "'gallery' or 'vhd'"),
    ]
    for marketplace, export, field, said in refused:
        code, answer = _seen(
            stack, "POST", "/api/captures", _request(stack, "vm-mp", marketplace, export=export)
        )
        assert code == 400, (marketplace, answer)
        messages = {e["field"]: e["message"] for e in answer["errors"]}
        assert said in messages.get(field, ""), (marketplace, messages)

    status = _run(
        stack, _request(stack, "vm-mp", {"route": "gallery", "publisherTenantId": tenant}, export=False)
    )
    assert status["runtimeStatus"] == "Failed" and status["error"]["code"] == "PreflightFailed", status
    assert "MARKETPLACE_PARTNER_CENTER_PRINCIPALS" in status["error"]["message"]
    assert "Nothing was changed" in status["error"]["advice"]
    assert stack.vm_state("vm-mp")["generalized"] is False
