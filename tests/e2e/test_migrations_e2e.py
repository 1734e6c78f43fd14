"""The migration of a resource group's managed images end to end (devhost + azsim + Azurite, real SDKs).

``rg-legacy-images`` (examples/world.json) holds img-linux-gen2 (with a data disk), img-windows-gen1 and
legacy-web, a Gen2 image whose name is an existing Gen1 definition of galLegacy: that one is reported
failed with advice, the other two end Completed in every target region. Each test ends with the secret
scan of the ``make_stack`` fixture (tests/e2e/conftest.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.http import http
from tests.support.stack import Stack
from tests.support.worlds import WORLD

pytestmark = pytest.mark.e2e

REGIONS = [{"name": "westeurope"}, {"name": "eastus2"}, {"name": "northeurope"}]
MIGRATED = ("img-linux-gen2", "img-windows-gen1")
# ~190 GiB of images: replicate faster than Azure's ~40 MB/s so the tests stay short.
FAST_REPLICATION = {"replication_mb_per_s": 400}
# Slow enough that the captures are still replicating when the test re-posts or cancels.
SLOW_REPLICATION = {"replication_mb_per_s": 10}


def _body(stack: Stack, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "scope": f"/subscriptions/{stack.cloud.subscription_id}/resourceGroups/rg-legacy-images",
        "gallery": {"resourceGroup": "rg-images", "name": "galLegacy"},
        "targetRegions": REGIONS,
        "tags": {"ci-run": "e2e"},
    }
    body.update(overrides)
    return body


def _post(stack: Stack, body: Any) -> tuple[int, Any]:
    code, answer, _ = http("POST", stack.devhost.url("/api/migrations"), body)
    stack.seen.append(json.dumps(answer))
    return code, answer


def _status(stack: Stack, mid: str) -> dict[str, Any]:
    code, body, _ = http("GET", stack.devhost.url(f"/api/migrations/{mid}"))
    stack.seen.append(json.dumps(body))
    assert code == 200, body
    return dict(body)


def _wait(stack: Stack, mid: str, until: Any = None, timeout: float = 240.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = _status(stack, mid)
        if (until is None and last["runtimeStatus"] in ("Completed", "Failed", "Terminated")) or (
            until is not None and until(last)
        ):
            return last
        time.sleep(0.5)
    raise AssertionError(
        f"migration {mid}: {json.dumps(last, indent=1)[:4000]}\n{stack.devhost.log_tail(60)}"
    )


def _by_name(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in status["images"]}


def _version_puts(stack: Stack) -> list[str]:
    return [
        r["path"].split("/images/")[1].split("/")[0]
        for r in stack.sim("requests")["value"]
        if r["method"] == "PUT" and "/galleries/galLegacy/images/" in r["path"] and "/versions/" in r["path"]
    ]


def _regions(stack: Stack, definition: str, version: str) -> dict[str, str]:
    v = stack.compute().gallery_image_versions.get(
        "rg-images", "galLegacy", definition, version, expand="ReplicationStatus"
    )
    return {
        s.region.replace(" ", "").lower(): str(getattr(s.state, "value", s.state))
        for s in v.replication_status.summary or []
    }


def _managed_images(stack: Stack) -> set[str]:
    return {i.name for i in stack.compute().images.list_by_resource_group("rg-legacy-images")}


def _assert_migrated(stack: Stack, status: dict[str, Any]) -> None:
    images = _by_name(status)
    for name in MIGRATED:
        entry = images[name]
        assert entry["state"] == "completed", entry
        assert entry["definition"] == name and entry["version"], entry
        assert set(entry["regions"]) == {r["name"] for r in REGIONS}, entry
        assert _regions(stack, name, entry["version"]) == dict.fromkeys(entry["regions"], "Completed")
    clash = images["legacy-web"]
    assert clash["state"] == "failed", clash
    error = clash["error"]
    assert "V1" in error["message"] and "V2" in error["message"] and error["advice"], error


def test_a_resource_group_is_migrated_and_the_clash_reported_with_advice(make_stack: Any) -> None:
    stack = make_stack(latency=FAST_REPLICATION)
    code, answer = _post(stack, _body(stack))
    assert code == 202, answer
    assert answer["id"].startswith("migration-rg-legacy-images-") and answer["resumed"] is False
    status = _wait(stack, answer["id"])
    assert (status["runtimeStatus"], status["state"]) == ("Completed", "completedWithFailures"), status
    counts = status["counts"]
    assert (counts["total"], counts["done"], counts["failed"], counts["running"], counts["pending"]) == (
        3,
        2,
        1,
        0,
        0,
    )
    _assert_migrated(stack, status)
    # Each image's capture is a capture of its own, readable through the captures API.
    entry = _by_name(status)["img-linux-gen2"]
    code, capture = stack.status(entry["captureId"])
    assert code == 200 and capture["runtimeStatus"] == "Completed", capture
    # One version per migrated image; nothing deleted (deleteSourceAfter defaults to "never").
    assert sorted(_version_puts(stack)) == sorted(MIGRATED)
    assert _managed_images(stack) == {*MIGRATED, "legacy-web"}


def test_reposting_resumes_the_same_migration_without_duplicate_versions(make_stack: Any) -> None:
    stack = make_stack(latency=SLOW_REPLICATION)
    code, first = _post(stack, _body(stack))
    assert code == 202, first
    mid = first["id"]
    _wait(stack, mid, until=lambda s: s["counts"]["running"] >= 1 and len(_version_puts(stack)) >= 1)
    # Mid-way: the same migration, running: nothing new is started.
    code, again = _post(stack, _body(stack))
    assert (code, again["id"]) == (200, mid), again
    # The same migration with other options while it runs: refused, naming them.
    code, other = _post(stack, _body(stack, deleteSourceAfter="verified"))
    assert code == 409 and other["error"]["code"] == "MigrationRunning", other
    assert "deleteSourceAfter" in other["error"]["message"]
    status = _wait(stack, mid, timeout=400)
    _assert_migrated(stack, status)
    assert sorted(_version_puts(stack)) == sorted(MIGRATED)
    # After the end: the next run re-tries the failed image only (the completed ones are not captured again).
    code, rerun = _post(stack, _body(stack))
    assert (code, rerun["id"], rerun["resumed"], rerun["earlierCompleted"]) == (202, mid, True, 2), rerun
    assert rerun["runId"] != first["runId"]
    status = _wait(
        stack, mid, until=lambda s: s["runId"] == rerun["runId"] and s["runtimeStatus"] == "Completed"
    )
    images = _by_name(status)
    assert all(images[n]["earlierRun"] == first["runId"] for n in MIGRATED), images
    assert images["legacy-web"]["state"] == "failed"
    assert sorted(_version_puts(stack)) == sorted(MIGRATED)


def _world_with_image_delete(tmp_path: Path) -> Path:
    """The example world, with the app allowed to delete the managed images of rg-legacy-images."""
    world = json.loads(WORLD.read_text(encoding="utf-8"))
    scope = next(a["scope"] for a in world["roleAssignments"] if a["scope"].endswith("/rg-legacy-images"))
    world["roleAssignments"].append(
        {"principal": "id-image-pipeline", "roleDefinitionName": "Contributor", "scope": scope}
    )
    path = tmp_path / "world-delete.json"
    path.write_text(json.dumps(world), encoding="utf-8")
    return path


def test_verified_sources_are_deleted_and_the_failed_one_kept(make_stack: Any, tmp_path: Path) -> None:
    stack = make_stack(latency=FAST_REPLICATION, world=_world_with_image_delete(tmp_path))
    code, answer = _post(stack, _body(stack, deleteSourceAfter="verified"))
    assert code == 202, answer
    status = _wait(stack, answer["id"])
    _assert_migrated(stack, status)
    images = _by_name(status)
    for name in MIGRATED:
        assert images[name]["sourceDeleted"] is True, images[name]
    assert images["legacy-web"].get("sourceDeleted") is False
    assert status["counts"]["sourcesDeleted"] == 2
    assert _managed_images(stack) == {"legacy-web"}
    # The versions do not depend on the deleted images.
    for name in MIGRATED:
        assert set(_regions(stack, name, images[name]["version"]).values()) == {"Completed"}


def test_cancel_stops_the_migration_and_deletes_no_source(make_stack: Any, tmp_path: Path) -> None:
    stack = make_stack(latency=SLOW_REPLICATION, world=_world_with_image_delete(tmp_path))
    code, answer = _post(stack, _body(stack, deleteSourceAfter="verified"))
    assert code == 202, answer
    mid = answer["id"]
    _wait(stack, mid, until=lambda s: s["counts"]["running"] >= 2)
    code, canceled, _ = http("POST", stack.devhost.url(f"/api/migrations/{mid}/cancel"), {"reason": "e2e"})
    stack.seen.append(json.dumps(canceled))
    assert code == 202, canceled
    status = _wait(stack, mid)
    assert (status["runtimeStatus"], status["state"], status["cancelRequested"]) == (
        "Completed",
        "canceled",
        True,
    )
    assert status["counts"]["canceled"] >= 2 and status["counts"]["running"] == 0, status["counts"]
    for entry in status["images"]:
        assert entry["state"] in ("canceled", "failed"), entry
        assert not entry.get("sourceDeleted"), entry
    assert _managed_images(stack) == {*MIGRATED, "legacy-web"}
    code, late, _ = http("POST", stack.devhost.url(f"/api/migrations/{mid}/cancel"))
    assert code == 409 and late["error"]["code"] == "MigrationAlreadyFinished", late


def test_bad_requests_get_every_field_and_unknown_ids_404(stack: Stack) -> None:
    code, answer = _post(stack, {"scope": "rg", "gallery": {"name": "x y"}, "deleteSourceAfter": "now"})
    assert code == 400, answer
    assert {e["field"] for e in answer["errors"]} == {
        "scope",
        "gallery.resourceGroup",
        "gallery.name",
        "deleteSourceAfter",
    }, answer
    for path in ("/api/migrations/migration-none-0", "/api/migrations/capture-x"):
        code, body, _ = http("GET", stack.devhost.url(path))
        assert code == 404 and body["error"]["code"] == "MigrationNotFound", body
