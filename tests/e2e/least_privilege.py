"""The app's least-privilege roles (``shared/app-actions.json``) as a test world, and what azsim saw.

``shared/app-actions.json`` holds the custom roles (``roles``: name, scope kind, actions, dataActions;
the Bicep builds its role definitions from them) and the per-feature breakdown they are the union of
(``features``: per capture mode and per feature, the actions and data actions by scope kind).
``least_privilege_world`` writes the tagged test world with the app's identity holding *only* those
roles, at the example world's scopes; a separate operator principal (Owner) makes the test's own
Azure calls, so they never count as the app's. ``Authorizations`` reads ``/_sim/authorizations``.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.worlds import REPO_ROOT, write_tagged_world

ACTIONS_FILE = REPO_ROOT / "shared" / "app-actions.json"
APP_PRINCIPAL = "id-image-pipeline"
OPERATOR = {
    "objectId": str(uuid.uuid5(uuid.NAMESPACE_URL, "azsim:test-operator")),
    "displayName": "test-operator",
    "clientId": str(uuid.uuid5(uuid.NAMESPACE_URL, "azsim:test-operator-client")),
    "kind": "servicePrincipal",
}
# The VHD source account lies in a source group: listed first, so its grants count as the account's.
SCOPE_KINDS = (
    "vhdSourceAccounts",
    "sourceGroups",
    "buildGroup",
    "galleries",
    "exportAccounts",
    "subscription",
)

# (scope kind, action, is a data action)
Grant = tuple[str, str, bool]


def load_actions(path: Path = ACTIONS_FILE) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def example_scopes(subscription_id: str) -> dict[str, list[str]]:
    """Each scope kind of the role file, in the example world: where the app's roles are assigned."""
    sub = f"/subscriptions/{subscription_id}"
    return {
        # rg-legacy-images: the managed images (and snapshots) captures take as their source.
        "sourceGroups": [f"{sub}/resourceGroups/rg-build", f"{sub}/resourceGroups/rg-legacy-images"],
        # The in-place capture snapshots in the source VM's group: the build group is that group here.
        "buildGroup": [f"{sub}/resourceGroups/rg-build"],
        "galleries": [f"{sub}/resourceGroups/rg-images"],
        "exportAccounts": [
            f"{sub}/resourceGroups/rg-storage/providers/Microsoft.Storage/storageAccounts/stexports"
        ],
        "vhdSourceAccounts": [
            f"{sub}/resourceGroups/rg-legacy-images/providers/Microsoft.Storage/storageAccounts/stlegacyvhds"
        ],
        "subscription": [sub],
    }


def least_privilege_world(path: Path, roles: list[dict[str, Any]] | None = None) -> Path:
    """The tagged test world; the app's identity holds only ``roles`` (default: the role file's)."""
    write_tagged_world(path)
    world = json.loads(path.read_text())
    roles = load_actions()["roles"] if roles is None else roles
    scopes = example_scopes(world["subscriptions"][0]["id"])
    world["principals"].append(OPERATOR)
    # Azure's roleDefinition JSON, as the Bicep deploys each role (assignable in the subscription).
    world["roleDefinitions"] = [
        {
            "name": str(uuid.uuid5(uuid.NAMESPACE_URL, f"azsim:role:{r['name']}")),
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": {
                "roleName": r["name"],
                "description": r.get("description", ""),
                "type": "CustomRole",
                "permissions": [{"actions": r["actions"], "dataActions": r.get("dataActions", [])}],
                "assignableScopes": scopes["subscription"],
            },
        }
        for r in roles
    ]
    others = [ra for ra in world["roleAssignments"] if ra["principal"] != APP_PRINCIPAL]
    mine = [
        {"principal": APP_PRINCIPAL, "roleDefinitionName": r["name"], "scope": scope}
        for r in roles
        for scope in scopes[r["scope"]]
    ]
    owner = {
        "principal": OPERATOR["displayName"],
        "roleDefinitionName": "Owner",
        "scope": scopes["subscription"][0],
    }
    world["roleAssignments"] = [*others, *mine, owner]
    path.write_text(json.dumps(world, indent=1))
    return path


def _covers(assignment_scope: str, scope: str) -> bool:
    a, s = assignment_scope.rstrip("/").lower(), scope.rstrip("/").lower()
    return s == a or s.startswith(a + "/")


@dataclass
class Authorizations:
    """One reading of ``/_sim/authorizations`` for the app's identity."""

    rows: list[dict[str, Any]]
    denied: list[str]
    implicit: set[str] = field(default_factory=set)

    @classmethod
    def read(cls, report: dict[str, Any]) -> Authorizations:
        """Grants by a role; refusals (each a 403 in Azure); reads Azure grants without a role."""
        rows = [r for r in report["value"] if r["allowed"] and not r["implicit"]]
        denied = sorted(
            f"{'dataAction' if r['dataAction'] else 'action'} {r['action']} on {r['scope']} (x{r['count']})"
            for r in report["value"]
            if not r["allowed"]
        )
        return cls(rows, denied, set(report["implicitActions"]))

    def since(self, before: Authorizations) -> Authorizations:
        """The decisions made after ``before`` was read (a decision made again counts as new)."""
        counts = {(r["action"], r["scope"], r["dataAction"]): r["count"] for r in before.rows}
        rows = [
            r for r in self.rows if r["count"] > counts.get((r["action"], r["scope"], r["dataAction"]), 0)
        ]
        return Authorizations(rows, [d for d in self.denied if d not in before.denied])

    def grants(self, scopes: dict[str, list[str]], kinds: list[str]) -> set[Grant]:
        """(scope kind, action, data?) of each grant, the kind being the first of ``kinds`` that covers it."""
        out: set[Grant] = set()
        for r in self.rows:
            kind = next(
                (k for k in kinds if any(_covers(s, r["scope"]) for s in scopes[k])), "(no role scope)"
            )
            out.add((kind, r["action"], bool(r["dataAction"])))
        return out


def role_grants(roles: list[dict[str, Any]]) -> set[Grant]:
    return {
        (r["scope"], a, data)
        for r in roles
        for data, key in ((False, "actions"), (True, "dataActions"))
        for a in r.get(key, [])
    }


def feature_grants(actions: dict[str, Any], *names: str) -> set[Grant]:
    """The grants the named features need (``features[name].actions|dataActions`` by scope kind)."""
    out: set[Grant] = set()
    for name in names:
        feature = actions["features"][name]
        for data, key in ((False, "actions"), (True, "dataActions")):
            for kind, listed in feature.get(key, {}).items():
                out.update((kind, a, data) for a in listed)
    return out


def roles_from_features(actions: dict[str, Any]) -> set[Grant]:
    return feature_grants(actions, *actions["features"])


def diff(used: set[Grant], listed: set[Grant], *, listed_name: str = "the role") -> str:
    """A readable difference: what was used but not listed (a 403 in Azure), what was listed but unused."""

    def lines(grants: set[Grant]) -> list[str]:
        by_kind: dict[str, list[str]] = defaultdict(list)
        for kind, action, data in sorted(grants):
            by_kind[kind].append(f"    {'dataAction' if data else 'action'}: {action}")
        return [f"  at {kind}:\n" + "\n".join(items) for kind, items in sorted(by_kind.items())]

    missing, unused = used - listed, listed - used
    out = []
    if missing:
        out.append(f"used by the app but missing from {listed_name}:\n" + "\n".join(lines(missing)))
    if unused:
        out.append(f"in {listed_name} but never used by the app:\n" + "\n".join(lines(unused)))
    return "\n".join(out)


README_BEGIN = (
    "<!-- app-actions: generated from shared/app-actions.json by `python -m tests.e2e.least_privilege` -->"
)
README_END = "<!-- /app-actions -->"


def _short(action: str) -> str:
    for prefix in ("Microsoft.Compute/", "Microsoft.Storage/storageAccounts/blobServices/"):
        if action.startswith(prefix):
            return action[len(prefix) :]
    return action


def readme_roles(actions: dict[str, Any]) -> str:
    """The README's list of the roles' actions (between the two markers), rendered from the role file."""
    out = [README_BEGIN]
    for role in actions["roles"]:
        out += ["", f"**{role['name']}** (assigned on `{role['scope']}`): {role['description']}", ""]
        out += [f"- `{a}`" for a in role["actions"]]
        out += [f"- `{a}` (data action)" for a in role.get("dataActions", [])]
    without = ", ".join(f"`{a}`" for a in actions["withoutRole"]["actions"])
    out += ["", f"Read without a role: {without}. {actions['withoutRole']['description']}"]
    out += ["", "Per capture mode and feature (`features` in the file; prefixes `Microsoft.Compute/`,", ""]
    out[-2] += " `Microsoft.Storage/storageAccounts/blobServices/` left out):"
    out += ["| Feature | What it uses, by scope |", "|---|---|"]
    for name, feature in actions["features"].items():
        parts = [
            f"{kind}{' (data)' if key == 'dataActions' else ''}: "
            + ", ".join(f"`{_short(a)}`" for a in listed)
            for key in ("actions", "dataActions")
            for kind, listed in feature.get(key, {}).items()
        ]
        out.append(f"| `{name}` | {'; '.join(parts) or 'no Azure action'} |")
    return "\n".join([*out, README_END])


if __name__ == "__main__":
    print(readme_roles(load_actions()))
