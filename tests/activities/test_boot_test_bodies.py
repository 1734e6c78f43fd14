"""The test VM's PUT body (activities.boot_tests.vm_body) and the boot test's pure rules (shared.verify_spec).

The body is what Azure validates: an osProfile only for a generalized image, with a credential made on
the spot and never echoed in the activity's result; an explicit securityProfile; deleteOption Delete on
the NIC and every disk. The e2e tests (tests/e2e/test_boot_test_e2e.py) run it against azsim.
"""

from __future__ import annotations

from typing import Any

import pytest

from activities.boot_tests import _smoke_verdict, vm_body
from shared.errors import ErrorInfo
from shared.requests import validate_request
from shared.verify_spec import (
    BootTestDefaults,
    BootTestInput,
    BootTestState,
    VerifySpec,
    boot_test_on,
    plan_problems,
    subnet_for,
)

SUB = "00000000-0000-0000-0000-000000000001"
SUBNET = (
    f"/subscriptions/{SUB}/resourceGroups/rg-image-build/providers/Microsoft.Network/virtualNetworks/"
    "vnet-we/subnets/snet-tests"
)


def _test(**overrides: Any) -> BootTestInput:
    base: dict[str, Any] = {
        "run_id": "capture-vm-web-0123456789-20260101000000",
        "region": "westeurope",
        "version_id": f"/subscriptions/{SUB}/resourceGroups/rg-images/providers/Microsoft.Compute/galleries/g/"
        "images/d/versions/1.0.0",
        "subscription_id": SUB,
        "resource_group": "rg-image-build",
        "vm_name": "imgtest-abc-westeurope",
        "computer_name": "btabc",
        "subnet_id": SUBNET,
        "vm_size": "Standard_D2s_v5",
        "os_type": "Linux",
        "os_state": "Generalized",
        "data_luns": [0, 3],
    }
    return BootTestInput(**{**base, **overrides})


def test_a_linux_test_vm_gets_an_ssh_key_only_and_deletes_everything_with_it() -> None:
    body = vm_body(_test())
    props = body["properties"]
    profile = props["osProfile"]
    assert "adminPassword" not in profile
    linux = profile["linuxConfiguration"]
    assert linux["disablePasswordAuthentication"] is True
    assert linux["ssh"]["publicKeys"][0]["keyData"].startswith("ssh-rsa ")
    assert props["storageProfile"]["imageReference"] == {"id": _test().version_id}
    assert props["storageProfile"]["osDisk"]["deleteOption"] == "Delete"
    assert [(d["lun"], d["deleteOption"]) for d in props["storageProfile"]["dataDisks"]] == [
        (0, "Delete"),
        (3, "Delete"),
    ]
    (nic,) = props["networkProfile"]["networkInterfaces"]
    assert nic["properties"]["deleteOption"] == "Delete"
    assert props["securityProfile"] == {"securityType": "Standard"}
    assert body["tags"]["image-pipeline:run-id"] == _test().run_id


def test_a_windows_test_vm_gets_a_fresh_password_each_time() -> None:
    first = vm_body(_test(os_type="Windows", security_type="TrustedLaunch"))["properties"]
    second = vm_body(_test(os_type="Windows", security_type="TrustedLaunch"))["properties"]
    a, b = first["osProfile"]["adminPassword"], second["osProfile"]["adminPassword"]
    assert a != b and len(a) >= 24
    assert any(c.isupper() for c in a) and any(c.isdigit() for c in a) and not a.isalnum()
    assert first["osProfile"]["computerName"] == "btabc"  # <= 15 characters for Windows
    assert first["securityProfile"]["uefiSettings"] == {"secureBootEnabled": True, "vTpmEnabled": True}


def test_a_specialized_image_boots_without_an_os_profile() -> None:
    assert "osProfile" not in vm_body(_test(os_state="Specialized"))["properties"]


def _statuses(code: str, message: str) -> list[dict[str, Any]]:
    return [{"code": code, "message": message}]


def test_the_smoke_verdict_reads_azures_exit_status() -> None:
    state = BootTestState(region="westeurope", vm_id="x", phase="smoke")
    failed = _smoke_verdict(
        _test(),
        state,
        _statuses(
            "ProvisioningState/failed/3", "Enable failed: exit status=3\n[stdout]\nchecking\n[stderr]\n"
        ),
    )
    assert (failed.phase, failed.exit_code, failed.code) == ("failed", 3, "SmokeTestFailed")
    assert "checking" in (failed.message or "")
    passed = _smoke_verdict(_test(), state, _statuses("ProvisioningState/succeeded", "Enable succeeded"))
    assert (passed.phase, passed.exit_code) == ("passed", 0)
    windows = [
        {"code": "ComponentStatus/StdOut/succeeded", "message": "ok"},
        {"code": "ComponentStatus/StdErr/succeeded", "message": "nginx is not running"},
    ]
    assert _smoke_verdict(_test(os_type="Windows"), state, windows).phase == "failed"
    windows[1]["message"] = ""
    assert _smoke_verdict(_test(os_type="Windows"), state, windows).phase == "passed"


def test_the_setting_turns_boot_tests_on_unless_the_request_says_no() -> None:
    on = BootTestDefaults.from_env({"BOOT_TEST_DEFAULT": "true"})
    assert boot_test_on(None, on) and boot_test_on(VerifySpec(), on)
    assert not boot_test_on(VerifySpec(boot_test=False), on)
    assert not boot_test_on(None, BootTestDefaults.from_env({}))
    with pytest.raises(ValueError, match="BOOT_TEST_DEFAULT"):
        BootTestDefaults.from_env({"BOOT_TEST_DEFAULT": "maybe"})


def test_subnets_come_from_the_request_then_the_list_then_the_template() -> None:
    other = SUBNET.replace("vnet-we", "vnet-other")
    d = BootTestDefaults.from_env(
        {
            "BOOT_TEST_SUBNET_IDS": f"westeurope={SUBNET}",
            "BOOT_TEST_SUBNET_TEMPLATE": SUBNET.replace(SUB, "{subscription}").replace(
                "vnet-we", "vnet-{region}"
            ),
        }
    )
    assert subnet_for("westeurope", SUB, None, d) == SUBNET
    assert subnet_for("westeurope", SUB, VerifySpec(subnet_ids={"westeurope": other}), d) == other
    assert subnet_for("eastus2", SUB, None, d) == SUBNET.replace("vnet-we", "vnet-eastus2")
    assert plan_problems(None, BootTestDefaults(), ["westeurope"], SUB) == [
        "no test subnet for westeurope: give verify.subnetIds.westeurope, or set BOOT_TEST_SUBNET_IDS or "
        "BOOT_TEST_SUBNET_TEMPLATE"
    ]
    problems = plan_problems(VerifySpec(regions=["eastus"]), d, ["westeurope"], SUB)
    assert "verify.regions eastus are not target regions" in problems[0]


def test_intake_checks_the_verify_part() -> None:
    body = {
        "sourceVmId": f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
        "captureMode": "inPlace",
        "prepare": "deprovision",
        "gallery": {"resourceGroup": "rg-images", "name": "gal"},
        "imageDefinition": {"name": "d", "publisher": "p", "offer": "o", "sku": "s"},
        "verify": {"bootTest": "yes", "onFailure": "drop", "subnetIds": {"westeurope": "/not/a/subnet"}},
    }
    request, errors = validate_request(body)
    assert request is None
    fields = {e.field for e in errors}
    assert {"verify.bootTest", "verify.onFailure", "verify.subnetIds"} <= fields, errors
    body["verify"] = {"bootTest": True, "subnetIds": {"westeurope": SUBNET}, "onFailure": "delete"}
    request, errors = validate_request(body)
    assert request is not None and not errors
    assert request.verify is not None and request.verify.on_failure == "delete"


def test_a_failed_boot_test_names_each_region_azures_code_and_what_to_do() -> None:
    info = ErrorInfo.boot_test_failed(
        "/v/1.0.0",
        [
            (
                "westeurope",
                "OSProvisioningTimedOut",
                "OS Provisioning for VM 'x' did not finish in the allotted time.",
            )
        ],
        deleted=False,
    )
    assert (info.code, info.azure_code, info.step) == ("BootTestFailed", "OSProvisioningTimedOut", "verify")
    assert "westeurope: OSProvisioningTimedOut: OS Provisioning" in info.message
    assert "stays excluded from latest" in info.message
    assert info.advice and 'prepare "deprovision"' in info.advice
