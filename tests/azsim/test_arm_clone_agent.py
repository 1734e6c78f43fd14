"""A clone's guest agent under the simulated clock: the VM is Creating, then running with the agent
Not Ready, then Ready once the latency profile's ``vm_agent_ready_s`` has passed; a Run Command sent
before that fails as Azure fails it when no agent reports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute.models import RunCommandInput

from azsim.core.clock import SimClock
from azsim.core.latency import LatencyProfile
from tests.azsim.arm_fakes import SimHandle, disk_id, running_sim
from tests.azsim.test_arm_clone import BUILD, STANDARD, make_nic, vm_body

# Polls every 10 ms of wall time: the simulated clock, not the pollers, decides when things finish.
LATENCY = LatencyProfile(vm_create_s=60.0, vm_agent_ready_s=45.0, run_command_s=20.0, poll_interval_s=0.01)


@pytest.fixture
def arm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    with running_sim(tmp_path_factory.mktemp("arm-agent"), clock=SimClock(), latency=LATENCY) as handle:
        yield handle


def advance(arm: SimHandle, seconds: float) -> None:
    clock = arm.sim.clock
    assert isinstance(clock, SimClock)
    assert clock.advance(by=seconds)


def copy_disk_virtual(arm: SimHandle, source: str, name: str) -> str:
    c = arm.compute()
    body: dict[str, Any] = {
        "location": "westeurope",
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk_id(source)}},
    }
    c.snapshots.begin_create_or_update("rg-build", f"{name}-snap", body, polling=False)
    advance(arm, 60)
    snap = disk_id(f"{name}-snap", kind="snapshots")
    body["properties"]["creationData"]["sourceResourceId"] = snap
    c.disks.begin_create_or_update(BUILD, name, body, polling=False)
    advance(arm, 60)
    assert c.disks.get(BUILD, name).provisioning_state == "Succeeded"
    return disk_id(name, BUILD)


def agent(arm: SimHandle, name: str) -> tuple[str, str, str]:
    view = arm.compute().virtual_machines.instance_view(BUILD, name)
    status = view.vm_agent.statuses[0]
    return status.display_status, status.message, view.vm_agent.vm_agent_version


def states(arm: SimHandle, name: str) -> tuple[str, str]:
    vm = arm.compute().virtual_machines.get(BUILD, name, expand="instanceView")
    power = next(s.code for s in vm.instance_view.statuses if s.code.startswith("PowerState/"))
    return vm.provisioning_state, power


def test_agent_becomes_ready_after_the_profile_delay(arm: SimHandle) -> None:
    os_id = copy_disk_virtual(arm, "vm-web_OsDisk", "agent-os")
    nic = make_nic(arm, "agent-nic")
    arm.compute().virtual_machines.begin_create_or_update(
        BUILD, "vm-agent", vm_body(os_id, nic, **STANDARD), polling=False
    )
    assert states(arm, "vm-agent") == ("Creating", "PowerState/starting")
    assert agent(arm, "vm-agent") == ("Not Ready", "VM status blob not found.", "Unknown")
    advance(arm, 60)
    assert states(arm, "vm-agent") == ("Succeeded", "PowerState/running")
    assert agent(arm, "vm-agent")[0] == "Not Ready"
    # A Run Command before the agent reports is never picked up: it fails after the command's time.
    poller = arm.compute().virtual_machines.begin_run_command(
        BUILD, "vm-agent", RunCommandInput(command_id="RunShellScript", script=["echo hi"]), polling=False
    )
    assert poller.status() != "Failed"
    advance(arm, 44)
    assert agent(arm, "vm-agent")[0] == "Not Ready"
    advance(arm, 1)
    assert agent(arm, "vm-agent") == (
        "Ready",
        "GuestAgent is running and accepting new configurations.",
        "2.12.0.2",
    )
    # Now the agent takes commands.
    ready = arm.compute(polling_interval=0).virtual_machines.begin_run_command(
        BUILD, "vm-agent", RunCommandInput(command_id="RunShellScript", script=["echo hi"])
    )
    advance(arm, 20)
    assert "hi" in ready.result(timeout=10).value[0].message
    assert poller.status() != "Succeeded"


def test_run_command_before_the_agent_is_ready_fails_with_azures_text(arm: SimHandle) -> None:
    os_id = copy_disk_virtual(arm, "vm-web_OsDisk", "early-os")
    nic = make_nic(arm, "early-nic")
    arm.compute().virtual_machines.begin_create_or_update(
        BUILD, "vm-early", vm_body(os_id, nic, **STANDARD), polling=False
    )
    advance(arm, 60)
    poller = arm.compute(polling_interval=0).virtual_machines.begin_run_command(
        BUILD, "vm-early", RunCommandInput(command_id="RunShellScript", script=["echo hi"])
    )
    advance(arm, 20)
    with pytest.raises(HttpResponseError) as e:
        poller.result(timeout=10)
    assert e.value.error.code == "VMAgentStatusCommunicationError"
    assert e.value.error.message == (
        "VM 'vm-early' has not reported status for VM agent or extensions. Please verify the VM has a running VM "
        "agent, and can establish outbound connections to Azure storage."
    )
