"""The janitor's contracts and its one decision: what to do with a resource a capture run left behind.

The janitor (``triggers/janitor.py``) scans for resources tagged ``image-pipeline:run-id`` (snapshots,
image versions, and the VMs, NICs and disks of clones and boot tests; ``activities/janitor.py``,
``activities/janitor_vms.py``), asks the Durable client whether the run that made each one
still runs, and hands every resource to :func:`plan` with that answer. ``plan`` is pure, so the rules that
protect users are tested without Azure:

- a resource whose run is still active (or whose owner could not be read) is kept;
- a resource younger than the grace period is kept (its age counts from the later of its creation time
  and its run's start, so a clock-skewed ``timeCreated`` never makes it look older);
- a snapshot: an active export access (SAS) is revoked, then the snapshot is deleted — unless its run's
  request kept snapshots (``deleteSnapshots: false``) or that request can no longer be read (the capture
  instance was purged or holds a newer run): then only the access is revoked and the snapshot stays;
- a VM, network interface or managed disk (a clone's, a boot test's) is deleted, unless it is already
  deleting or, for a NIC or disk, still attached to a VM (``attached_to``): the VM's delete takes it along
  (``deleteOption: Delete``), or the next pass deletes it once the VM is gone;
- an image version is deleted only when ``provisioningState`` is ``Failed``, or ``Creating`` for longer
  than the stuck period; a ``Succeeded`` version (a finished image) is never deleted.
Exported VHD blobs are the user's output and are never scanned.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from shared.ids import made_by_run
from shared.model_base import WireModel

Kind = Literal["snapshot", "imageVersion", "virtualMachine", "networkInterface", "disk"]
Action = Literal["revokeAccess", "deleteSnapshot", "deleteVersion", "deleteVm", "deleteNic", "deleteDisk"]
MACHINE_KINDS: tuple[Kind, ...] = ("virtualMachine", "networkInterface", "disk")  # clone and boot-test VMs
_MACHINE_ACTION: dict[str, Action] = {
    "virtualMachine": "deleteVm",
    "networkInterface": "deleteNic",
    "disk": "deleteDisk",
}

_RUN_STAMP = "%Y%m%d%H%M%S"


class JanitorScope(WireModel):
    """A subscription, or one resource group of it, that the janitor scans."""

    subscription_id: str
    resource_group: str | None = None

    def __str__(self) -> str:
        rg = f"/resourceGroups/{self.resource_group}" if self.resource_group else ""
        return f"/subscriptions/{self.subscription_id}{rg}"


class ScanInput(WireModel):
    scopes: list[JanitorScope]


class Leftover(WireModel):
    """A resource tagged with a pipeline run id (what it is, whose, how old, in which state)."""

    kind: Kind
    resource_id: str
    run_id: str
    capture_id: str | None = None  # the tag image-pipeline:capture-id, when present
    disk_key: str | None = None  # snapshots: "os" / "lun<N>"
    created: datetime | None = None
    provisioning_state: str = "Unknown"
    active_access: bool = False
    attached_to: str | None = None  # a NIC's virtualMachine, a disk's managedBy (kept while attached)


class ScanResult(WireModel):
    leftovers: list[Leftover]
    scanned: list[str]  # what was listed: resource groups, galleries
    errors: list[str]  # what could not be listed (the scan goes on)
    not_permitted: list[str] = []  # lists the app may not read (403): it cannot have made anything there


class CleanInput(WireModel):
    leftover: Leftover
    actions: list[Action]
    dry_run: bool = False


class ActionResult(WireModel):
    resource_id: str
    run_id: str
    action: Action
    done: bool  # False in a dry run, or when there was nothing to do
    detail: str


class Plan(WireModel):
    leftover: Leftover
    actions: list[Action]
    keep_reason: str | None = None  # why nothing is done (the resource is kept)


class JanitorReport(WireModel):
    dry_run: bool
    scanned: list[str]
    actions: list[ActionResult]
    kept: dict[str, int]  # reason -> how many resources were kept for it
    errors: list[str]
    not_permitted: list[str] = []


def when_of(value: Any) -> datetime | None:
    """A timestamp as ARM returns it (an aware datetime or ISO text; naive means UTC), else None."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def run_started(run_id: str) -> datetime | None:
    """The start of a run from its id (``<capture-id>-<UTC yyyymmddHHMMSS>``, see ``shared.ids.new_run_id``)."""
    head, _, stamp = run_id.rpartition("-")
    if not head or len(stamp) != 14 or not stamp.isdigit():
        return None
    try:
        return datetime.strptime(stamp, _RUN_STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def capture_id_of(run_id: str, capture_tag: str | None) -> str:
    """The orchestration instance id of the capture that owns a run: the capture-id tag, else the run id
    without its stamp (runs made before run ids existed used the capture id as run id)."""
    if capture_tag and run_id.startswith(capture_tag):
        return capture_tag
    return run_id.rpartition("-")[0] if run_started(run_id) is not None else run_id


def run_of(tags: dict[str, str] | None) -> str | None:
    """The run that made a resource, or None for a resource the pipeline did not make (never touched)."""
    return made_by_run(tags)


def age(leftover: Leftover, now: datetime) -> timedelta | None:
    """How long ago the resource (or its run) started, whichever is later; None when neither is known."""
    times = [t for t in (leftover.created, run_started(leftover.run_id)) if t is not None]
    if not times:
        return None
    newest = max(t if t.tzinfo else t.replace(tzinfo=UTC) for t in times)
    return now - newest


def plan(
    leftover: Leftover,
    *,
    owned: bool,
    now: datetime,
    grace: timedelta,
    stuck_creating: timedelta,
    delete_snapshots: bool | None = True,
) -> Plan:
    """What to do with one leftover (see the module docstring). Never an action on an owned resource."""

    def keep(reason: str) -> Plan:
        return Plan(leftover=leftover, actions=[], keep_reason=reason)

    if owned:
        return keep("run still active")
    old = age(leftover, now)
    if old is None or old < grace:
        return keep("younger than the grace period")
    state = leftover.provisioning_state.lower()
    if leftover.kind in MACHINE_KINDS:
        return _plan_machine(leftover, state)
    if leftover.kind == "snapshot":
        if state == "deleting":
            return keep("already deleting")
        actions: list[Action] = ["revokeAccess"] if leftover.active_access else []
        if delete_snapshots is not True:
            # The run's request kept its snapshots (deleteSnapshots false), or nobody can say any more
            # (its capture instance was purged or replaced by a newer run): access only is revoked.
            reason = "kept by its request" if delete_snapshots is False else "its request is unknown"
            return Plan(leftover=leftover, actions=actions, keep_reason=None if actions else reason)
        return Plan(leftover=leftover, actions=[*actions, "deleteSnapshot"])
    if state == "failed":
        return Plan(leftover=leftover, actions=["deleteVersion"])
    if state == "creating":
        if old >= stuck_creating:
            return Plan(leftover=leftover, actions=["deleteVersion"])
        return keep("version still creating")
    return keep(f"version {leftover.provisioning_state}")


def _plan_machine(leftover: Leftover, state: str) -> Plan:
    """A VM, NIC or disk of a finished run: deleted, unless deleting already or attached to a VM."""
    if state == "deleting":
        return Plan(leftover=leftover, actions=[], keep_reason="already deleting")
    if leftover.attached_to and leftover.kind != "virtualMachine":
        return Plan(leftover=leftover, actions=[], keep_reason="still attached to a VM")
    return Plan(leftover=leftover, actions=[_MACHINE_ACTION[leftover.kind]])


class CleanResult(WireModel):
    results: list[ActionResult]
