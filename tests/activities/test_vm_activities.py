"""VM activities against the local cloud: facts, guest preparation, deallocate, generalize, RBAC gaps."""

from __future__ import annotations

from typing import Any

import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as cm

from activities import snapshots, virtual_machines
from shared.contracts import GuestPrepareResult, PowerState, VmFacts
from shared.errors import AzureOperationError
from shared.ids import vm_id
from tests.activities.activity_cloud import Calls, poll


def _vm(cloud: Any, name: str) -> str:
    return vm_id(cloud.subscription_id, "rg-build", name)


def test_facts_of_the_linux_vm(cloud: Any, call: Calls) -> None:
    facts = VmFacts.from_wire(call(virtual_machines.get_vm_facts, {"vmId": _vm(cloud, "vm-web")}))
    assert (facts.os_type, facts.hyper_v_generation, facts.security_type, facts.architecture) == (
        "Linux",
        "V2",
        "Standard",
        "x64",
    )
    assert (facts.location, facts.power_state, facts.generalized) == ("westeurope", "running", False)
    assert (facts.os_disk.key, facts.os_disk.name, facts.os_disk.size_gb) == ("os", "vm-web_OsDisk", 30)
    assert facts.os_disk.id.endswith("/providers/Microsoft.Compute/disks/vm-web_OsDisk")
    assert [(d.key, d.lun, d.name, d.size_gb) for d in facts.data_disks] == [("lun0", 0, "vm-web_data0", 64)]


def test_facts_of_the_windows_trusted_launch_vm(cloud: Any, call: Calls) -> None:
    facts = VmFacts.from_wire(call(virtual_machines.get_vm_facts, {"vmId": _vm(cloud, "vm-win")}))
    assert (facts.os_type, facts.hyper_v_generation, facts.security_type) == (
        "Windows",
        "V2",
        "TrustedLaunch",
    )
    assert [(d.lun, d.size_gb) for d in facts.data_disks] == [(0, 128), (1, 256)]
    assert facts.os_disk.size_gb == 127


def test_facts_of_arm64_and_gen1_vms(cloud: Any, call: Calls) -> None:
    arm = VmFacts.from_wire(call(virtual_machines.get_vm_facts, {"vmId": _vm(cloud, "vm-arm")}))
    assert arm.architecture == "Arm64"
    legacy = VmFacts.from_wire(call(virtual_machines.get_vm_facts, {"vmId": _vm(cloud, "vm-legacy")}))
    assert (legacy.hyper_v_generation, legacy.power_state) == ("V1", "stopped")


def test_facts_of_a_missing_vm_name_it(cloud: Any, call: Calls) -> None:
    with pytest.raises(AzureOperationError) as caught:
        call(virtual_machines.get_vm_facts, {"vmId": _vm(cloud, "vm-nope")})
    assert "404" in str(caught.value) and "vm-nope" in str(caught.value)
    assert caught.value.info.kind == "terminal"


def test_windows_sysprep_starts_without_waiting_and_the_guest_stops(cloud: Any, call: Calls) -> None:
    vm = _vm(cloud, "vm-win")
    started = GuestPrepareResult.from_wire(
        call(virtual_machines.start_guest_prepare, {"vmId": vm, "osType": "Windows"})
    )
    assert started.started and started.command == "RunPowerShellScript"
    assert started.operation_url and "?" in started.operation_url  # an ARM status URL, not a SAS
    poll(
        lambda: PowerState.from_wire(call(virtual_machines.get_power_state, {"vmId": vm})),
        lambda s: s.power_state == "stopped",
    )
    # Re-executed after the guest stopped itself: reports it instead of failing.
    again = GuestPrepareResult.from_wire(
        call(virtual_machines.start_guest_prepare, {"vmId": vm, "osType": "Windows"})
    )
    assert (again.started, again.power_state) == (False, "stopped")


def test_run_command_in_progress_counts_as_already_started(cloud: Any, call: Calls) -> None:
    # A deprovision whose Run Command never completes (as on Azure), started as an earlier execution would.
    compute = cloud.arm_client(ComputeManagementClient)
    compute.virtual_machines.begin_run_command(
        "rg-build",
        "vm-web-2",
        cm.RunCommandInput({"commandId": "RunShellScript", "script": ["waagent -deprovision+user -force"]}),
        polling=False,
    )
    result = GuestPrepareResult.from_wire(
        call(virtual_machines.start_guest_prepare, {"vmId": _vm(cloud, "vm-web-2"), "osType": "Linux"})
    )
    assert (result.started, result.already_in_progress, result.command) == (False, True, "RunShellScript")
    # Azure's own words are kept: the run may be someone else's Run Command, not the capture's.
    assert (
        result.conflict and result.conflict.startswith("409 Conflict: ") and "in progress" in result.conflict
    )


def test_deallocate_then_generalize_idempotently(cloud: Any, call: Calls) -> None:
    vm = _vm(cloud, "vm-web-3")
    with pytest.raises(AzureOperationError) as caught:
        call(virtual_machines.generalize_vm, {"vmId": vm})
    assert "OperationNotAllowed" in str(caught.value) and "vm-web-3" in str(caught.value)

    first = PowerState.from_wire(call(virtual_machines.start_deallocate, {"vmId": vm}))
    assert first.power_state in ("deallocating", "deallocated")
    poll(
        lambda: PowerState.from_wire(call(virtual_machines.get_power_state, {"vmId": vm})),
        lambda s: s.power_state == "deallocated",
    )
    again = PowerState.from_wire(call(virtual_machines.start_deallocate, {"vmId": vm}))
    assert again.power_state == "deallocated"

    done = PowerState.from_wire(call(virtual_machines.generalize_vm, {"vmId": vm}))
    assert done.generalized and done.power_state == "deallocated"
    assert PowerState.from_wire(call(virtual_machines.generalize_vm, {"vmId": vm})).generalized


def test_rbac_gap_names_the_missing_action(cloud: Any, call: Calls, as_reader: None) -> None:
    facts = VmFacts.from_wire(
        call(virtual_machines.get_vm_facts, {"vmId": _vm(cloud, "vm-web-4")})
    )  # Reader may read
    payload = {
        "captureId": "cap-reader",
        "disk": facts.os_disk.to_wire(),
        "subscriptionId": cloud.subscription_id,
        "resourceGroup": "rg-build",
        "location": "westeurope",
    }
    with pytest.raises(AzureOperationError) as caught:
        call(snapshots.start_snapshot, payload)
    text = str(caught.value)
    assert "403 AuthorizationFailed" in text
    assert "Microsoft.Compute/snapshots/write" in text
    assert "Grant the Function App's identity" in text
