"""What a Run Command script does inside the simulated guest.

A tiny interpreter, enough for capture workflows and tests; anything it does not recognise is a
successful no-op. Understood (one command per line, or separated by ``;`` / ``&&``):

- ``echo TEXT`` / ``Write-Output TEXT`` / ``Write-Host TEXT`` -> stdout; with ``>&2`` or
  ``Write-Error TEXT`` -> stderr
- ``exit N`` -> stop with exit code N; ``false`` / ``true`` set the status
- ``throw TEXT`` (PowerShell) -> TEXT on stderr and the script stops (exit 1; Windows results carry no
  exit code, so the stderr output is what a caller sees)
- ``sleep N`` / ``Start-Sleep N`` (or ``-Seconds N``) -> the command takes N more Azure seconds
- ``waagent ... -deprovision...`` (Linux) -> guest deprovisioned; the agent dies, so the Run
  Command never completes (docs/azure-facts.md#run-command-and-generalization)
- ``sysprep ... /generalize`` (Windows) -> guest generalized; with ``/shutdown`` the VM stops after
  a delay and the Run Command ends Canceled/Failed without exit code; ``/quit`` keeps it running
- ``shutdown`` / ``poweroff`` / ``halt`` / ``systemctl poweroff`` / ``Stop-Computer`` -> the guest
  shuts down: the VM reaches PowerState/stopped (still allocated)
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azsim.compute.models import ManagedDisk, VirtualMachine


@dataclass
class ScriptOutcome:
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    exit_code: int = 0
    extra_seconds: float = 0.0
    deprovision: bool = False
    sysprep_generalize: bool = False
    shutdown: bool = False


def _split_commands(script: list[str]) -> list[str]:
    out: list[str] = []
    for line in "\n".join(script).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for part in re.split(r"\s*(?:&&|;|\|\|)\s*", line):
            if part:
                out.append(part)
    return out


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command, posix=True)
    except ValueError:
        return command.split()


def _text(words: list[str]) -> str:
    return " ".join(w for w in words if w not in (">&2", "1>&2"))


def _substitute(text: str, params: dict[str, str]) -> str:
    for name, value in params.items():
        text = text.replace(f"${name}", value).replace(f"${{{name}}}", value)
    return text


def run_script(
    script: list[str], *, windows: bool, parameters: dict[str, str] | None = None
) -> ScriptOutcome:
    params = parameters or {}
    result = ScriptOutcome()
    for raw in _split_commands(script):
        command = _substitute(raw, params)
        words = _words(command)
        if not words:
            continue
        head = words[0].lower()
        if head == "sudo" and len(words) > 1:
            words = words[1:]
            head = words[0].lower()
        low = command.lower()
        to_stderr = ">&2" in command
        if head in ("echo", "write-output", "write-host", "printf"):
            (result.stderr if to_stderr else result.stdout).append(_text(words[1:]))
        elif head == "write-error":
            result.stderr.append(_text(words[1:]))
        elif head == "throw":
            result.stderr.append(_text(words[1:]) or "ScriptHalted")
            result.exit_code = 1
            break
        elif head == "exit":
            try:
                result.exit_code = int(words[1]) if len(words) > 1 else 0
            except ValueError:
                result.exit_code = 1
            break
        elif head == "false":
            result.exit_code = 1
        elif head == "true":
            result.exit_code = 0
        elif head in ("sleep", "start-sleep"):
            nums = [w for w in words[1:] if re.fullmatch(r"\d+(\.\d+)?", w)]
            if nums:
                result.extra_seconds += float(nums[0])
        elif "waagent" in head and "-deprovision" in low:
            result.deprovision = True
        elif "sysprep" in head or ("sysprep" in low and "/generalize" in low):
            if "/generalize" in low:
                result.sysprep_generalize = True
            if "/shutdown" in low:
                result.shutdown = True
        elif (
            head in ("shutdown", "poweroff", "halt", "stop-computer")
            or (head == "systemctl" and "poweroff" in low)
            or (head == "init" and words[1:2] == ["0"])
        ):
            if head == "shutdown" and windows and "/r" in low:
                continue  # a reboot: the VM keeps running
            if head == "shutdown" and not windows and re.search(r"(^|\s)-r\b", command):
                continue
            result.shutdown = True
    return result


def linux_result(outcome: ScriptOutcome) -> dict[str, object]:
    """RunCommandResult of RunShellScript: one status with stdout/stderr in ``message``."""
    stdout = "\n".join(outcome.stdout)
    stderr = "\n".join(outcome.stderr)
    if outcome.exit_code == 0:
        status = {
            "code": "ProvisioningState/succeeded",
            "level": "Info",
            "displayStatus": "Provisioning succeeded",
            "message": f"Enable succeeded: \n[stdout]\n{stdout}\n\n[stderr]\n{stderr}\n",
        }
    else:
        status = {
            "code": f"ProvisioningState/failed/{outcome.exit_code}",
            "level": "Error",
            "displayStatus": "Provisioning failed",
            "message": "Enable failed: failed to execute command: command terminated with exit status="
            f"{outcome.exit_code}\n[stdout]\n{stdout}\n\n[stderr]\n{stderr}\n",
        }
    return {"value": [status]}


def windows_result(outcome: ScriptOutcome) -> dict[str, object]:
    """RunCommandResult of RunPowerShellScript: StdOut and StdErr component statuses."""
    return {
        "value": [
            {
                "code": "ComponentStatus/StdOut/succeeded",
                "level": "Info",
                "displayStatus": "Provisioning succeeded",
                "message": "\n".join(outcome.stdout),
            },
            {
                "code": "ComponentStatus/StdErr/succeeded",
                "level": "Info",
                "displayStatus": "Provisioning succeeded",
                "message": "\n".join(outcome.stderr),
            },
        ]
    }


# --- bootability: what a VM created from an image of this guest does --------------------------
#
# A guest carries its preparation state from VM to disk to snapshot to image version (hidden model
# fields, never in an ARM body): "" (never prepared), "deprovisioned" (waagent -deprovision) or
# "sysprepped" (sysprep /generalize), plus whether the guest's own preparation is broken. A VM
# created from an image then provisions (or not) as docs/azsim-arm.md#vms-from-gallery-images says.

PREPARED = ("deprovisioned", "sysprepped")


@dataclass(frozen=True)
class GuestImage:
    state: str = ""  # "" | "deprovisioned" | "sysprepped"
    prepare_fails: bool = False


def boot_outcome(os_state: str, guest: GuestImage) -> str:
    """``none`` (no OS provisioning), ``ok``, ``timeout`` (OSProvisioningTimedOut) or ``clientError``."""
    prepared = guest.state in PREPARED
    if os_state.lower() == "specialized":
        # A generalized OS published as specialized waits for a provisioning that never comes.
        return "timeout" if prepared else "none"
    if not prepared:
        return "timeout"
    return "clientError" if guest.prepare_fails else "ok"


def provisioning_timed_out(vm_name: str) -> str:
    return (
        f"OS Provisioning for VM '{vm_name}' did not finish in the allotted time. However, the VM guest agent was "
        "detected running. This suggests the guest OS has not been properly prepared to be used as a VM image "
        "(with CreateOption=FromImage). To resolve this issue, either use the VHD as is with CreateOption=Attach "
        "or prepare it properly for use as an image:"
    )


def provisioning_timed_out_prepared(vm_name: str) -> str:
    return (
        f"OS Provisioning for VM '{vm_name}' did not finish in the allotted time. The VM may still finish "
        "provisioning successfully. Please check provisioning state later. Also, make sure the image has been "
        "properly prepared (generalized)."
    )


def provisioning_client_error(vm_name: str, details: str) -> str:
    return (
        f"OS provisioning for VM '{vm_name}' failed. Error details: {details} Make sure the image has been "
        "properly prepared (generalized)."
    )


def guest_of_disk(disk: ManagedDisk, vms: Mapping[str, VirtualMachine]) -> GuestImage:
    """The guest on a disk: the running VM's while it is that VM's OS disk, else what the disk carries."""
    vm = vms.get((disk.managed_by or "").lower())
    if vm is not None and vm.os_disk_id.lower() == disk.id.lower():
        return vm.guest
    return disk.guest
