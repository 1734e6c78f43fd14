"""Retention and sharing end to end (devhost + azsim + Azurite, real SDKs): the retain and share stages.

Specialized captures leave the VM as it is, so one VM is captured again and again into one definition.
Each test ends with the secret scan of the ``make_stack`` fixture (tests/e2e/conftest.py).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from azure.core.rest import HttpRequest
from azure.mgmt.compute.models import GalleryImageVersionUpdate

from azsim.authz.role_assignments import principal_not_found
from shared.release_spec import KNOWN_ROLES, READER_ROLE, assignment_name
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

REGIONS = [{"name": "westeurope"}]
FAST_REPLICATION = {"replication_mb_per_s": 400}
RG, GALLERY = "rg-images", "galContoso"
# The world's group principal (examples/world.json).
CONSUMERS = "4e9bc235-54f2-58f2-a18c-f29263f4fb63"
READER = KNOWN_ROLES[READER_ROLE]


def _body(stack: Stack, definition: str, **overrides: Any) -> dict[str, Any]:
    body = stack.request(
        "vm-web",
        export=False,
        targetRegions=REGIONS,
        captureMode="specialized",
        version="auto",
        imageDefinition={
            "name": definition,
            "publisher": "contoso",
            "offer": "web",
            "sku": definition,
            "createIfMissing": True,
        },
        **overrides,
    )
    del body["prepare"]
    return body


def _capture(stack: Stack, definition: str, **overrides: Any) -> dict[str, Any]:
    status = stack.run(_body(stack, definition, **overrides), timeout=240)
    assert status["runtimeStatus"] == "Completed", status.get("error")
    return status


def _names(stack: Stack, definition: str) -> set[str]:
    return {
        v.name for v in stack.compute().gallery_image_versions.list_by_gallery_image(RG, GALLERY, definition)
    }


def _stage(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in status["stages"] if s["name"] == name)


def test_retention_deletes_the_oldest_beyond_keep_latest_and_keeps_a_protected_one(make_stack: Any) -> None:
    stack = make_stack(latency=FAST_REPLICATION)
    # Every invalid release field at once; a date and a number of days exclude each other.
    code, answer, _ = stack.post(
        {
            **stack.request("vm-web", export=False),
            "endOfLifeDate": "2999-01-01",
            "retention": {"keepLatest": 0, "endOfLifeDays": 30},
            "share": {"principals": [{"principalId": "someone@contoso.com", "principalType": "Robot"}]},
        }
    )
    fields = {e["field"] for e in answer["errors"]}
    assert (
        code == 400
        and {
            "retention.keepLatest",
            "retention.endOfLifeDays",
            "share.principals[0].principalId",
            "share.principals[0].principalType",
        }
        <= fields
    ), answer

    definition = "web-retain"
    plain = [_capture(stack, definition) for _ in range(3)]
    first = [s["result"]["imageVersionId"] for s in plain]
    assert _stage(plain[-1], "retain")["state"] == "skipped" and "retention" not in plain[-1]["result"]

    fourth = _capture(stack, definition, retention={"keepLatest": 2, "endOfLifeDays": 30})
    new = fourth["result"]["imageVersionId"]
    report = fourth["result"]["retention"]
    assert report["deleted"] == first[:2], report  # the oldest two, oldest first
    assert {k["versionId"] for k in report["kept"]} == {first[2], new}, report
    assert _names(stack, definition) == {first[2].rsplit("/", 1)[1], new.rsplit("/", 1)[1]}
    assert _stage(fourth, "retain")["state"] == "succeeded" and fourth["retention"] == report
    # endOfLifeDays: the run's start (the orchestrator's clock) plus 30 days.
    version = stack.compute().gallery_image_versions.get(RG, GALLERY, definition, new.rsplit("/", 1)[1])
    started = datetime.fromisoformat(_stage(fourth, "preflight")["started"].replace("Z", "+00:00"))
    eol = version.publishing_profile.end_of_life_date
    assert eol == (started + timedelta(days=30)).replace(microsecond=0), (eol, started)

    # The owner protects the third version's replicas: retention leaves it although it is beyond the count.
    protected = first[2].rsplit("/", 1)[1]
    stack.compute().gallery_image_versions.begin_update(
        RG,
        GALLERY,
        definition,
        protected,
        GalleryImageVersionUpdate(
            {"properties": {"safetyProfile": {"allowDeletionOfReplicatedLocations": False}}}
        ),
    ).result()
    fifth = _capture(stack, definition, retention={"keepLatest": 1})
    report = fifth["result"]["retention"]
    assert report["deleted"] == [new], report
    reasons = {k["versionId"]: k["reason"] for k in report["kept"]}
    assert "allowDeletionOfReplicatedLocations is false" in reasons[first[2]], reasons
    assert _names(stack, definition) == {protected, fifth["result"]["imageVersion"]}


def _role_assignment_puts(stack: Stack) -> list[dict[str, Any]]:
    return [
        r
        for r in stack.sim("requests")["value"]
        if r["method"] == "PUT" and "/Microsoft.Authorization/roleAssignments/" in r["path"]
    ]


def test_share_waits_out_principal_not_found_reruns_find_the_assignment_and_an_unknown_principal_fails(
    make_stack: Any,
) -> None:
    # A principal just created: the directory answers PrincipalNotFound twice (Azure's text, from azsim).
    replication = principal_not_found(CONSUMERS, "(tenant)")
    faults = {
        "rules": [
            {
                "name": "principal-replication",
                "match": {"action": "Microsoft.Authorization/roleAssignments/write"},
                "effect": {
                    "type": "status",
                    "status": 400,
                    "code": replication.code,
                    "message": replication.message,
                },
                "count": 2,
            }
        ]
    }
    stack = make_stack(latency=FAST_REPLICATION, faults=faults, env={"SHARE_PRINCIPAL_WAIT_SECONDS": "20"})
    share = {"share": {"principals": [{"principalId": CONSUMERS, "principalType": "Group"}]}}
    gallery_id = (
        f"/subscriptions/{stack.cloud.subscription_id}/resourceGroups/{RG}/providers/Microsoft.Compute/galleries/"
        f"{GALLERY}"
    )
    name = assignment_name(gallery_id, CONSUMERS, READER)

    status = _capture(stack, "web-share", **share)
    [granted] = status["result"]["shared"]
    assert granted["state"] == "created" and granted["principalNotFound"] == 2, granted
    assert (
        granted["assignmentId"].lower().endswith(f"/providers/microsoft.authorization/roleassignments/{name}")
    )
    puts = _role_assignment_puts(stack)
    assert [p["error_code"] for p in puts] == ["PrincipalNotFound", "PrincipalNotFound", None], puts
    # The assignment is in ARM, as the pipeline named it, and grants the reader role to the group.
    url = f"{gallery_id}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version=2022-04-01"
    got = stack.compute().send_request(HttpRequest("GET", url))
    assert got.status_code == 200, got.text()
    props = got.json()["properties"]
    assert props["principalId"] == CONSUMERS and props["roleDefinitionId"].endswith(READER)

    # A re-run meets its own assignment: success, no new PUT.
    again = _capture(stack, "web-share", **share)
    assert [s["state"] for s in again["result"]["shared"]] == ["existed"]
    assert len(_role_assignment_puts(stack)) == 3

    # A principal that never appears: Failed with Azure's code and advice, the version still usable.
    stranger = str(uuid.uuid4())
    unknown = {"principals": [{"principalId": stranger, "principalType": "ServicePrincipal"}]}
    failed = stack.run(_body(stack, "web-share", share=unknown), timeout=240)
    assert failed["runtimeStatus"] == "Failed", failed
    error = failed["error"]
    assert (error["step"], error["code"], error["azureCode"]) == (
        "share",
        "PrincipalNotFound",
        "PrincipalNotFound",
    )
    assert f"Principal {stranger} does not exist in the directory" in error["message"], error
    assert "object id" in error["advice"] and "SHARE_PRINCIPAL_WAIT_SECONDS" in error["advice"], error
    assert failed["imageVersionState"] == "completed" and _stage(failed, "share")["state"] == "failed"
