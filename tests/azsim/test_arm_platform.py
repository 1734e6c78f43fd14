"""Cross-cutting ARM behaviour through the real SDKs: HTTPS + auth, api-version echo, LRO headers and
polling in simulated time, RBAC allow/deny, throttling (429 + Retry-After honoured by azure-core),
every fault type, the /_sim inspection API, and the world / fault / latency file errors."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import (
    CreationData,
    Gallery,
    GalleryArtifactVersionFullSource,
    GalleryImage,
    GalleryImageIdentifier,
    GalleryImageVersion,
    GalleryImageVersionPublishingProfile,
    GalleryImageVersionStorageProfile,
    Snapshot,
    TargetRegion,
)
from azure.mgmt.resource.resources.models import ResourceGroup

from azsim.core.clock import ManualClock
from azsim.core.faults import FaultFileError, load_faults, parse_faults
from azsim.core.latency import LatencyError, load_latency
from azsim.world import WorldError, load_world, parse_world
from tests.azsim.arm_fakes import (
    PIPELINE_OID,
    READER_OID,
    SUB,
    WORLD_FILE,
    SimHandle,
    StaticCredential,
    make_token,
    running_sim,
    wait_until,
)


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory):
    with running_sim(tmp_path_factory.mktemp("arm-platform"), time_scale=0.0005) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _fresh(arm: SimHandle) -> None:
    arm.sim.reset()


def raw(
    arm: SimHandle, method: str, path: str, *, token: str | None = None, body: Any = None
) -> tuple[int, dict[str, str], Any]:
    ctx = ssl.create_default_context(cafile=str(arm.certs.ca_cert))
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(arm.url + path, method=method, data=data)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            text = resp.read()
            return resp.status, dict(resp.headers.items()), json.loads(text) if text else None
    except urllib.error.HTTPError as err:
        text = err.read()
        return err.code, dict(err.headers.items()), json.loads(text) if text else None


def snapshot_body(disk: str = "vm-web_OsDisk") -> Snapshot:
    source = f"/subscriptions/{SUB}/resourceGroups/rg-build/providers/Microsoft.Compute/disks/{disk}"
    return Snapshot(
        location="westeurope", creation_data=CreationData(create_option="Copy", source_resource_id=source)
    )


# ---------------------------------------------------------------- transport, auth, LRO headers


def test_plain_http_is_refused_by_the_sdk_and_server_speaks_tls_only(arm: SimHandle) -> None:
    client = ComputeManagementClient(
        StaticCredential(PIPELINE_OID), SUB, base_url=arm.url.replace("https", "http"), retry_total=0
    )
    with pytest.raises(ServiceRequestError, match="non-TLS"):
        client.virtual_machines.get("rg-build", "vm-web")
    # And the server does not answer plain HTTP on its port.
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(arm.url.replace("https", "http") + "/_sim/state", timeout=5)


def test_missing_or_wrong_audience_token_is_401(arm: SimHandle) -> None:
    status, _, body = raw(arm, "GET", f"/subscriptions/{SUB}/resourceGroups/rg-build?api-version=2024-01-01")
    assert status == 401 and body["error"]["code"] == "AuthenticationFailed"
    storage_token = make_token(PIPELINE_OID, aud="https://storage.azure.com/")
    status, _, body = raw(
        arm,
        "GET",
        f"/subscriptions/{SUB}/resourceGroups/rg-build?api-version=2024-01-01",
        token=storage_token,
    )
    assert status == 401 and body["error"]["code"] == "InvalidAuthenticationToken"
    client = ComputeManagementClient(
        StaticCredential(PIPELINE_OID, aud="https://storage.azure.com/"),
        SUB,
        base_url=arm.url,
        connection_verify=str(arm.certs.ca_cert),
    )
    with pytest.raises(ClientAuthenticationError):
        client.virtual_machines.get("rg-build", "vm-web")


def test_api_version_required_any_accepted_and_echoed_into_polling_urls(arm: SimHandle) -> None:
    token = make_token(PIPELINE_OID)
    vm_path = (
        f"/subscriptions/{SUB}/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/vm-web"
    )
    status, _, body = raw(arm, "GET", vm_path, token=token)
    assert status == 400 and body["error"]["code"] == "MissingApiVersionParameter"
    status, headers, _ = raw(arm, "POST", vm_path + "/deallocate?api-version=1999-01-01-preview", token=token)
    assert status == 202
    assert headers["Azure-AsyncOperation"].startswith(
        arm.url + f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westeurope/operations/"
    )
    assert headers["Azure-AsyncOperation"].endswith("api-version=1999-01-01-preview")
    assert "monitor=true" in headers["Location"]
    assert "x-ms-retry-after-ms" in headers or int(headers["Retry-After"]) >= 1
    op_path = headers["Azure-AsyncOperation"][len(arm.url) :]
    status, _, body = raw(arm, "GET", op_path, token=token)
    assert status == 200 and body["status"] in ("InProgress", "Succeeded") and body["name"]


def test_lro_polling_follows_simulated_time(tmp_path: Path) -> None:
    clock = ManualClock()
    with running_sim(tmp_path, time_scale=0.001, clock=clock) as arm:
        c = arm.compute()
        poller = c.virtual_machines.begin_deallocate("rg-build", "vm-web")
        view = c.virtual_machines.instance_view("rg-build", "vm-web")
        assert "PowerState/deallocating" in [s.code for s in view.statuses]
        assert poller.status() == "InProgress"
        clock.advance(0.089)  # 89 of 90 Azure seconds
        assert "PowerState/deallocating" in [
            s.code for s in c.virtual_machines.instance_view("rg-build", "vm-web").statuses
        ]
        clock.advance(0.002)
        poller.result()
        assert "PowerState/deallocated" in [
            s.code for s in c.virtual_machines.instance_view("rg-build", "vm-web").statuses
        ]


def test_time_scale_zero_is_instant(tmp_path: Path) -> None:
    with running_sim(tmp_path, time_scale=0) as arm:
        c = arm.compute()
        c.virtual_machines.begin_deallocate("rg-build", "vm-web").result()
        assert (
            c.snapshots.begin_create_or_update("rg-build", "s", snapshot_body()).result().provisioning_state
            == "Succeeded"
        )


# ---------------------------------------------------------------- RBAC


def test_rbac__reader_can_read_but_not_act(arm: SimHandle) -> None:
    reader = arm.compute(oid=READER_OID)
    assert reader.virtual_machines.get("rg-build", "vm-web").name == "vm-web"
    with pytest.raises(HttpResponseError) as e:
        reader.virtual_machines.begin_deallocate("rg-build", "vm-web")
    assert e.value.status_code == 403 and e.value.error.code == "AuthorizationFailed"
    scope = f"/subscriptions/{SUB}/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/vm-web"
    assert str(e.value.error.message) == (
        f"The client '{READER_OID}' with object id '{READER_OID}' does not have authorization to perform action "
        f"'Microsoft.Compute/virtualMachines/deallocate/action' over scope '{scope}' or the scope is invalid. "
        "If access was recently granted, please refresh your credentials."
    )


def test_rbac__pipeline_identity_scoped_to_its_groups(arm: SimHandle) -> None:
    c = arm.compute()
    assert c.snapshots.begin_create_or_update("rg-build", "s", snapshot_body()).result().name == "s"
    # Disk Snapshot Contributor + VM Contributor hold no gallery rights in rg-build.
    with pytest.raises(HttpResponseError) as e:
        c.galleries.begin_create_or_update("rg-build", "g", Gallery(location="westeurope"))
    assert e.value.status_code == 403 and "Microsoft.Compute/galleries/write" in str(e.value)
    # ARM filters the subscription-wide resource group list by what the caller can read.
    assert {g.name for g in arm.resources().resource_groups.list()} == {
        "rg-build",
        "rg-images",
        "rg-image-build",
        "rg-legacy-images",  # Reader there (its managed images)
        "rg-storage",
    } - {"rg-storage"}
    with pytest.raises(HttpResponseError) as e:
        arm.resources().resource_groups.create_or_update("rg-new", ResourceGroup(location="westeurope"))
    assert e.value.status_code == 403


def test_rbac__linked_check_on_version_source(arm: SimHandle, tmp_path: Path) -> None:
    data = json.loads(WORLD_FILE.read_text())
    # A publisher on rg-images only: it may not read/write the source VM in rg-build.
    data["roleAssignments"] = [
        {
            "principal": "id-image-pipeline",
            "roleDefinitionName": "Compute Gallery Artifacts Publisher",
            "scope": f"/subscriptions/{SUB}/resourceGroups/rg-images",
        }
    ]
    with running_sim(tmp_path, world=parse_world(data), time_scale=0) as narrow:
        c = narrow.compute()
        c.galleries.begin_create_or_update("rg-images", "g", Gallery(location="westeurope")).result()
        c.gallery_images.begin_create_or_update(
            "rg-images",
            "g",
            "i",
            GalleryImage(
                location="westeurope",
                os_type="Linux",
                os_state="Specialized",
                hyper_v_generation="V2",
                identifier=GalleryImageIdentifier(publisher="p", offer="o", sku="s"),
            ),
        ).result()
        body = GalleryImageVersion(
            location="westeurope",
            publishing_profile=GalleryImageVersionPublishingProfile(
                target_regions=[TargetRegion(name="westeurope")]
            ),
            storage_profile=GalleryImageVersionStorageProfile(
                source=GalleryArtifactVersionFullSource(
                    virtual_machine_id=f"/subscriptions/{SUB}/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/vm-web"
                )
            ),
        )
        with pytest.raises(HttpResponseError) as e:
            c.gallery_image_versions.begin_create_or_update("rg-images", "g", "i", "1.0.0", body)
        assert e.value.status_code == 403 and e.value.error.code == "LinkedAuthorizationFailed"


def test_resource_groups_create_get_head(arm: SimHandle) -> None:
    r = arm.resources()
    assert r.resource_groups.get("rg-build").location == "westeurope"
    assert r.resource_groups.check_existence("rg-images") is True
    assert arm.resources(oid=READER_OID).resource_groups.check_existence("rg-nope") is False


# ---------------------------------------------------------------- throttling


def test_throttling__per_vm_get_policy_429_retried_by_azure_core(tmp_path: Path) -> None:
    with running_sim(tmp_path, time_scale=0.01, throttle=True) as arm:
        c = arm.compute()
        # Low Cost Get VM: 36-token bucket per VM, refilling 12/min (A2); a request takes about one Azure
        # second here, so a burst of GETs runs dry and azure-core retries after Retry-After (5 s x 0.01).
        for _ in range(70):
            c.virtual_machines.get("rg-build", "vm-web")
        throttled = [r for r in arm.sim.requests.records() if r["status"] == 429]
        assert throttled and all(r["throttled"] for r in throttled)
        assert len([r for r in arm.sim.requests.records() if r["status"] == 200]) == 70
        status, headers, body = raw_throttled(arm)
        assert status == 429 and "Retry-After" in headers
        assert body["error"]["code"] == "OperationNotAllowed"
        assert body["error"]["details"][0]["code"] == "TooManyRequests"
        assert "Microsoft.Compute/LowCostGet" in headers["x-ms-ratelimit-remaining-resource"]


def raw_throttled(arm: SimHandle) -> tuple[int, dict[str, str], Any]:
    token = make_token(PIPELINE_OID)
    path = f"/subscriptions/{SUB}/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/vm-web-3?api-version=x"
    for _ in range(200):
        status, headers, body = raw(arm, "GET", path, token=token)
        if status == 429:
            return status, headers, body
    raise AssertionError("never throttled")


def test_throttling__arm_headers_and_switch_off(arm: SimHandle) -> None:
    status, headers, _ = raw(
        arm,
        "GET",
        f"/subscriptions/{SUB}/resourceGroups/rg-build?api-version=x",
        token=make_token(PIPELINE_OID),
    )
    assert (
        status == 200 and "x-ms-ratelimit-remaining-subscription-reads" not in headers
    )  # throttle=False here


def test_throttling__arm_read_bucket_headers(tmp_path: Path) -> None:
    with running_sim(tmp_path, time_scale=1, throttle=True) as arm:
        token = make_token(PIPELINE_OID)
        _, h1, _ = raw(arm, "GET", f"/subscriptions/{SUB}/resourceGroups/rg-build?api-version=x", token=token)
        _, h2, _ = raw(arm, "GET", f"/subscriptions/{SUB}/resourceGroups/rg-build?api-version=x", token=token)
        assert int(h1["x-ms-ratelimit-remaining-subscription-reads"]) == 249
        assert int(h2["x-ms-ratelimit-remaining-subscription-reads"]) == 248
        assert int(h1["x-ms-ratelimit-remaining-subscription-global-reads"]) == 3749


# ---------------------------------------------------------------- faults


def faulty(tmp_path: Path, rules: list[dict[str, Any]], **kwargs: Any):
    return running_sim(tmp_path, faults=parse_faults({"rules": rules}), time_scale=0.0005, **kwargs)


def test_fault__status_503_with_retry_after_is_retried(tmp_path: Path) -> None:
    rule = {
        "match": {"action": "Microsoft.Compute/snapshots/write"},
        "effect": {"type": "status", "status": 503},
        "count": 2,
    }
    with faulty(tmp_path, [rule]) as arm:
        snap = arm.compute().snapshots.begin_create_or_update("rg-build", "s", snapshot_body()).result()
        assert snap.provisioning_state == "Succeeded"
        faults = [r["fault"] for r in arm.sim.requests.records() if r["fault"]]
        assert faults == ["status:503", "status:503"]


def test_fault__persistent_500_surfaces_after_retries(tmp_path: Path) -> None:
    rule = {
        "match": {"method": "GET", "path": "/virtualMachines/vm-web$"},
        "effect": {"type": "status", "status": 500, "code": "InternalServerError"},
    }
    with faulty(tmp_path, [rule]) as arm:
        with pytest.raises(HttpResponseError) as e:
            arm.compute(retry_backoff_factor=0.01).virtual_machines.get("rg-build", "vm-web")
        assert e.value.status_code == 500
        assert len([r for r in arm.sim.requests.records() if r["fault"]]) == 4  # 1 + 3 retries


def test_fault__409_conflict(tmp_path: Path) -> None:
    rule = {
        "match": {"action": "Microsoft.Compute/virtualMachines/generalize/action"},
        "effect": {"type": "status", "status": 409, "code": "Conflict", "message": "busy"},
    }
    with faulty(tmp_path, [rule]) as arm:
        with pytest.raises(HttpResponseError) as e:
            arm.compute().virtual_machines.generalize("rg-build", "vm-web-4")
        assert e.value.status_code == 409 and e.value.error.code == "Conflict"


def test_fault__connection_reset_then_success(tmp_path: Path) -> None:
    rule = {
        "match": {"method": "GET", "path": "/instanceView$"},
        "effect": {"type": "connectionReset"},
        "count": 1,
    }
    with faulty(tmp_path, [rule]) as arm:
        view = arm.compute().virtual_machines.instance_view("rg-build", "vm-web")
        assert view.statuses
        assert [r["fault"] for r in arm.sim.requests.records() if r["fault"]] == ["connectionReset"]
    rule["count"] = None
    with faulty(tmp_path, [rule]) as arm, pytest.raises((ServiceResponseError, ServiceRequestError)):
        arm.compute(retry_total=1, retry_backoff_factor=0.01).virtual_machines.instance_view(
            "rg-build", "vm-web"
        )


def test_fault__lro_failure_changes_nothing(tmp_path: Path) -> None:
    rule = {
        "match": {"action": "Microsoft.Compute/virtualMachines/deallocate/action"},
        "effect": {"type": "lroFailure", "code": "InternalExecutionError", "message": "boom"},
    }
    with faulty(tmp_path, [rule]) as arm:
        with pytest.raises(HttpResponseError) as e:
            arm.compute().virtual_machines.begin_deallocate("rg-build", "vm-web").result()
        assert e.value.error.code == "InternalExecutionError" and "boom" in str(e.value)
        view = arm.compute().virtual_machines.instance_view("rg-build", "vm-web")
        assert "PowerState/running" in [s.code for s in view.statuses]


def test_fault__replication_failure_in_one_region(tmp_path: Path) -> None:
    rule = {
        "match": {"action": "Microsoft.Compute/galleries/images/versions/write"},
        "effect": {"type": "replicationFailure", "region": "eastus"},
    }
    with faulty(tmp_path, [rule]) as arm:
        c = arm.compute()
        c.galleries.begin_create_or_update("rg-images", "g", Gallery(location="westeurope")).result()
        c.gallery_images.begin_create_or_update(
            "rg-images",
            "g",
            "i",
            GalleryImage(
                location="westeurope",
                os_type="Linux",
                os_state="Specialized",
                hyper_v_generation="V2",
                identifier=GalleryImageIdentifier(publisher="p", offer="o", sku="s"),
            ),
        ).result()
        body = GalleryImageVersion(
            location="westeurope",
            publishing_profile=GalleryImageVersionPublishingProfile(
                target_regions=[TargetRegion(name="westeurope"), TargetRegion(name="eastus")]
            ),
            storage_profile=GalleryImageVersionStorageProfile(
                source=GalleryArtifactVersionFullSource(
                    virtual_machine_id=f"/subscriptions/{SUB}/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/vm-web-3"
                )
            ),
        )
        with pytest.raises(HttpResponseError) as e:
            c.gallery_image_versions.begin_create_or_update("rg-images", "g", "i", "1.0.0", body).result()
        assert e.value.error.code == "ReplicationFailed"
        status = c.gallery_image_versions.get(
            "rg-images", "g", "i", "1.0.0", expand="ReplicationStatus"
        ).replication_status
        assert status.aggregated_state == "Failed"
        assert {s.region: s.state for s in status.summary} == {
            "West Europe": "Completed",
            "East US": "Failed",
        }


def test_fault__copy_outcomes_and_probability_are_seeded(tmp_path: Path) -> None:
    rules = [
        {
            "match": {"copy": {"account": "^stexports$", "blob": "fail"}},
            "effect": {"type": "copy", "outcome": "fail"},
        },
        {
            "match": {"copy": {"blob": "maybe"}},
            "effect": {"type": "copy", "outcome": "abort"},
            "probability": 0.5,
        },
    ]
    with faulty(tmp_path, rules, seed=42) as arm:
        behaviour = arm.sim.copy_behaviour
        assert behaviour.copy_fault("stexports", "vhds", "a-fail.vhd") == "fail"
        assert behaviour.copy_fault("other", "vhds", "a-fail.vhd") is None
        first = [behaviour.copy_fault("stexports", "vhds", "maybe.vhd") for _ in range(20)]
        assert set(first) == {"abort", None}
        assert behaviour.copy_seconds(40_000_000) == pytest.approx(1.0 * 0.0005)
        arm.sim.reset()
        assert [behaviour.copy_fault("stexports", "vhds", "maybe.vhd") for _ in range(20)] == first


# ---------------------------------------------------------------- inspection API


def test_inspection_api__requests_state_counters_reset(arm: SimHandle) -> None:
    c = arm.compute()
    c.snapshots.begin_create_or_update("rg-build", "s", snapshot_body()).result()
    c.snapshots.begin_grant_access("rg-build", "s", {"access": "Read", "durationInSeconds": 3600}).result()
    status, _, log = raw(arm, "GET", "/_sim/requests")
    assert status == 200
    text = json.dumps(log)
    assert "sig=" not in text and "Bearer" not in text and "SECRETSIG" not in text
    first = log["value"][0]
    assert first["principal"] == PIPELINE_OID and first["action"] == "Microsoft.Compute/snapshots/write"
    _, _, counters = raw(arm, "GET", "/_sim/counters")
    assert counters["Microsoft.Compute/snapshots/write"]["202"] == 1
    _, _, state = raw(arm, "GET", "/_sim/state")
    snap = next(d for d in state["disks"] if d["id"].endswith("/snapshots/s"))
    assert snap["diskState"] == "ActiveSAS" and snap["activeAccess"]
    status, _, _ = raw(arm, "POST", "/_sim/reset")
    assert status == 200
    _, _, state = raw(arm, "GET", "/_sim/state")
    assert not [d for d in state["disks"] if "/snapshots/" in d["id"]]
    _, _, log = raw(arm, "GET", "/_sim/requests")
    assert log["value"] == []


# ---------------------------------------------------------------- input files


def test_world_errors_name_file_field_and_expectation(tmp_path: Path) -> None:
    good = json.loads(WORLD_FILE.read_text())
    assert load_world(WORLD_FILE).default_principal.object_id == PIPELINE_OID

    def check(mutate: Any, *needles: str) -> None:
        data = json.loads(json.dumps(good))
        mutate(data)
        path = tmp_path / "world.json"
        path.write_text(json.dumps(data))
        with pytest.raises(WorldError) as e:
            load_world(path)
        for needle in (str(path), *needles):
            assert needle in str(e.value)

    check(
        lambda d: d["virtualMachines"][0].update(osType="Solaris"),
        "$.virtualMachines[0].osType",
        "'Linux' or 'Windows'",
    )
    check(
        lambda d: d["virtualMachines"][0].update(location="mars"),
        "$.virtualMachines[0].location",
        "westeurope",
    )
    check(
        lambda d: d["virtualMachines"][0].update(resourceGroup="rg-x"),
        "$.virtualMachines[0].resourceGroup",
        "rg-x",
    )
    check(
        lambda d: d["virtualMachines"][0]["dataDisks"].append({"name": "x", "lun": 0}),
        "dataDisks[1].lun",
        "duplicate LUN",
    )
    check(
        lambda d: d["roleAssignments"][0].update(roleDefinitionName="Wizard"),
        "roleDefinitionName",
        "unknown role",
    )
    check(lambda d: d.update(tennantId="x"), "$.tennantId", "unknown field")
    check(lambda d: d["principals"][1].update(default=True), "$.principals", "exactly one")
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(WorldError, match=r"broken\.json: not valid JSON at line 1"):
        load_world(bad)
    with pytest.raises(WorldError, match="cannot read"):
        load_world(tmp_path / "missing.json")


def test_fault_and_latency_file_errors(tmp_path: Path) -> None:
    assert len(load_faults(Path(__file__).parents[2] / "examples" / "faults.json").rules) >= 5
    path = tmp_path / "faults.json"
    for rules, needle in (
        ([{"match": {"action": "x"}, "effect": {"type": "explode"}}], "$.rules[0].effect"),
        (
            [{"match": {"action": "x"}, "effect": {"type": "status", "status": 200}}],
            "$.rules[0].effect.status.status",
        ),
        ([{"match": {}, "effect": {"type": "connectionReset"}}], "$.rules[0].match: expected at least one"),
        ([{"match": {"path": "("}, "effect": {"type": "connectionReset"}}], "regular expression"),
        ([{"match": {"action": "x"}, "effect": {"type": "copy", "outcome": "fail"}}], "'copy' matcher"),
        (
            [{"match": {"action": "x"}, "effect": {"type": "connectionReset"}, "probability": 2}],
            "probability",
        ),
    ):
        path.write_text(json.dumps({"rules": rules}))
        with pytest.raises(FaultFileError) as e:
            load_faults(path)
        assert str(path) in str(e.value) and needle in str(e.value), str(e.value)
    lat = tmp_path / "latency.json"
    lat.write_text(json.dumps({"deallocate_s": 5, "snapshot_base_s": -1}))
    with pytest.raises(LatencyError, match=r"\$\.snapshot_base_s: expected a non-negative number"):
        load_latency(lat)
    lat.write_text(json.dumps({"dealocate_s": 5}))
    with pytest.raises(LatencyError, match="unknown latency field"):
        load_latency(lat)
    lat.write_text(json.dumps({"deallocate_s": 5}))
    assert load_latency(lat).deallocate_s == 5.0


def test_wait_until_helper_times_out() -> None:
    with pytest.raises(AssertionError):
        wait_until(lambda: False, timeout=0.05)


def test_power_action_preempts_the_running_one(tmp_path: Path) -> None:
    clock = ManualClock()
    with running_sim(tmp_path, time_scale=0.001, clock=clock) as arm:
        c = arm.compute()
        first = c.virtual_machines.begin_power_off("rg-build", "vm-web")
        second = c.virtual_machines.begin_deallocate("rg-build", "vm-web")
        with pytest.raises(HttpResponseError) as e:
            first.result()
        assert e.value.error.code == "OperationPreempted"
        clock.advance(0.1)
        second.result()
        assert "PowerState/deallocated" in [
            s.code for s in c.virtual_machines.instance_view("rg-build", "vm-web").statuses
        ]


def test_resource_group_put_and_world_galleries(tmp_path: Path) -> None:
    data = json.loads(WORLD_FILE.read_text())
    data["roleAssignments"].append(
        {
            "principal": "id-image-pipeline",
            "roleDefinitionName": "Contributor",
            "scope": f"/subscriptions/{SUB}",
        }
    )
    data["galleries"] = [
        {
            "name": "galExisting",
            "resourceGroup": "rg-images",
            "location": "westeurope",
            "images": [
                {
                    "name": "web",
                    "osType": "Linux",
                    "versions": [{"name": "0.9.0", "targetRegions": ["westeurope", "eastus"]}],
                }
            ],
        }
    ]
    with running_sim(tmp_path, world=parse_world(data), time_scale=0) as arm:
        r = arm.resources()
        created = r.resource_groups.create_or_update(
            "rg-new", ResourceGroup(location="northeurope", tags={"a": "b"})
        )
        assert created.name == "rg-new" and created.location == "northeurope"
        assert (
            r.resource_groups.create_or_update("rg-new", ResourceGroup(location="northeurope")).name
            == "rg-new"
        )
        with pytest.raises(HttpResponseError) as e:
            r.resource_groups.create_or_update("rg-new", ResourceGroup(location="eastus"))
        assert e.value.error.code == "InvalidResourceGroupLocation"
        version = arm.compute().gallery_image_versions.get(
            "rg-images", "galExisting", "web", "0.9.0", expand="ReplicationStatus"
        )
        assert version.replication_status.aggregated_state == "Completed"
        assert {s.region for s in version.replication_status.summary} == {"West Europe", "East US"}
