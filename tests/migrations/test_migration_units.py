"""The migration request's validation, its deterministic ids, and the pure plan (no stack)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrators.migration.children import why_kept
from orchestrators.migration.plan import batches, plan_images, shares
from shared.ids import is_capture_id
from shared.migration_status import (
    BATCH_SIZE,
    ImageEntry,
    ManagedImageFacts,
    MigrationInput,
    count,
    final_state,
)
from shared.migrations import (
    MigrationRequest,
    changed_options,
    child_capture_id,
    is_migration_id,
    migration_instance_id,
    render_definition_name,
    validate_migration,
)
from shared.requests import validate_request

SUB = "89d0a3c1-7028-549c-b21b-dc72b5b9bb42"
RG_SCOPE = f"/subscriptions/{SUB}/resourceGroups/rg-legacy-images"


def body(**overrides: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "scope": RG_SCOPE,
        "gallery": {"resourceGroup": "rg-images", "name": "galLegacy"},
        "targetRegions": [{"name": "westeurope"}, {"name": "eastus2"}],
    }
    out.update(overrides)
    return out


def request(**overrides: Any) -> MigrationRequest:
    req, errors = validate_migration(body(**overrides))
    assert req is not None, errors
    return req


def test_defaults_name_each_definition_after_its_image_and_keep_the_sources() -> None:
    req = request()
    assert (req.definition_name, req.delete_source_after, req.version) == ("{image}", "never", "auto")
    assert (req.subscription_id, req.resource_group, req.gallery_subscription_id) == (
        SUB,
        "rg-legacy-images",
        SUB,
    )
    assert render_definition_name("legacy-{resourceGroup}-{image}", "img1", "rg-a") == "legacy-rg-a-img1"


def test_every_invalid_field_is_named_at_once() -> None:
    req, errors = validate_migration(
        {
            "scope": "/subscriptions/not-a-guid/resourceGroups/rg.",
            "gallery": {"resourceGroup": "rg-images", "name": "bad name"},
            "definitionName": "{imag}-x",
            "deleteSourceAfter": "always",
            "version": "1.0",
            "publisher": "has space",
            "targetRegions": [{"name": "westeurope"}, {"name": "westeurope"}],
            "surprise": 1,
        }
    )
    assert req is None
    fields = {e.field for e in errors}
    assert fields == {
        "scope",
        "gallery.name",
        "definitionName",
        "deleteSourceAfter",
        "version",
        "publisher",
        "targetRegions",
        "surprise",
    }, errors


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{resourceGroup}", "{image}"),
        ("img {image}", "letters, digits"),
        ("{image}{", "letters, digits"),
        ("{vm}", "unknown placeholder"),
    ],
)
def test_naming_rules_that_cannot_give_one_definition_per_image_are_refused(template: str, why: str) -> None:
    _, errors = validate_migration(body(definitionName=template))
    assert [e.field for e in errors] == ["definitionName"] and why in errors[0].message, errors


def test_a_scope_is_a_subscription_or_a_resource_group() -> None:
    assert request(scope=f"/subscriptions/{SUB}/").scope == f"/subscriptions/{SUB}"
    for bad in (f"/subscriptions/{SUB}/resourceGroups/rg/providers/x", "rg-legacy-images", ""):
        _, errors = validate_migration(body(scope=bad))
        assert [e.field for e in errors] == ["scope"], (bad, errors)


def test_the_migration_id_is_what_moves_where_and_not_its_options() -> None:
    base = migration_instance_id(request())
    assert is_migration_id(base) and base.startswith("migration-rg-legacy-images-")
    # Case of ids and names does not matter to Azure, nor to the id; options do not change it either.
    same = request(
        scope=RG_SCOPE.upper().replace("SUBSCRIPTIONS", "subscriptions"),
        gallery={"resourceGroup": "RG-IMAGES", "name": "gallegacy"},
        deleteSourceAfter="verified",
        targetRegions=[{"name": "northeurope"}],
    )
    assert migration_instance_id(same) == base
    for other in (
        request(definitionName="old-{image}"),
        request(gallery={"resourceGroup": "rg-images", "name": "galOther"}),
        request(version="2.0.0"),
        request(scope=f"/subscriptions/{SUB}"),
    ):
        assert migration_instance_id(other) != base
    assert migration_instance_id(request(scope=f"/subscriptions/{SUB}")).startswith("migration-sub-89d0a3c1-")
    assert changed_options(request().to_wire(), same) == ["targetRegions", "deleteSourceAfter"]
    assert changed_options(request().to_wire(), request()) == []


def test_child_capture_ids_are_the_capture_ids_of_the_images() -> None:
    image = f"{RG_SCOPE}/providers/Microsoft.Compute/images/img-linux-gen2"
    cid = child_capture_id(image)
    assert is_capture_id(cid) and cid.startswith("capture-img-linux-gen2-")
    assert child_capture_id(image.upper().replace("SUBSCRIPTIONS", "subscriptions")) == cid
    assert child_capture_id(image + "2") != cid
    # A direct capture of the same image has the same id: one capture of an image at a time.
    direct, _ = validate_request(
        {
            "source": {"managedImageId": image},
            "gallery": {"resourceGroup": "rg-images", "name": "galLegacy"},
            "imageDefinition": {"name": "d", "publisher": "p", "offer": "o", "sku": "s"},
        }
    )
    assert direct is not None and direct.capture_id == cid


def _facts(name: str, rg: str = "rg-legacy-images", state: str = "Succeeded") -> ManagedImageFacts:
    return ManagedImageFacts(
        id=f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/images/{name}",
        name=name,
        resource_group=rg,
        location="westeurope",
        provisioning_state=state,
    )


def _input(req: MigrationRequest, earlier: list[ImageEntry] | None = None) -> MigrationInput:
    mid = migration_instance_id(req)
    return MigrationInput(
        migration_id=mid, run_id=f"{mid}-20261201000000", request=req, earlier=earlier or []
    )


def test_the_plan_refuses_shared_and_invalid_definitions_and_images_not_ready() -> None:
    req = request(scope=f"/subscriptions/{SUB}")
    images = [
        _facts("web", "rg-a"),
        _facts("web", "rg-b"),
        _facts("db"),
        _facts("x" * 81),
        _facts("new", state="Creating"),
    ]
    plan = {(e.resource_group, e.name): e for e in plan_images(_input(req), images)}
    assert plan["rg-a", "web"].error and plan["rg-a", "web"].error.code == "DefinitionNameTaken"
    refused = plan["rg-b", "web"].error
    assert plan["rg-b", "web"].state == "failed" and refused is not None
    assert "{resourceGroup}" in (refused.advice or "")
    assert plan["rg-legacy-images", "x" * 81].error.code == "InvalidDefinitionName"  # type: ignore[union-attr]
    assert plan["rg-legacy-images", "new"].error.code == "ImageNotReady"  # type: ignore[union-attr]
    assert (
        plan["rg-legacy-images", "db"].state == "pending"
        and plan["rg-legacy-images", "db"].definition == "db"
    )
    # With {resourceGroup} in the rule, the two images get definitions of their own.
    req = request(scope=f"/subscriptions/{SUB}", definitionName="{resourceGroup}-{image}")
    states = [e.state for e in plan_images(_input(req), images[:2])]
    assert states == ["pending", "pending"]


def test_images_completed_by_an_earlier_run_are_not_planned_again() -> None:
    req = request()
    done = ImageEntry(
        image_id=_facts("a").id,
        name="a",
        resource_group="rg-legacy-images",
        definition="a",
        state="completed",
    )
    gone = done.model_copy(
        update={"image_id": _facts("deleted").id, "name": "deleted", "source_deleted": True}
    )
    plan = plan_images(_input(req, [done, gone]), [_facts("a"), _facts("b")])
    assert [(e.name, e.state) for e in plan] == [
        ("a", "completed"),
        ("b", "pending"),
        ("deleted", "completed"),
    ]
    assert [e.name for b in batches(plan) for e in b] == ["b"]


def test_batches_and_shares_keep_at_most_max_parallel_captures_running() -> None:
    req = request()
    plan = plan_images(_input(req), [_facts(f"img{i:03}") for i in range(200)])
    groups = batches(plan)
    assert [len(g) for g in groups] == [BATCH_SIZE] * 5 + [BATCH_SIZE - 1] * 8
    assert all(e.batch == k for k, g in enumerate(groups) for e in g)
    sizes = [len(g) for g in groups]
    assert shares(8, sizes) == [1] * 8
    assert shares(200, sizes) == sizes
    assert sum(shares(50, sizes)) == 50 and len(shares(50, sizes)) == 13
    assert shares(8, [3]) == [3]


def test_a_source_is_deleted_only_when_completed_in_every_region_and_booted_when_tested() -> None:
    req = request()
    entry = ImageEntry(
        image_id=_facts("a").id,
        name="a",
        resource_group="rg",
        definition="a",
        state="completed",
        regions={"westeurope": "Completed", "eastus2": "Completed"},
    )
    assert why_kept(entry, req) is None
    assert "eastus2" in (
        why_kept(entry.model_copy(update={"regions": {"westeurope": "Completed"}}), req) or ""
    )
    replicating = {"westeurope": "Completed", "eastus2": "Replicating"}
    assert why_kept(entry.model_copy(update={"regions": replicating}), req)
    assert why_kept(entry.model_copy(update={"boot_test": "failed"}), req)
    assert why_kept(entry.model_copy(update={"boot_test": "passed"}), req) is None


def test_the_largest_images_start_first_dealt_over_the_batches() -> None:
    req = request()
    images = [_facts(f"img{i:02}").model_copy(update={"size_gib": 10 + i % 7}) for i in range(40)]
    groups = batches(plan_images(_input(req), images))
    assert len(groups) == 3
    # The k-th image to start (batch k % 3, its (k // 3)-th) is the k-th largest.
    order = [groups[k % 3][k // 3].size_gib for k in range(40)]
    assert order == sorted(order, reverse=True)


def test_counts_and_final_state() -> None:
    e = ImageEntry(image_id="i", name="a", resource_group="rg", definition="a")
    entries = [
        e.model_copy(update={"state": s}) for s in ("completed", "failed", "running", "pending", "canceled")
    ]
    c = count(entries)
    assert (c.total, c.done, c.failed, c.running, c.pending, c.canceled) == (5, 1, 1, 1, 1, 1)
    assert final_state(entries[:1], canceled=False) == "succeeded"
    assert final_state(entries[:2], canceled=False) == "completedWithFailures"
    assert final_state(entries[:2], canceled=True) == "canceled"
