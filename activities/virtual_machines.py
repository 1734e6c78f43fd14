"""Activities on the source VM: read its facts and power state, prepare the guest, deallocate, start, generalize.

Nothing here waits on a long operation: deallocate and the guest step are started and the
orchestrator polls ``get_power_state``.
"""

from __future__ import annotations

import re
from typing import Any, Literal, cast

from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.core.pipeline import PipelineResponse
from azure.mgmt.compute import models as cm

from activities import lro
from activities._common import activity, as_dict, azure_call, azure_code, parse_id, props
from shared import clients
from shared.activity_types import (
    GENERALIZE_VM,
    GET_POWER_STATE,
    GET_VM_FACTS,
    START_DEALLOCATE,
    START_GUEST_PREPARE,
    START_VM,
)
from shared.azure_errors import translate_azure_error
from shared.contracts import (
    DiskFacts,
    GuestPrepareInput,
    GuestPrepareResult,
    PowerState,
    VmFacts,
    VmRef,
)
from shared.errors import CaptureError, GuestPreparationError, PreflightError
from shared.ids import disk_key
from shared.redaction import redact

# Arm64 sizes carry a "p" among the additive features after the vCPU count: D2ps_v5, E4pds_v5, B2pls_v2.
_ARM64_SIZE = re.compile(r"^Standard_[A-Z]+\d+[a-z]*p[a-z]*_v\d+$")

# Linux: deprovision, then power off, detached from the Run Command. waagent runs the Run Command and
# removes itself during deprovisioning, so the command can never report completion
# (docs/azure-facts.md#run-command-and-generalization); detaching lets the Run Command return at once
# and the guest stopping itself is the completion signal the orchestrator waits for (PowerState/stopped).
LINUX_SCRIPT = [
    "#!/bin/sh",
    "# image-pipeline: deprovision the guest, then power it off (detached from this Run Command)",
    "nohup setsid sh -c 'sleep 5; /usr/sbin/waagent -deprovision+user -force && export HISTSIZE=0 && sync"
    " && shutdown -h now' >/dev/null 2>&1 &",
    "echo image-pipeline: deprovision scheduled",
]
# Windows: sysprep shuts the VM down itself (/shutdown); Run Command may then end Canceled/Failed or never.
WINDOWS_SCRIPT = [
    "# image-pipeline: generalize the guest with sysprep; it shuts the VM down when done",
    '& "$env:SystemRoot\\System32\\Sysprep\\Sysprep.exe" /generalize /oobe /shutdown /mode:vm /quiet',
]
RUN_COMMAND_IN_PROGRESS = "Run command extension execution is in progress"


def _power_state(instance_view: dict[str, Any]) -> tuple[str, bool, str | None]:
    power = "unknown"
    generalized = False
    provisioning: str | None = None
    for status in instance_view.get("statuses") or []:
        code = str(status.get("code") or "")
        if code.startswith("PowerState/"):
            power = code.split("/", 1)[1].lower()
        elif code.lower() == "osstate/generalized":
            generalized = True
        elif code.startswith("ProvisioningState/"):
            provisioning = code.split("/", 1)[1]
    return power, generalized, provisioning


def _read_power(vm_id: str, step: str) -> PowerState:
    rid = parse_id(vm_id, field="vmId", step=step)
    with azure_call(step, vm_id):
        view = as_dict(
            clients.compute(rid.subscription_id).virtual_machines.instance_view(rid.resource_group, rid.name)
        )
    power, generalized, provisioning = _power_state(view)
    return PowerState(
        vm_id=vm_id, power_state=power, provisioning_state=provisioning, generalized=generalized
    )


def _architecture(vm: dict[str, Any], os_disk: dict[str, Any]) -> str:
    arch = (props(os_disk).get("supportedCapabilities") or {}).get("architecture")
    if isinstance(arch, str) and arch:
        return "Arm64" if arch.lower() == "arm64" else "x64"
    image = (props(vm).get("storageProfile") or {}).get("imageReference") or {}
    if "arm64" in str(image.get("sku", "")).lower():
        return "Arm64"
    size = str((props(vm).get("hardwareProfile") or {}).get("vmSize") or "")
    return "Arm64" if _ARM64_SIZE.match(size) else "x64"


def _security_type(vm: dict[str, Any]) -> str:
    value = str((props(vm).get("securityProfile") or {}).get("securityType") or "Standard")
    if value.lower() == "trustedlaunch":
        return "TrustedLaunch"
    if value.lower().startswith("confidentialvm"):
        return "ConfidentialVM"
    return "Standard"


def _disk(entry: dict[str, Any], lun: int | None, vm_name: str) -> DiskFacts:
    managed = entry.get("managedDisk") or {}
    if not managed.get("id"):
        raise PreflightError(
            f"the {'OS disk' if lun is None else f'data disk at LUN {lun}'} of {vm_name} is not a managed disk: "
            "only VMs with managed disks can be captured",
            step="get_vm_facts",
            code="UnmanagedDisk",
        )
    return DiskFacts(
        key=disk_key(lun),
        lun=lun,
        name=str(entry.get("name") or str(managed["id"]).rsplit("/", 1)[-1]),
        id=str(managed["id"]),
        size_gb=int(entry.get("diskSizeGB") or 0),
        sku=managed.get("storageAccountType"),
    )


@activity(GET_VM_FACTS)
def get_vm_facts(inp: VmRef) -> VmFacts:
    """Read the VM, its instance view and its OS disk: everything preflight and the later steps need."""
    step = "get_vm_facts"
    rid = parse_id(inp.vm_id, field="vmId", step=step)
    compute = clients.compute(rid.subscription_id)
    with azure_call("read the VM", inp.vm_id):
        vm = as_dict(compute.virtual_machines.get(rid.resource_group, rid.name, expand="instanceView"))
    p = props(vm)
    storage = p.get("storageProfile") or {}
    os_entry = storage.get("osDisk") or {}
    os_disk = _disk(os_entry, None, rid.name)
    data = [
        _disk(d, int(d["lun"]), rid.name)
        for d in sorted(storage.get("dataDisks") or [], key=lambda d: d["lun"])
    ]
    disk_rid = parse_id(os_disk.id, field="osDisk.managedDisk.id", step=step)
    with azure_call("read the OS disk", os_disk.id):
        disk = as_dict(
            clients.compute(disk_rid.subscription_id).disks.get(disk_rid.resource_group, disk_rid.name)
        )
    if not os_disk.size_gb:
        os_disk.size_gb = int(props(disk).get("diskSizeGB") or 0)
    view = p.get("instanceView") or {}
    power, generalized, _ = _power_state(view)
    hyper_v = str(view.get("hyperVGeneration") or props(disk).get("hyperVGeneration") or "V1").upper()
    os_type = str(os_entry.get("osType") or props(disk).get("osType") or "")
    if os_type not in ("Linux", "Windows"):
        raise PreflightError(
            f"could not tell the OS type of {rid.name} (storageProfile.osDisk.osType is {os_type!r})",
            step=step,
            resource=inp.vm_id,
            code="UnknownOsType",
        )
    return VmFacts(
        id=str(vm.get("id") or inp.vm_id),
        name=rid.name,
        resource_group=rid.resource_group,
        subscription_id=rid.subscription_id,
        location=str(vm.get("location") or ""),
        os_type=cast(Literal["Linux", "Windows"], os_type),
        hyper_v_generation=cast(Literal["V1", "V2"], "V2" if hyper_v == "V2" else "V1"),
        security_type=cast(Literal["Standard", "TrustedLaunch", "ConfidentialVM"], _security_type(vm)),
        architecture=cast(Literal["x64", "Arm64"], _architecture(vm, disk)),
        vm_size=(p.get("hardwareProfile") or {}).get("vmSize"),
        power_state=power,
        generalized=generalized,
        os_disk=os_disk,
        data_disks=data,
    )


@activity(GET_POWER_STATE)
def get_power_state(inp: VmRef) -> PowerState:
    """The VM's power state, provisioning state and whether it is generalized (one instanceView GET).

    With ``inp.operation_url`` (start_deallocate's) and a VM not yet deallocated, the operation is read
    too: a deallocation that ended Failed is reported in ``operation`` with Azure's code at once,
    instead of the caller waiting out its power-state timeout.
    """
    state = _read_power(inp.vm_id, "read the VM's power state")
    if inp.operation_url and state.power_state != "deallocated":
        rid = parse_id(inp.vm_id, field="vmId", step="get_power_state")
        with azure_call("read the VM's deallocate operation", inp.vm_id):
            outcome = lro.read_operation(rid.subscription_id, inp.operation_url)
        state = state.model_copy(update={"operation_url": inp.operation_url, "operation": outcome})
    return state


@activity(START_DEALLOCATE)
def start_deallocate(inp: VmRef) -> PowerState:
    """Start deallocating the VM and return at once; poll ``get_power_state`` until ``deallocated``."""
    current = _read_power(inp.vm_id, "read the VM's power state")
    if current.power_state in ("deallocated", "deallocating"):
        return current
    rid = parse_id(inp.vm_id, field="vmId", step="start_deallocate")
    with azure_call("deallocate the VM", inp.vm_id):
        accepted = lro.start(
            clients.compute(rid.subscription_id).virtual_machines.begin_deallocate,
            rid.resource_group,
            rid.name,
        )
    state = _read_power(inp.vm_id, "read the VM's power state")
    return state.model_copy(update={"operation_url": accepted.operation_url})


@activity(START_VM)
def start_vm(inp: VmRef) -> PowerState:
    """Start the stopped or deallocated VM and return at once; poll until ``running``.

    Idempotent: a VM running or starting is left as it is, and a VM still stopping or deallocating is
    only read (Azure would refuse or queue a start then); the caller calls again after a wait.
    """
    current = _read_power(inp.vm_id, "read the VM's power state")
    if current.power_state not in ("stopped", "deallocated"):
        return current
    rid = parse_id(inp.vm_id, field="vmId", step="start_vm")
    with azure_call("start the VM", inp.vm_id):
        accepted = lro.start(
            clients.compute(rid.subscription_id).virtual_machines.begin_start, rid.resource_group, rid.name
        )
    state = _read_power(inp.vm_id, "read the VM's power state")
    return state.model_copy(update={"operation_url": accepted.operation_url})


@activity(GENERALIZE_VM)
def generalize_vm(inp: VmRef) -> PowerState:
    """Mark the (stopped or deallocated) VM generalized. Irreversible; a generalized VM is left as it is."""
    current = _read_power(inp.vm_id, "read the VM's power state")
    if current.generalized:
        return current
    rid = parse_id(inp.vm_id, field="vmId", step="generalize_vm")
    with azure_call("generalize the VM", inp.vm_id):
        clients.compute(rid.subscription_id).virtual_machines.generalize(rid.resource_group, rid.name)
    return _read_power(inp.vm_id, "read the VM's power state")


@activity(START_GUEST_PREPARE)
def start_guest_prepare(inp: GuestPrepareInput) -> GuestPrepareResult:
    """Start the in-guest deprovision (Linux) or sysprep (Windows) through Run Command, without waiting.

    The guest stops itself when done; the orchestrator waits for ``PowerState/stopped``. A Run Command
    already in progress (409 Conflict) is taken to be ours from an earlier execution of this activity.
    A VM that is no longer running is reported (``started=False``) instead of failing, because an
    earlier execution may already have deprovisioned and stopped it.
    """
    step = "start the guest preparation"
    command = "RunShellScript" if inp.os_type == "Linux" else "RunPowerShellScript"
    current = _read_power(inp.vm_id, "read the VM's power state")
    if current.power_state != "running":
        return GuestPrepareResult(started=False, command=command, power_state=current.power_state)
    rid = parse_id(inp.vm_id, field="vmId", step="start_guest_prepare")
    body = {"commandId": command, "script": LINUX_SCRIPT if inp.os_type == "Linux" else WINDOWS_SCRIPT}
    captured: dict[str, str] = {}

    def keep_operation(response: PipelineResponse[Any, Any]) -> None:
        # The operation URL lets the orchestrator read an early failure; it carries no secret.
        op = response.http_response.headers.get("Azure-AsyncOperation")
        if op and response.http_request.method == "POST":
            captured["operation"] = op

    try:
        clients.compute(rid.subscription_id).virtual_machines.begin_run_command(
            rid.resource_group,
            rid.name,
            cm.RunCommandInput(body),
            polling=False,
            raw_response_hook=keep_operation,
        )
    except ResourceExistsError as exc:
        if azure_code(exc) == "Conflict" and RUN_COMMAND_IN_PROGRESS.lower() in str(exc).lower():
            said = (
                exc.error.message if exc.error is not None and exc.error.message else RUN_COMMAND_IN_PROGRESS
            )
            return GuestPrepareResult(
                started=False,
                already_in_progress=True,
                command=command,
                power_state="running",
                conflict=redact(f"409 Conflict: {said}")[:500],
            )
        raise _guest_error(exc, inp.vm_id, step) from None
    except HttpResponseError as exc:
        raise _guest_error(exc, inp.vm_id, step) from None
    return GuestPrepareResult(
        started=True, command=command, power_state="running", operation_url=captured.get("operation")
    )


def _guest_error(exc: HttpResponseError, vm_id: str, step: str) -> CaptureError:
    """A terminal Run Command failure names the guest step; a transient one stays transient."""
    translated = translate_azure_error(exc, step=step, resource=vm_id)
    if translated.kind == "transient":
        return translated
    return GuestPreparationError(
        translated.info.message,
        step=step,
        resource=vm_id,
        code=translated.info.code,
        azure_code=translated.info.azure_code,
        advice=translated.info.advice,
    )
