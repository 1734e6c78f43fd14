"""Unit tests of the activities' pure parts (no network): compatibility rules, error translation,
the wire wrapper's redaction, status mapping and the Blueprint registration."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func
import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError
from azure.mgmt.core.exceptions import ARMErrorFormat

import activities
from activities import compat, image_versions, virtual_machines
from activities._common import activity
from activities.exports import _progress
from shared.azure_errors import translate_azure_error
from shared.contracts import DefinitionFacts, DiskFacts, VmFacts, VmRef
from shared.errors import AzureOperationError, CaptureError, TransientAzureError, parse_failure
from shared.redaction import contains_secret
from shared.requests import ImageDefinitionSpec
from tests.activities.arm_responses import ArmResponse

# Built at run time so the repository never holds text that looks like a real SAS signature.
SAS = (
    "https://md-abc.z1.blob.storage.azure.net/c/abcd?sv=2018-03-28&sr=b&si=x&sig="
    + "AbCdEfGhIjKlMnOpQrStUv"
    + "%3D"
)

EXPECTED_ACTIVITIES = {
    "record_trace",
    "get_vm_facts",
    "check_gallery",
    "read_source",
    "check_export_target",
    "list_regions",
    "check_permissions",
    "start_guest_prepare",
    "get_power_state",
    "start_deallocate",
    "start_vm",
    "generalize_vm",
    "start_snapshot",
    "get_snapshot",
    "ensure_definition",
    "start_image_version",
    "get_version_status",
    "delete_image_version",
    "start_export",
    "get_copy_status",
    "abort_copy",
    "revoke_snapshot_access",
    "delete_snapshot",
    "get_snapshot_deletion",
    # release (retention, sharing) and the Marketplace hand-off
    "list_definition_versions",
    "assign_role",
    "check_marketplace",
    "check_marketplace_vhds",
    # captureMode "clone" (activities/clones.py)
    "check_clone_target",
    "ensure_clone_disk",
    "ensure_clone_nic",
    "create_clone_vm",
    "get_clone_vm",
    "delete_clone",
    # migrations (activities/migrations.py)
    "list_managed_images",
    "delete_managed_image",
    "start_boot_test",
    "check_boot_test",
    "delete_boot_test",
    "get_boot_test_leftovers",
    "set_version_latest",
}


def vm_facts(**overrides: object) -> VmFacts:
    base: dict[str, object] = dict(
        id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-web",
        name="vm-web",
        resource_group="rg",
        subscription_id="s",
        location="westeurope",
        os_type="Linux",
        hyper_v_generation="V2",
        security_type="Standard",
        architecture="x64",
        power_state="running",
        generalized=False,
        os_disk=DiskFacts(key="os", name="d", id="/subscriptions/s/x", size_gb=30),
    )
    base.update(overrides)
    return VmFacts.model_validate(base)


def definition(**overrides: object) -> DefinitionFacts:
    base: dict[str, object] = dict(
        id="/x",
        location="westeurope",
        os_type="Linux",
        os_state="Generalized",
        hyper_v_generation="V2",
        security_type=None,
        architecture="x64",
    )
    base.update(overrides)
    return DefinitionFacts.model_validate(base)


# --- compatibility rules ------------------------------------------------------------------


def test_compatible_definition_has_no_problems() -> None:
    assert compat.problems("web-ubuntu", definition(), vm_facts()) == []
    tl = vm_facts(security_type="TrustedLaunch", os_type="Windows", name="vm-win")
    assert (
        compat.problems("win", definition(os_type="Windows", security_type="TrustedLaunchSupported"), tl)
        == []
    )


def test_hyper_v_mismatch_reads_like_advice() -> None:
    (problem,) = compat.problems("web-ubuntu", definition(hyper_v_generation="V1"), vm_facts())
    assert problem == (
        "the image definition web-ubuntu is Hyper-V V1 but vm-web is V2: use a V2 definition "
        "or let the capture create one"
    )


@pytest.mark.parametrize(
    ("defn", "vm", "words"),
    [
        ({"os_type": "Windows"}, {}, ["is for Windows", "runs Linux"]),
        ({"os_state": "Specialized"}, {}, ["Specialized", "osState Generalized"]),
        ({"architecture": "Arm64"}, {}, ["is for Arm64", "vm-web is x64"]),
        (
            {},
            {"security_type": "TrustedLaunch"},
            ["no SecurityType feature", "Trusted Launch", "TrustedLaunchSupported"],
        ),
        ({"security_type": "TrustedLaunch"}, {}, ["SecurityType TrustedLaunch", "standard security"]),
        (
            {"security_type": "TrustedLaunchSupported"},
            {"security_type": "ConfidentialVM"},
            ["Confidential VM"],
        ),
    ],
)
def test_each_mismatch_is_one_named_problem(defn: dict, vm: dict, words: list[str]) -> None:
    found = compat.problems("web-ubuntu", definition(**defn), vm_facts(**vm))
    assert len(found) == 1, found
    assert found[0].startswith("the image definition web-ubuntu ")
    for w in words:
        assert w in found[0]


def test_definition_facts_apply_azure_defaults() -> None:
    facts = compat.definition_facts({"id": "/d", "location": "westeurope", "properties": {"osType": "Linux"}})
    assert (facts.hyper_v_generation, facts.architecture, facts.security_type) == ("V1", "x64", None)
    facts = compat.definition_facts(
        {
            "properties": {
                "osType": "Windows",
                "features": [{"name": "SecurityType", "value": "TrustedLaunch"}],
            }
        }
    )
    assert facts.security_type == "TrustedLaunch"


def test_created_definition_is_derived_from_the_vm() -> None:
    spec = ImageDefinitionSpec(name="win", publisher="contoso", offer="win", sku="2022")
    body = compat.definition_body(
        spec, vm_facts(security_type="TrustedLaunch", os_type="Windows"), "westeurope", {}
    )
    p = body["properties"]
    assert (p["osType"], p["osState"], p["hyperVGeneration"], p["architecture"]) == (
        "Windows",
        "Generalized",
        "V2",
        "x64",
    )
    assert p["features"] == [{"name": "SecurityType", "value": "TrustedLaunchSupported"}]
    assert p["identifier"] == {"publisher": "contoso", "offer": "win", "sku": "2022"}
    assert "features" not in compat.definition_body(spec, vm_facts(), "westeurope", {})["properties"]


# --- VM facts helpers ---------------------------------------------------------------------


def test_power_state_and_generalized_from_instance_view() -> None:
    view = {
        "statuses": [
            {"code": "ProvisioningState/succeeded"},
            {"code": "PowerState/deallocated"},
            {"code": "OSState/generalized"},
        ]
    }
    assert virtual_machines._power_state(view) == ("deallocated", True, "succeeded")
    assert virtual_machines._power_state({}) == ("unknown", False, None)


@pytest.mark.parametrize(
    ("size", "disk_arch", "expected"),
    [
        ("Standard_D2ps_v5", None, "Arm64"),
        ("Standard_D2s_v5", None, "x64"),
        ("Standard_D2s_v5", "Arm64", "Arm64"),
    ],
)
def test_architecture(size: str, disk_arch: str | None, expected: str) -> None:
    vm = {"properties": {"hardwareProfile": {"vmSize": size}}}
    disk = {"properties": {"supportedCapabilities": {"architecture": disk_arch}}} if disk_arch else {}
    assert virtual_machines._architecture(vm, disk) == expected


def test_copy_progress_parsing() -> None:
    assert _progress("1048576/34359738880") == (1048576, 34359738880)
    assert _progress(None) == (0, 0)


# --- version status mapping ----------------------------------------------------------------


def test_version_status_normalises_regions_and_reports_failed_regions() -> None:
    vid = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/d/versions/1.0.0"
    body = {
        "id": vid,
        "properties": {
            "provisioningState": "Failed",
            "replicationStatus": {
                "aggregatedState": "Failed",
                "summary": [
                    {"region": "West Europe", "state": "Completed", "progress": 100},
                    {
                        "region": "East US 2",
                        "state": "Failed",
                        "progress": 40,
                        "details": "ReplicationFailed: boom",
                    },
                ],
            },
        },
    }
    status = image_versions.version_status(body, vid, None)
    assert [(r.region, r.state, r.progress) for r in status.regions] == [
        ("westeurope", "Completed", 100),
        ("eastus2", "Failed", 40),
    ]
    assert status.error == "replication failed in eastus2: ReplicationFailed: boom"


def test_version_id_parsing_rejects_other_ids() -> None:
    with pytest.raises(CaptureError, match="not an image version id"):
        image_versions.version_parts(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/snapshots/x", "t"
        )
    parts = image_versions.version_parts(
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/d/versions/1.2.3",
        "t",
    )
    assert parts == ("s", "rg", "g", "d", "1.2.3")


# --- error translation --------------------------------------------------------------------


def arm_error(status: int, code: str, message: str) -> HttpResponseError:
    return HttpResponseError(
        response=ArmResponse(status, {"error": {"code": code, "message": message}}),
        error_format=ARMErrorFormat,
    )


def test_authorization_failed_names_action_scope_and_advice() -> None:
    msg = (
        "The client 'x' with object id 'y' does not have authorization to perform action "
        "'Microsoft.Compute/snapshots/write' over scope '/subscriptions/s/resourceGroups/rg'"
    )
    err = translate_azure_error(
        arm_error(403, "AuthorizationFailed", msg), step="create the snapshot", resource="/snap"
    )
    assert isinstance(err, AzureOperationError)
    assert "403 AuthorizationFailed" in str(err)
    assert "Microsoft.Compute/snapshots/write" in str(err)
    assert "Grant the Function App's identity" in str(err)
    info = parse_failure(f"Activity function 'x' failed: {err}")
    assert info is not None and info.kind == "terminal" and info.azure_code == "AuthorizationFailed"


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_transient(status: int) -> None:
    err = translate_azure_error(arm_error(status, "TooManyRequests", "slow down"), step="read the VM")
    assert isinstance(err, TransientAzureError)
    assert parse_failure(str(err)).kind == "transient"  # type: ignore[union-attr]


def test_connection_errors_are_transient_and_redacted() -> None:
    err = translate_azure_error(
        ServiceRequestError(f"connection reset while reading {SAS}"), step="start the copy"
    )
    assert isinstance(err, TransientAzureError)
    assert not contains_secret(str(err))


def test_sas_in_azure_message_is_redacted() -> None:
    err = translate_azure_error(arm_error(400, "CannotVerifyCopySource", f"source {SAS} denied"), step="copy")
    assert "sig=" not in str(err).replace("sig=<redacted>", "")
    assert not contains_secret(str(err))


# --- the wire wrapper ---------------------------------------------------------------------


@activity(VmRef)
def _leaky(inp: VmRef) -> VmRef:
    raise RuntimeError(f"boom while copying from {SAS}")


def test_wrapper_redacts_unexpected_errors_and_drops_the_cause() -> None:
    with pytest.raises(CaptureError) as caught:
        _leaky({"vmId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/v"})
    assert not contains_secret(str(caught.value))
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_wrapper_rejects_bad_payload_naming_the_field() -> None:
    with pytest.raises(CaptureError, match=r"invalid VmRef: vmId: Field required"):
        virtual_machines.get_vm_facts({"vm": "x"})


def test_blueprint_registers_every_activity_with_a_payload_binding() -> None:
    assert set(activities.ACTIVITIES) == EXPECTED_ACTIVITIES
    app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    app.register_functions(activities.bp)
    functions = {f.get_function_name(): f for f in app.get_functions()}
    assert set(functions) == EXPECTED_ACTIVITIES
    for f in functions.values():
        (binding,) = f.get_bindings_dict()["bindings"]
        assert binding["type"] == "activityTrigger" and binding["name"] == "payload"
