"""``shared/app-actions.json`` is well-formed, its roles are the union of its features, every action in it
is one azsim can authorise (so the least-privilege e2e test can prove it), and the README lists it.

No stack: these run in ``make test-fast``; ``test_least_privilege_e2e.py`` proves the list itself.
"""

from __future__ import annotations

from collections import Counter

from azsim.arm import urls
from azsim.compute import images
from azsim.storage import rbac as blob_rbac
from tests.e2e.least_privilege import (
    README_BEGIN,
    README_END,
    SCOPE_KINDS,
    diff,
    load_actions,
    readme_roles,
    role_grants,
    roles_from_features,
)
from tests.support.worlds import REPO_ROOT

ROLE_KEYS = {"name", "scope", "description", "actions", "dataActions"}


def test_the_file_has_the_agreed_shape() -> None:
    actions = load_actions()
    assert set(actions) == {"roles", "withoutRole", "features"}
    names = [r["name"] for r in actions["roles"]]
    assert len(names) == len(set(names)), names
    for role in actions["roles"]:
        assert set(role) == ROLE_KEYS, role["name"]
        assert role["scope"] in SCOPE_KINDS, role["scope"]
        assert role["description"] and role["actions"] + role["dataActions"], role["name"]
        for key in ("actions", "dataActions"):
            repeated = [a for a, n in Counter(role[key]).items() if n > 1]
            assert not repeated and all("*" not in a for a in role[key]), (role["name"], key, repeated)
    assert len({r["scope"] for r in actions["roles"]}) == len(names), "one role per scope kind"
    for name, feature in actions["features"].items():
        assert feature["kind"] in ("captureMode", "feature") and feature["description"], name
        assert set(feature) == {"kind", "description", "actions", "dataActions"}, name
        for key in ("actions", "dataActions"):
            assert set(feature[key]) <= set(SCOPE_KINDS), (name, key)


def test_the_roles_are_the_union_of_the_features() -> None:
    actions = load_actions()
    problem = diff(roles_from_features(actions), role_grants(actions["roles"]), listed_name="the roles")
    assert not problem, problem.replace("used by the app", "in a feature")


def test_every_listed_action_is_one_azsim_authorises() -> None:
    actions = load_actions()
    routed = {r.action for r in urls.ROUTES if r.authorize}
    # The blob front's permissions (azsim.storage.rbac): container actions and blob data actions.
    blob = {
        getattr(blob_rbac, n)
        for n in dir(blob_rbac)
        if n.isupper() and isinstance(getattr(blob_rbac, n), str) and "/" in getattr(blob_rbac, n)
    }
    # Linked actions: checked on a resource another request names (a VHD source's storage account).
    linked = {images.LIST_KEYS}
    listed = {a for _, a, _ in role_grants(actions["roles"])} | set(actions["withoutRole"]["actions"])
    unknown = sorted(listed - routed - blob - linked)
    assert not unknown, f"listed, but azsim never authorises them (so no test can prove them): {unknown}"


def test_the_readme_lists_the_roles() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert README_BEGIN in readme and README_END in readme
    start = readme.index(README_BEGIN)
    shown = readme[start : readme.index(README_END, start) + len(README_END)]
    expected = readme_roles(load_actions())
    assert shown == expected, (
        "README is stale: run `python -m tests.e2e.least_privilege` and paste its output"
    )
