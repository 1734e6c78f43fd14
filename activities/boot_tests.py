"""The boot test of a new image version: a test VM per region, its verdict, its removal; the promotion.

``start_boot_test`` creates the region's NIC (on the test subnet, no public IP) and a VM from the image
version (``storageProfile.imageReference.id``), with an explicit ``securityProfile`` for the image's
security type and ``deleteOption: Delete`` on its NIC and disks, and returns at once. A generalized
image needs an ``osProfile``: its admin credential is made here and dropped here — a Linux VM gets an
SSH public key whose private key is never kept (nobody can log in), a Windows VM a random password
(``secrets``); neither is returned, logged or stored. ``check_boot_test`` moves one region on:
provisioning (the VM create's operation says why it failed: ``OSProvisioningTimedOut``...), the agent
Ready, then the smoke script through Run Command (Linux: Azure's ``ProvisioningState/failed/<exit>``
status; Windows: Azure reports no exit code, output on stderr fails). The removal of the test VMs and
the promotion are in ``activities.boot_test_cleanup``.
"""

from __future__ import annotations

import re
import secrets
import string
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.mgmt.compute import models as cm
from azure.mgmt.core.exceptions import ARMErrorFormat
from azure.mgmt.network import models as nm

from activities import lro
from activities._common import activity, as_dict, azure_call, get_or_none, props
from shared import clients
from shared.activity_types import CHECK_BOOT_TEST, START_BOOT_TEST
from shared.azure_errors import translate_azure_error
from shared.ids import ownership_tags
from shared.redaction import redact
from shared.verify_spec import BootTestCheck, BootTestInput, BootTestState

ADMIN_USER = "imgtest"
_FAILED_EXIT = re.compile(r"ProvisioningState/failed/(-?\d+)", re.IGNORECASE)
_OUTPUT_MAX = 600


def _password() -> str:
    """A password Azure's complexity rules accept (upper, lower, digit, symbol; 24+ characters)."""
    alphabet = string.ascii_letters + string.digits
    core = "".join(secrets.choice(alphabet) for _ in range(24))
    return core + secrets.choice(string.ascii_uppercase) + secrets.choice(string.digits) + "!a"


def _ssh_public_key() -> str:
    """An RSA public key in OpenSSH form; its private key is dropped at once."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode("ascii") + " image-pipeline-boot-test"


def _os_profile(inp: BootTestInput) -> dict[str, Any] | None:
    if inp.os_state == "Specialized":
        return None  # a specialized image boots as it is: Azure refuses an osProfile
    profile: dict[str, Any] = {"computerName": inp.computer_name, "adminUsername": ADMIN_USER}
    if inp.os_type == "Linux":
        profile["linuxConfiguration"] = {
            "disablePasswordAuthentication": True,
            "ssh": {
                "publicKeys": [
                    {"path": f"/home/{ADMIN_USER}/.ssh/authorized_keys", "keyData": _ssh_public_key()}
                ]
            },
        }
    else:
        profile["adminPassword"] = _password()
    return profile


def _security_profile(security_type: str) -> dict[str, Any]:
    """Explicit, so Azure's Trusted Launch default never decides (docs/azure-facts.md#boot-tests)."""
    if security_type == "Standard":
        return {"securityType": "Standard"}
    return {
        "securityType": security_type,
        "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
    }


def vm_body(inp: BootTestInput) -> dict[str, Any]:
    """The test VM's PUT body, with a fresh credential for a generalized image (never logged)."""
    os_disk: dict[str, Any] = {
        "name": f"{inp.vm_name}-osdisk",
        "createOption": "FromImage",
        "deleteOption": "Delete",
    }
    if inp.security_type == "ConfidentialVM":
        os_disk["managedDisk"] = {"securityProfile": {"securityEncryptionType": "VMGuestStateOnly"}}
    properties: dict[str, Any] = {
        "hardwareProfile": {"vmSize": inp.vm_size},
        "storageProfile": {
            "imageReference": {"id": inp.version_id},
            "osDisk": os_disk,
            "dataDisks": [
                {
                    "lun": lun,
                    "name": f"{inp.vm_name}-data{lun}",
                    "createOption": "FromImage",
                    "deleteOption": "Delete",
                }
                for lun in inp.data_luns
            ],
        },
        "networkProfile": {
            "networkInterfaces": [
                {"id": inp.nic_id, "properties": {"primary": True, "deleteOption": "Delete"}}
            ]
        },
        "securityProfile": _security_profile(inp.security_type),
    }
    profile = _os_profile(inp)
    if profile is not None:
        properties["osProfile"] = profile
    return {"location": inp.region, "tags": ownership_tags(inp.run_id, inp.tags), "properties": properties}


def _failed(inp: BootTestInput, exc: Exception, step: str) -> BootTestState:
    """A terminal refusal is the region's verdict; a transient one is retried by the orchestrator."""
    translated = translate_azure_error(exc, step=step, resource=inp.vm_id)
    if translated.kind == "transient":
        raise translated from None
    info = translated.info
    return BootTestState(
        region=inp.region,
        vm_id=inp.vm_id,
        phase="failed",
        code=info.azure_code or info.code,
        message=info.message[:2000],
    )


@activity(START_BOOT_TEST)
def start_boot_test(inp: BootTestInput) -> BootTestState:
    """Create the NIC and the test VM, without waiting; a VM already there (an earlier execution) is read."""
    compute = clients.compute(inp.subscription_id)
    existing = get_or_none(
        lambda: compute.virtual_machines.get(inp.resource_group, inp.vm_name),
        step="read the test VM",
        resource=inp.vm_id,
    )
    if existing is not None:
        return BootTestState(region=inp.region, vm_id=inp.vm_id, phase="provisioning")
    nic = nm.NetworkInterface(
        {
            "location": inp.region,
            "tags": ownership_tags(inp.run_id, inp.tags),
            "properties": {
                "ipConfigurations": [
                    {
                        "name": "ipconfig1",
                        "properties": {
                            "subnet": {"id": inp.subnet_id},
                            "privateIPAllocationMethod": "Dynamic",
                        },
                    }
                ]
            },
        }
    )
    try:
        clients.network(inp.subscription_id).network_interfaces.begin_create_or_update(
            inp.resource_group, f"{inp.vm_name}-nic", nic
        ).result()
        accepted = lro.start(
            compute.virtual_machines.begin_create_or_update, inp.resource_group, inp.vm_name, vm_body(inp)
        )
    except HttpResponseError as exc:
        return _failed(inp, exc, "create the test VM")
    return BootTestState(
        region=inp.region, vm_id=inp.vm_id, phase="creating", operation_url=accepted.operation_url
    )


def _agent_ready(view: dict[str, Any]) -> bool:
    statuses = (view.get("vmAgent") or {}).get("statuses") or []
    return bool(statuses) and str(statuses[0].get("displayStatus") or "").lower() == "ready"


def _provisioning_failure(inp: BootTestInput, state: BootTestState) -> BootTestState:
    """Why the VM create failed: the operation's code and message (OSProvisioningTimedOut...)."""
    with azure_call("read the test VM's create operation", inp.vm_id):
        outcome = lro.read_operation(inp.subscription_id, state.operation_url)
    code = outcome.code if outcome is not None and outcome.code else "VMProvisioningFailed"
    message = (
        outcome.message
        if outcome is not None and outcome.message
        else f"the test VM {inp.vm_name} ended provisioning Failed"
    )
    return state.model_copy(update={"phase": "failed", "code": code, "message": message})


@activity(CHECK_BOOT_TEST)
def check_boot_test(inp: BootTestCheck) -> BootTestState:
    """Move one region's boot test on by what Azure says now (idempotent: it only reads, or starts the
    smoke script once the agent is Ready)."""
    test, state = inp.test, inp.state
    if state.ended:
        return state
    compute = clients.compute(test.subscription_id)
    vm = get_or_none(
        lambda: compute.virtual_machines.get(test.resource_group, test.vm_name, expand="instanceView"),
        step="read the test VM",
        resource=test.vm_id,
    )
    if vm is None:
        if state.operation_url:
            failed = _provisioning_failure(test, state)
            if failed.code != "VMProvisioningFailed":
                return failed
        return state.model_copy(
            update={
                "phase": "failed",
                "code": "BootTestVmMissing",
                "message": f"the test VM {test.vm_id} is gone",
            }
        )
    p = props(as_dict(vm))
    provisioning = str(p.get("provisioningState") or "")
    if provisioning.lower() == "failed":
        return _provisioning_failure(test, state)
    if provisioning.lower() != "succeeded":
        return state.model_copy(update={"phase": "provisioning", "detail": f"provisioning {provisioning}"})
    if not _agent_ready(p.get("instanceView") or {}):
        return state.model_copy(update={"phase": "provisioning", "detail": "waiting for the VM agent"})
    if not inp.smoke_script:
        return state.model_copy(update={"phase": "passed", "detail": "provisioned, agent Ready"})
    if not state.smoke_operation_url:
        return _start_smoke(test, state, inp.smoke_script)
    return _read_smoke(test, state)


def _start_smoke(test: BootTestInput, state: BootTestState, script: str) -> BootTestState:
    command = "RunShellScript" if test.os_type == "Linux" else "RunPowerShellScript"
    body = cm.RunCommandInput(command_id=command, script=script.splitlines())
    try:
        accepted = lro.start(
            clients.compute(test.subscription_id).virtual_machines.begin_run_command,
            test.resource_group,
            test.vm_name,
            body,
        )
    except HttpResponseError as exc:
        return _failed(test, exc, "run the smoke script")
    return state.model_copy(
        update={
            "phase": "smoke",
            "smoke_operation_url": accepted.operation_url,
            "detail": "smoke script running",
        }
    )


def _operation_body(subscription_id: str, url: str) -> tuple[int, dict[str, Any]]:
    response = clients.compute(subscription_id).send_request(HttpRequest("GET", url))
    if response.status_code not in (200, 202, 404):
        raise HttpResponseError(response=response, error_format=ARMErrorFormat)
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = {}
    return response.status_code, body if isinstance(body, dict) else {}


def _read_smoke(test: BootTestInput, state: BootTestState) -> BootTestState:
    url = state.smoke_operation_url or ""
    with azure_call("read the smoke script's Run Command", test.vm_id):
        code, body = _operation_body(test.subscription_id, url)
    status = str(body.get("status") or ("InProgress" if code == 202 else "Unknown"))
    if code == 404 or status.lower() in ("failed", "canceled"):
        with azure_call("read the smoke script's Run Command", test.vm_id):
            outcome = lro.read_operation(test.subscription_id, url)
        return state.model_copy(
            update={
                "phase": "failed",
                "code": (outcome.code if outcome else None) or "SmokeTestFailed",
                "message": (outcome.message if outcome else None)
                or "the smoke script's Run Command ended " + status,
            }
        )
    if status.lower() != "succeeded":
        return state.model_copy(update={"phase": "smoke", "detail": "smoke script running"})
    output = ((body.get("properties") or {}).get("output") or body).get("value") or []
    return _smoke_verdict(test, state, [s for s in output if isinstance(s, dict)])


def _smoke_verdict(
    test: BootTestInput, state: BootTestState, statuses: list[dict[str, Any]]
) -> BootTestState:
    """Linux: a ``ProvisioningState/failed/<exit>`` status is a non-zero exit; Windows: output on stderr."""
    exit_code = 0
    text = " ".join(str(s.get("message") or "") for s in statuses)
    for s in statuses:
        code, message = str(s.get("code") or ""), str(s.get("message") or "").strip()
        m = _FAILED_EXIT.search(code)
        if m:
            exit_code = int(m.group(1))
        elif test.os_type == "Windows" and "/stderr/" in code.lower() and message:
            exit_code = exit_code or 1  # Windows: no exit code in Azure's answer; stderr output fails
    output = redact(" ".join(text.split()))[-_OUTPUT_MAX:]
    if exit_code == 0:
        return state.model_copy(update={"phase": "passed", "exit_code": 0, "detail": "smoke script exited 0"})
    return state.model_copy(
        update={
            "phase": "failed",
            "exit_code": exit_code,
            "code": "SmokeTestFailed",
            "message": f"the smoke script exited {exit_code} on {test.vm_name}; its output: {output}",
        }
    )
