"""The janitor's rules without Azure: what it may do to a leftover, its settings, its dry run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from activities.janitor import clean_leftover
from shared.ids import capture_instance_id, new_run_id
from shared.janitor import CleanInput, CleanResult, Leftover, capture_id_of, plan, run_started
from shared.settings import JANITOR_DEFAULT_SCHEDULE, JanitorSettings, janitor_schedule
from triggers.janitor import _delete_snapshots, _subscriptions_of

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
VM = "/subscriptions/s1/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/vm-a"
CAPTURE = capture_instance_id(VM)
RUN = new_run_id(CAPTURE, NOW - timedelta(hours=5))
SNAP = "/subscriptions/s1/resourceGroups/rg-build/providers/Microsoft.Compute/snapshots/" + RUN + "-os"
VERSION = "/subscriptions/s1/resourceGroups/rg-images/providers/Microsoft.Compute/galleries/g/images/d/versions/1.0.0"
GRACE, STUCK = timedelta(hours=2), timedelta(hours=24)


def _lo(kind: str = "snapshot", state: str = "Succeeded", **kw: object) -> Leftover:
    rid = SNAP if kind == "snapshot" else VERSION
    return Leftover.model_validate(
        {"kind": kind, "resource_id": rid, "run_id": RUN, "provisioning_state": state, **kw}
    )


def _plan(lo: Leftover, *, owned: bool = False, now: datetime = NOW) -> list[str]:
    return list(plan(lo, owned=owned, now=now, grace=GRACE, stuck_creating=STUCK).actions)


def test_run_ids_give_the_capture_instance_and_start() -> None:
    assert capture_id_of(RUN, None) == CAPTURE and capture_id_of(RUN, CAPTURE) == CAPTURE
    assert run_started(RUN) == (NOW - timedelta(hours=5)).replace(microsecond=0)
    assert capture_id_of(CAPTURE, None) == CAPTURE  # runs from before run ids: run id == capture id
    assert run_started(CAPTURE) is None


def test_orphaned_snapshot_is_revoked_then_deleted() -> None:
    assert _plan(_lo(active_access=True)) == ["revokeAccess", "deleteSnapshot"]
    assert _plan(_lo(active_access=False)) == ["deleteSnapshot"]
    assert _plan(_lo(state="Deleting")) == []


def test_kept_snapshots_stay_and_only_lose_their_access() -> None:
    for flag, reason in ((False, "kept by its request"), (None, "its request is unknown")):
        exposed = plan(
            _lo(active_access=True),
            owned=False,
            now=NOW,
            grace=GRACE,
            stuck_creating=STUCK,
            delete_snapshots=flag,
        )
        assert exposed.actions == ["revokeAccess"]
        quiet = plan(_lo(), owned=False, now=NOW, grace=GRACE, stuck_creating=STUCK, delete_snapshots=flag)
        assert quiet.actions == [] and quiet.keep_reason == reason
    assert _delete_snapshots({"runId": RUN, "request": {"deleteSnapshots": False}}) is False
    assert _delete_snapshots('{"request": {"sourceVmId": "x"}}') is True  # the request's default
    assert (
        _delete_snapshots({"request": {"deleteSnapshots": "0"}}) is None and _delete_snapshots(None) is None
    )


def test_never_an_owned_or_young_resource() -> None:
    assert _plan(_lo(active_access=True), owned=True) == []
    young = _lo(created=NOW - timedelta(minutes=30))
    assert _plan(young) == []
    # age counts from the later of creation and the run start: an old timeCreated does not make it old
    assert _plan(_lo(created=NOW - timedelta(days=30)), now=NOW - timedelta(hours=4)) == []
    kept = plan(young, owned=False, now=NOW, grace=GRACE, stuck_creating=STUCK)
    assert kept.keep_reason == "younger than the grace period"


def test_versions_only_failed_or_stuck_creating_never_succeeded() -> None:
    assert _plan(_lo("imageVersion", "Failed")) == ["deleteVersion"]
    assert _plan(_lo("imageVersion", "Succeeded")) == []
    assert _plan(_lo("imageVersion", "Creating")) == []  # 5 h: not yet stuck
    assert _plan(_lo("imageVersion", "Creating"), now=NOW + timedelta(days=2)) == ["deleteVersion"]
    assert _plan(_lo("imageVersion", "Failed"), owned=True) == []


def test_dry_run_reports_without_calling_azure() -> None:
    payload = CleanInput(
        leftover=_lo(active_access=True), actions=["revokeAccess", "deleteSnapshot"], dry_run=True
    )
    out = CleanResult.from_wire(clean_leftover(payload.to_wire()))
    assert [(r.action, r.done) for r in out.results] == [("revokeAccess", False), ("deleteSnapshot", False)]
    assert all(r.detail.startswith("dry run: would have") for r in out.results)


def test_settings() -> None:
    s = JanitorSettings.from_env({})
    assert s.schedule == JANITOR_DEFAULT_SCHEDULE == janitor_schedule({}) and s.grace_seconds == 7200
    assert s.dry_run is False and s.scopes == ()
    s = JanitorSettings.from_env(
        {
            "JANITOR_SCHEDULE": "0 */5 * * * *",
            "JANITOR_DRY_RUN": "true",
            "JANITOR_GRACE_SECONDS": "0",
            "JANITOR_SCOPES": "/subscriptions/s1, /subscriptions/s2/resourceGroups/rg-x/",
        }
    )
    assert s.schedule == "0 */5 * * * *" and s.dry_run and s.grace_seconds == 0
    assert s.scopes == ("/subscriptions/s1", "/subscriptions/s2/resourceGroups/rg-x")
    with pytest.raises(ValueError, match="JANITOR_SCOPES has 'rg-x'"):
        JanitorSettings.from_env({"JANITOR_SCOPES": "rg-x"})
    with pytest.raises(ValueError, match="JANITOR_DRY_RUN"):
        JanitorSettings.from_env({"JANITOR_DRY_RUN": "yes please"})
    with pytest.raises(ValueError, match="JANITOR_GRACE_SECONDS"):
        JanitorSettings.from_env({"JANITOR_GRACE_SECONDS": "-1"})


def test_scope_from_a_capture_input() -> None:
    raw = {
        "captureId": CAPTURE,
        "runId": RUN,
        "request": {"sourceVmId": VM, "gallery": {"subscriptionId": "s9"}},
    }
    assert _subscriptions_of(raw) == {"s1", "s9"}
    assert _subscriptions_of('{"request": {"sourceVmId": "nonsense"}}') == set()
    assert _subscriptions_of(None) == set()


def test_the_summary_line_is_bounded() -> None:
    from shared.janitor import ActionResult, JanitorReport
    from triggers.janitor import SUMMARY_ITEMS, summary_of

    action = ActionResult(resource_id=SNAP, run_id=RUN, action="deleteSnapshot", done=True, detail="deleted")
    report = JanitorReport(
        dry_run=False, scanned=["/subscriptions/s1"], actions=[action] * 250, kept={}, errors=[]
    )
    out = summary_of(report, past_due=False)
    assert len(out["actions"]) == SUMMARY_ITEMS and out["actionsOmitted"] == 150 and out["done"] == 250
    assert "scannedOmitted" not in out


@pytest.mark.parametrize(
    ("kind", "action"),
    [("virtualMachine", "deleteVm"), ("networkInterface", "deleteNic"), ("disk", "deleteDisk")],
)
def test_machines_of_a_finished_run_are_deleted_unless_attached_or_deleting(kind: str, action: str) -> None:
    lo = _lo(kind)
    assert _plan(lo) == [action]
    assert _plan(lo, owned=True) == []  # a run still active keeps its VMs, NICs and disks
    # younger than the grace period (its run started 1 h before)
    assert _plan(lo, now=NOW - timedelta(hours=4)) == []
    assert _plan(_lo(kind, created=NOW - timedelta(minutes=5))) == []  # made recently: age counts from then
    assert _plan(_lo(kind, "Deleting")) == []
    attached = _lo(kind, attached_to=VM)
    p = plan(attached, owned=False, now=NOW, grace=GRACE, stuck_creating=STUCK)
    if kind == "virtualMachine":
        assert p.actions == [action]  # a VM's attachments are not its own: only NICs and disks wait
    else:
        assert (p.actions, p.keep_reason) == ([], "still attached to a VM")
