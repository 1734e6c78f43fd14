"""check_permissions against the local cloud: the app's identity reads its own permissions at each scope.

The module's world is the example world plus two principals: "limited" holds the app's custom roles of
``shared/app-actions.json`` except that its source-VM role lacks generalize; "wildcard" holds
``Microsoft.Compute/*`` with generalize as a notAction on the source group, Contributor on the gallery
group, and Owner (actions ``*``, no data actions) on the export account.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from activities import permissions
from shared.permissions import (
    PermissionsCheckInput,
    PermissionsCheckResult,
    capture_features,
    capture_scopes,
    load_app_actions,
    missing_permissions_error,
    requirements,
)
from tests.activities.activity_cloud import Calls, reset_caches
from tests.support.worlds import WORLD

GENERALIZE = "Microsoft.Compute/virtualMachines/generalize/action"
LIMITED = {
    "objectId": "0d6c3a52-8f0e-4b1c-9a55-6a1e2b3c4d01",
    "displayName": "limited",
    "clientId": "0d6c3a52-8f0e-4b1c-9a55-6a1e2b3c4d02",
    "kind": "servicePrincipal",
}
WILDCARD = {
    "objectId": "1e7d4b63-9f1f-4c2d-8b66-7b2f3c4d5e01",
    "displayName": "wildcard",
    "clientId": "1e7d4b63-9f1f-4c2d-8b66-7b2f3c4d5e02",
    "kind": "servicePrincipal",
}
WILD_ROLE = "Compute except generalize"


def _world(path: Path) -> Path:
    world = json.loads(WORLD.read_text(encoding="utf-8"))
    sub = f"/subscriptions/{world['subscriptions'][0]['id']}"
    groups = {
        "sourceGroups": f"{sub}/resourceGroups/rg-build",
        "galleries": f"{sub}/resourceGroups/rg-images",
        "exportAccounts": f"{sub}/resourceGroups/rg-storage/providers/Microsoft.Storage/storageAccounts/stexports",
        "vhdSourceAccounts": f"{sub}/resourceGroups/rg-legacy-images/providers/Microsoft.Storage/storageAccounts/stlegacyvhds",
    }
    roles = [
        {
            "name": r["name"],
            "actions": [a for a in r["actions"] if a != GENERALIZE],
            "dataActions": r["dataActions"],
        }
        for r in load_app_actions()["roles"]
    ]
    wild = {"name": WILD_ROLE, "actions": ["Microsoft.Compute/*"], "notActions": [GENERALIZE]}
    world["principals"] += [LIMITED, WILDCARD]
    world["customRoles"] = [*world.get("customRoles", []), *roles, wild]
    app_roles = {r["name"]: r["scope"] for r in load_app_actions()["roles"]}
    world["roleAssignments"] += [
        {"principal": "limited", "roleDefinitionName": name, "scope": groups[kind]}
        for name, kind in app_roles.items()
    ] + [
        {"principal": "wildcard", "roleDefinitionName": WILD_ROLE, "scope": groups["sourceGroups"]},
        {"principal": "wildcard", "roleDefinitionName": "Contributor", "scope": groups["galleries"]},
        {"principal": "wildcard", "roleDefinitionName": "Owner", "scope": groups["exportAccounts"]},
    ]
    path.write_text(json.dumps(world), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from azsim.testing import local_cloud

    workdir = tmp_path_factory.mktemp("azsim-permissions")
    with (
        local_cloud(workdir / "cloud", world=_world(workdir / "world.json")) as env,
        env.apply(),
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.delenv("AZURE_CLIENT_ID", raising=False)
        reset_caches()
        try:
            yield env
        finally:
            reset_caches()


@contextmanager
def identity(principal: dict[str, str]) -> Iterator[None]:
    os.environ["AZURE_CLIENT_ID"] = principal["clientId"]
    reset_caches()
    try:
        yield
    finally:
        os.environ.pop("AZURE_CLIENT_ID", None)
        reset_caches()


def _scopes(cloud: Any) -> dict[str, str]:
    sub = f"/subscriptions/{cloud.subscription_id}"
    return capture_scopes(
        f"{sub}/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/vm-web",
        f"{sub}/resourceGroups/rg-images",
        f"{sub}/resourceGroups/rg-storage/providers/Microsoft.Storage/storageAccounts/stexports",
    )


def _check(call: Calls, cloud: Any, **features: bool) -> PermissionsCheckResult:
    reqs = requirements(capture_features("inPlace", **features), _scopes(cloud))
    payload = PermissionsCheckInput(scopes=reqs).to_wire()
    return PermissionsCheckResult.from_wire(call(permissions.check_permissions, payload))


def test_the_example_identity_has_everything(cloud: Any, call: Calls) -> None:
    result = _check(call, cloud, export=True, prepare_running_vm=True, create_if_missing=True)
    assert result.missing == []


def test_a_role_without_generalize_is_named_with_scope_and_role(cloud: Any, call: Calls) -> None:
    with identity(LIMITED):
        result = _check(call, cloud, export=True, prepare_running_vm=True, create_if_missing=True)
    vm = _scopes(cloud)["sourceVm"]
    assert [(m.scope, m.kind, [a.action for a in m.missing]) for m in result.missing] == [
        (vm, "sourceGroups", [GENERALIZE])
    ]
    (lacking,) = result.missing[0].missing
    assert (lacking.role, lacking.builtin_role) == (
        "Image Pipeline Source VMs",
        "Virtual Machine Contributor",
    )
    info = missing_permissions_error(result.missing, resource=vm)
    assert (info.step, info.code, info.kind) == ("preflight", "MissingPermissions", "terminal")
    assert f'on {vm}: {GENERALIZE} (role "Image Pipeline Source VMs", or built-in' in info.message
    assert info.advice is not None and info.advice.startswith("Nothing was changed.")


def test_wildcard_role_with_a_not_action_and_owner_without_data_actions(cloud: Any, call: Calls) -> None:
    with identity(WILDCARD):
        result = _check(call, cloud, export=True, prepare_running_vm=True)
    scopes = _scopes(cloud)
    by_scope = {m.scope: m for m in result.missing}
    assert set(by_scope) == {scopes["sourceVm"], scopes["exportAccounts"]}  # the gallery group is fine
    # Microsoft.Compute/* grants every other VM, disk and snapshot action; its notAction removes generalize.
    assert [a.action for a in by_scope[scopes["sourceVm"]].missing] == [GENERALIZE]
    # Owner's actions "*" cover the container actions but grant no data action.
    export = by_scope[scopes["exportAccounts"]].missing
    assert all(a.data_action for a in export)
    assert sorted(a.action.rsplit("/", 1)[1] for a in export) == ["delete", "read", "write"]
    assert {a.role for a in export} == {"Image Pipeline VHD Export"}
    message = missing_permissions_error(result.missing).message
    assert message.count("data action Microsoft.Storage/storageAccounts/blobServices/containers/blobs/") == 3
    assert "lacks 4 permission(s)" in message


def test_a_scope_in_a_missing_group_fails_with_azures_answer(cloud: Any, call: Calls) -> None:
    sub = f"/subscriptions/{cloud.subscription_id}"
    payload = {
        "scopes": [
            {
                "scope": f"{sub}/resourceGroups/rg-nope",
                "kind": "galleries",
                "required": [{"action": "Microsoft.Compute/galleries/read"}],
            }
        ]
    }
    with pytest.raises(Exception, match="ResourceGroupNotFound"):
        call(permissions.check_permissions, payload)
