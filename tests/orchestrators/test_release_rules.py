"""Retention's rules (which versions go), the release request parts and their settings: pure functions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.permissions import CapturePlanNeeds, capture_features, plan_requirements
from shared.release_spec import (
    KNOWN_ROLES,
    READER_ROLE,
    ReleaseDefaults,
    RoleAssignmentInput,
    VersionFacts,
    assignment_name,
    role_guid,
)
from shared.requests import validate_request
from shared.retention_rules import newest_first, retention_plan
from shared.settings import Settings
from tests.triggers.intake_support import valid_request

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DEF = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/d/versions/"


def _v(name: str, published: str | None = "2026-11-01T00:00:00Z", **over: Any) -> VersionFacts:
    fields: dict[str, Any] = {
        "version_id": DEF + name,
        "name": name,
        "published_date": published,
        "provisioning_state": "Succeeded",
        "region_states": {"westeurope": "Completed", "eastus2": "Completed"},
    }
    fields.update(over)
    return VersionFacts(**fields)


def _plan(versions: list[VersionFacts], keep: int, current: str) -> tuple[list[str], dict[str, str]]:
    doomed, kept = retention_plan(versions, keep, DEF + current, NOW)
    return [d.rsplit("/", 1)[1] for d in doomed], {k.version_id.rsplit("/", 1)[1]: k.reason for k in kept}


def test_the_oldest_beyond_keep_latest_go_oldest_first() -> None:
    versions = [_v(f"1.0.{i}", f"2026-11-0{i + 1}T00:00:00Z") for i in range(4)]
    doomed, kept = _plan(versions, 2, "1.0.3")
    assert doomed == ["1.0.0", "1.0.1"]
    assert kept == {"1.0.3": "the version this capture made", "1.0.2": "among the 2 newest"}


def test_published_date_orders_and_the_version_number_breaks_ties() -> None:
    same = "2026-11-05T00:00:00Z"
    versions = [_v("2.0.0", "2026-11-01T00:00:00Z"), _v("1.0.9", same), _v("1.0.10", same)]
    assert [v.name for v in newest_first(versions)] == ["1.0.10", "1.0.9", "2.0.0"]
    assert _plan([*versions, _v("3.0.0", "2026-11-09T00:00:00Z")], 2, "3.0.0")[0] == ["2.0.0", "1.0.9"]


def test_the_new_version_is_never_deleted_even_when_its_date_is_oldest() -> None:
    versions = [_v("1.0.0", None), _v("1.0.1", "2026-11-02T00:00:00Z"), _v("1.0.2", "2026-11-03T00:00:00Z")]
    doomed, kept = _plan(versions, 1, "1.0.0")
    assert doomed == ["1.0.1", "1.0.2"] and list(kept) == ["1.0.0"]


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        (
            {"region_states": {"westeurope": "Completed", "eastus2": "Replicating"}},
            "still replicating to eastus2",
        ),
        ({"provisioning_state": "Updating"}, "still being created or updated"),
        ({"provisioning_state": "Failed"}, "provisioning state Failed"),
        (
            {"block_deletion_before_end_of_life": True, "end_of_life_date": "2027-01-01T00:00:00Z"},
            "blockDeletionBeforeEndOfLife is true",
        ),
        ({"block_deletion_before_end_of_life": True}, "blockDeletionBeforeEndOfLife is true"),
    ],
)
def test_a_protected_or_unfinished_version_is_kept_with_its_reason(over: dict[str, Any], reason: str) -> None:
    versions = [_v("1.0.0", "2026-11-01T00:00:00Z", **over), _v("1.0.1", "2026-11-02T00:00:00Z")]
    doomed, kept = _plan(versions, 1, "1.0.1")
    assert doomed == [] and reason in kept["1.0.0"], kept


def test_an_unusable_version_does_not_count_and_an_expired_block_does_not_protect() -> None:
    versions = [
        _v(
            "1.0.0",
            "2026-11-01T00:00:00Z",
            block_deletion_before_end_of_life=True,
            end_of_life_date="2026-11-30",
        ),
        _v("1.0.1", "2026-11-02T00:00:00Z"),
        _v(
            "1.0.2", "2026-11-03T00:00:00Z", provisioning_state="Creating"
        ),  # another capture's, still running
        _v("1.0.3", "2026-11-04T00:00:00Z"),
    ]
    doomed, kept = _plan(versions, 2, "1.0.3")
    # 1.0.2 is not usable: it neither counts nor goes; 1.0.1 is the second usable; 1.0.0's block expired.
    assert doomed == ["1.0.0"] and set(kept) == {"1.0.3", "1.0.2", "1.0.1"}


def test_allow_deletion_of_replicated_locations_false_does_not_protect_a_whole_version() -> None:
    versions = [
        _v("1.0.0", allow_deletion_of_replicated_locations=False),
        _v("1.0.1", "2026-11-09T00:00:00Z"),
    ]
    assert _plan(versions, 1, "1.0.1")[0] == ["1.0.0"]


def test_a_version_already_deleting_counts_as_deleted_on_a_retry() -> None:
    versions = [_v("1.0.0", provisioning_state="Deleting"), _v("1.0.1", "2026-11-09T00:00:00Z")]
    assert _plan(versions, 5, "1.0.1")[0] == ["1.0.0"]


def _errors(body: dict[str, Any]) -> dict[str, str]:
    request, errors = validate_request(body)
    assert request is None
    return {e.field: e.message for e in errors}


def test_every_invalid_release_field_is_named() -> None:
    errors = _errors(
        valid_request(
            endOfLifeDate="2999-01-01",
            retention={"keepLatest": 0, "endOfLifeDays": "30"},
            share={
                "principals": [
                    {"principalId": "alice@contoso.com", "principalType": "User"},
                    {"principalId": "4e9bc235-54f2-58f2-a18c-f29263f4fb63", "principalType": "Robot"},
                    {
                        "principalId": "4e9bc235-54f2-58f2-a18c-f29263f4fb63",
                        "principalType": "Group",
                        "role": "God",
                    },
                ]
            },
        )
    )
    assert {
        "retention.keepLatest",
        "retention.endOfLifeDays",
        "share.principals[0].principalId",
        "share.principals[1].principalType",
        "share.principals[2].role",
    } <= set(errors), errors
    assert "object id" in errors["share.principals[0].principalId"]
    both = _errors(valid_request(endOfLifeDate="2999-01-01", retention={"endOfLifeDays": 30}))
    assert "cannot go with endOfLifeDate" in both["retention.endOfLifeDays"]
    assert (
        "listed twice"
        in _errors(
            valid_request(
                share={"principals": [{"principalId": KNOWN_ROLES["Reader"], "principalType": "User"}] * 2}
            )
        )["share.principals"]
    )


def test_a_valid_release_request_and_its_roles() -> None:
    request, errors = validate_request(
        valid_request(
            retention={"keepLatest": 3, "endOfLifeDays": 90},
            share={
                "principals": [
                    {"principalId": "4E9BC235-54F2-58F2-A18C-F29263F4FB63", "principalType": "Group"},
                    {
                        "principalId": "b238e621-424b-5f06-bd00-d0f513770f55",
                        "principalType": "User",
                        "role": "reader",
                    },
                    {
                        "principalId": "b238e621-424b-5f06-bd00-d0f513770f55",
                        "principalType": "ServicePrincipal",
                        "role": "F58310D9-A9F6-439A-9E8D-F62E7B41A168",
                    },
                ]
            },
        )
    )
    assert not errors and request is not None and request.share is not None
    roles = [p.role_id for p in request.share.principals]
    assert roles == [KNOWN_ROLES[READER_ROLE], KNOWN_ROLES["Reader"], "f58310d9-a9f6-439a-9e8d-f62e7b41a168"]
    assert request.share.principals[0].principal_id == "4e9bc235-54f2-58f2-a18c-f29263f4fb63"
    assert role_guid("nobody") is None


def test_the_assignment_name_is_deterministic_and_tells_triples_apart() -> None:
    scope = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g"
    a = assignment_name(scope, "P", "R")
    assert a == assignment_name(scope.upper() + "/", "p", "r")
    assert len({a, assignment_name(scope, "P", "R2"), assignment_name(scope, "P2", "R")}) == 3
    inp = RoleAssignmentInput(
        scope=scope, principal_id="p", principal_type="User", role_definition_id=f"/x/roleDefinitions/{'R'}"
    )
    assert inp.assignment_name == assignment_name(scope, "p", "r")


def test_settings_fill_what_the_request_leaves_out() -> None:
    defaults = Settings.from_env(
        {
            "RETENTION_KEEP_LATEST": "5",
            "RETENTION_END_OF_LIFE_DAYS": "180",
            "SHARE_PRINCIPALS": '[{"principalId": "4e9bc235-54f2-58f2-a18c-f29263f4fb63", "principalType": "Group"}]',
        }
    ).release
    filled = defaults.fill({"retention": {"keepLatest": 2}})
    assert filled["retention"] == {"keepLatest": 2, "endOfLifeDays": 180}
    assert filled["share"]["principals"][0]["principalType"] == "Group"
    # An explicit date keeps the days out; an explicit share wins.
    own = defaults.fill({"endOfLifeDate": "2999-01-01", "share": {"principals": []}})
    assert own["retention"] == {"keepLatest": 5} and own["share"] == {"principals": []}
    assert ReleaseDefaults().fill({"a": 1}) == {"a": 1}
    for bad in (
        {"RETENTION_KEEP_LATEST": "0"},
        {"RETENTION_END_OF_LIFE_DAYS": "x"},
        {"SHARE_PRINCIPALS": "[{}]"},
    ):
        with pytest.raises(ValueError, match="setting"):
            Settings.from_env(bad)


def test_preflight_asks_for_the_release_actions_only_when_the_request_has_them() -> None:
    vm = "/subscriptions/s/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/vm-web"

    def actions(*, retention: bool = False, share: bool = False) -> dict[str, str | None]:
        return {
            a.action: a.builtin_role
            for r in plan_requirements(
                CapturePlanNeeds(
                    source_vm_id=vm,
                    gallery_group_id="/subscriptions/s/resourceGroups/rg-images",
                    retention=retention,
                    share=share,
                )
            )
            for a in r.required
            if r.scope.endswith("rg-images")
        }

    plain = actions()
    assert not any(a.startswith("Microsoft.Authorization/") for a in plain)
    shared = actions(share=True)
    assert (
        shared["Microsoft.Authorization/roleAssignments/write"] == "Role Based Access Control Administrator"
    )
    assert "Microsoft.Authorization/roleAssignments/read" in shared
    assert "Microsoft.Compute/galleries/images/versions/delete" in actions(retention=True)
    assert capture_features(retention=True, share=True)[-3:] == ("retention", "share", "cancel")
