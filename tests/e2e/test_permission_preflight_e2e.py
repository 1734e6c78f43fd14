"""Preflight reads the identity's own permissions and refuses, before anything changes, a run it could not finish.

The app's identity holds the roles of ``shared/app-actions.json`` except that its source-VM role lacks
``virtualMachines/generalize/action``: a capture of a running VM must fail in preflight with one message
naming that action, its scope and the role that grants it, after reads only, with the VM still running.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.least_privilege import least_privilege_world, load_actions
from tests.support.stack import Stack, running_stack

GENERALIZE = "Microsoft.Compute/virtualMachines/generalize/action"
SOURCE_ROLE = "Image Pipeline Source VMs"


def _roles_without_generalize() -> list[dict[str, object]]:
    roles = copy.deepcopy(load_actions()["roles"])
    source = next(r for r in roles if r["name"] == SOURCE_ROLE)
    assert GENERALIZE in source["actions"]  # the control: the full role has it
    source["actions"] = [a for a in source["actions"] if a != GENERALIZE]
    return roles


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("permission-preflight")
    world = least_privilege_world(workdir / "world.json", roles=_roles_without_generalize())
    with running_stack(workdir, world=world, fast_queues=True) as s:
        yield s
        s.assert_no_secrets()


def test_a_missing_action_fails_preflight_naming_action_scope_and_role(limited: Stack) -> None:
    status = limited.run(limited.request("vm-web"))
    assert status["runtimeStatus"] == "Failed"
    err = status["error"]
    assert (err["step"], err["code"]) == ("preflight", "MissingPermissions")
    vm_id = limited.vm_id("vm-web")
    assert f"on {vm_id}: {GENERALIZE}" in err["message"]
    assert f'role "{SOURCE_ROLE}"' in err["message"] and "Virtual Machine Contributor" in err["message"]
    assert "1 permission(s)" in err["message"]  # only the one that is missing
    assert err["advice"].startswith("Nothing was changed.")
    # Nothing irreversible and nothing created: ARM saw reads only, and the VM still runs untouched.
    arm = limited.sim("requests")["value"]
    writes = [(r["method"], r["path"]) for r in arm if r["method"] not in ("GET", "HEAD")]
    assert writes == [], writes
    assert any(r["path"].endswith("/providers/Microsoft.Authorization/permissions") for r in arm)
    vm = limited.vm_state("vm-web")
    assert (vm["powerState"], vm["generalized"], vm["guestState"]) == ("running", False, "normal")
    assert status["generalized"] is False
