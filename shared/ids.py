"""Parse and build Azure resource ids, and derive the deterministic names a capture uses.

Two ids name a capture:

- the **capture id** (``capture_instance_id``): one per VM, the orchestration instance id. It makes
  "one running capture per VM" (409) and deduplication of retried requests work;
- the **run id** (``new_run_id``): one per capture *run*, ``<capture-id>-<UTC yyyymmddHHMMSS>``, chosen
  by the trigger that starts the run and carried in the orchestration input, so it is the same on every
  replay and re-execution of that run. Everything a run creates is named and tagged from it (snapshots
  ``<run-id>-os``, export blobs ``<run-id>/<disk>.vhd``, tag ``image-pipeline:run-id``, sub-orchestration
  ids), so a re-executed activity finds its own earlier work, while a later capture of the same VM
  (a golden VM recreated under the same name) never mistakes the previous run's work for its own.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_RID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"(?P<ns>[^/]+)/(?P<type>[^/]+)/(?P<name>[^/]+)(?P<rest>(/[^/]+/[^/]+)*)",
    re.IGNORECASE,
)
# Every pattern below is used with fullmatch: ``$`` would accept a trailing newline. Character classes are
# spelled out (never ``\d`` or ``\w``, which accept non-ASCII digits and letters).
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
RESOURCE_GROUP_MAX = 90
_RG_PUNCTUATION = frozenset("_-().")
VM_NAME_MAX = 64
_VM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# A capture id as capture_instance_id makes it: the only ids the status and cancel endpoints look up.
CAPTURE_ID_MAX = 80
_CAPTURE_ID = re.compile(r"capture-[a-z0-9-]{1,72}")


def subscription_id_problem(value: str) -> str | None:
    """Why ``value`` is not a subscription id (a GUID), or None."""
    if not _GUID.fullmatch(value):
        return "subscription ids are GUIDs, e.g. 89d0a3c1-7028-549c-b21b-dc72b5b9bb42"
    return None


def resource_group_problem(value: str) -> str | None:
    """Why ``value`` is not a valid resource-group name, or None.

    Azure's rule: 1-90 characters; letters and digits (Unicode letters and decimal digits count), underscore,
    hyphen, period and parentheses; not ending in a period.
    """
    rule = (
        f"resource group names are 1-{RESOURCE_GROUP_MAX} letters, digits, '_', '-', '.', '(' and ')', "
        "not ending in '.'"
    )
    if not value or len(value) > RESOURCE_GROUP_MAX or value.endswith("."):
        return rule
    for c in value:
        if c not in _RG_PUNCTUATION and not (
            unicodedata.category(c).startswith("L") or unicodedata.category(c) == "Nd"
        ):
            return rule
    return None


def vm_name_problem(value: str) -> str | None:
    """Why ``value`` cannot be the name of a VM, or None (1-64 ASCII letters, digits, '_', '.', '-'; starting
    with a letter or digit, not ending in '.' or '-'; Windows VMs are shorter still, which ARM enforced when
    the VM was made)."""
    if len(value) > VM_NAME_MAX or not _VM_NAME.fullmatch(value) or value[-1] in ".-":
        return (
            f"VM names are 1-{VM_NAME_MAX} letters, digits, '_', '.' and '-', starting with a letter or digit "
            "and not ending in '.' or '-'"
        )
    return None


def is_capture_id(value: str) -> bool:
    """Whether ``value`` can be a capture id (``capture-<vm slug>-<hash>``): anything else cannot exist, and is
    answered 404 without reaching the Durable client (an id with '?', '#', '/' or '%' would change its URL)."""
    return len(value) <= CAPTURE_ID_MAX and _CAPTURE_ID.fullmatch(value) is not None


@dataclass(frozen=True)
class ResourceId:
    subscription_id: str
    resource_group: str
    namespace: str
    type: str
    name: str

    @classmethod
    def parse(cls, value: str) -> ResourceId:
        """Parse a top-level ARM resource id; raise ValueError naming what is wrong."""
        m = _RID.fullmatch(value.strip())
        if not m or m.group("rest"):
            raise ValueError(
                "expected an ARM resource id like /subscriptions/<id>/resourceGroups/<rg>/providers/"
                "Microsoft.Compute/virtualMachines/<name>"
            )
        return cls(m.group("sub"), m.group("rg"), m.group("ns"), m.group("type"), m.group("name"))

    def problems(self) -> list[str]:
        """What is wrong with the id's subscription, resource group and name by Azure's rules (intake only:
        ``parse`` alone stays lenient, so ids stored by earlier versions still parse)."""
        out = []
        sub = subscription_id_problem(self.subscription_id)
        if sub:
            out.append(f"subscription {self.subscription_id[:60]!r}: {sub}")
        rg = resource_group_problem(self.resource_group)
        if rg:
            out.append(f"resource group {self.resource_group[:100]!r}: {rg}")
        return out

    def __str__(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{self.namespace}/{self.type}/{self.name}"
        )


def vm_id(subscription_id: str, resource_group: str, name: str) -> str:
    return str(ResourceId(subscription_id, resource_group, "Microsoft.Compute", "virtualMachines", name))


def snapshot_id(subscription_id: str, resource_group: str, name: str) -> str:
    return str(ResourceId(subscription_id, resource_group, "Microsoft.Compute", "snapshots", name))


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:limit].strip("-")


def capture_instance_id(source_vm_id: str) -> str:
    """The orchestration instance id of the capture of a VM: one running capture per VM.

    Readable (VM name) plus a hash of the full, case-folded id so that two VMs of the same
    name in different groups or subscriptions never share an id. At most 59 characters.
    """
    rid = ResourceId.parse(source_vm_id)
    digest = hashlib.sha256(str(rid).lower().encode()).hexdigest()[:10]
    return f"capture-{_slug(rid.name, 40)}-{digest}"


_RUN_STAMP = "%Y%m%d%H%M%S"
_RUN_STAMP_LEN = 14


def _run_stamp(capture_id: str, run_id: str | None) -> datetime | None:
    if not run_id or not run_id.startswith(capture_id + "-"):
        return None
    stamp = run_id[len(capture_id) + 1 :]
    if len(stamp) != _RUN_STAMP_LEN or not stamp.isdigit():
        return None
    try:
        return datetime.strptime(stamp, _RUN_STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def new_run_id(capture_id: str, now: datetime, previous_run_id: str | None = None) -> str:
    """The id of a new capture run of ``capture_id``: ``<capture-id>-<UTC yyyymmddHHMMSS>`` (<= 74 chars).

    Called by the trigger that starts the run (never by an orchestrator: it reads the clock through
    ``now``). A run started in the same second as the previous one, or on a host whose clock is behind
    it, gets the second after the previous run's stamp, so run ids of one VM never repeat.
    """
    when = (now if now.tzinfo else now.replace(tzinfo=UTC)).astimezone(UTC).replace(microsecond=0)
    before = _run_stamp(capture_id, previous_run_id)
    if before is not None and when <= before:
        when = before + timedelta(seconds=1)
    return f"{capture_id}-{when.strftime(_RUN_STAMP)}"


def disk_key(lun: int | None) -> str:
    """Stable key of a disk within a capture: ``os`` or ``lun<N>``."""
    return "os" if lun is None else f"lun{lun}"


SNAPSHOT_NAME_MAX = 80


def snapshot_name(run_id: str, lun: int | None) -> str:
    """Snapshot name for a disk of a capture run: ``<run-id>-<disk key>`` (<= 80 chars).

    A run id from ``new_run_id`` (<= 74 chars) always fits with ``-lun63`` (the highest LUN). A longer
    id (not made by the pipeline) is shortened deterministically, keeping a hash of the whole id so two
    long ids never share a name.
    """
    suffix = f"-{disk_key(lun)}"
    if len(run_id) + len(suffix) <= SNAPSHOT_NAME_MAX:
        return f"{run_id}{suffix}"
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:10]
    head = run_id[: SNAPSHOT_NAME_MAX - len(suffix) - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}{suffix}"


def export_blob_name(run_id: str, disk_name: str) -> str:
    """Blob path of an exported VHD inside the export container: ``<run-id>/<disk>.vhd``."""
    return f"{run_id}/{disk_name}.vhd"


TAG_CAPTURE_ID = "image-pipeline:capture-id"  # the per-VM capture id (orchestration instance id)
TAG_RUN_ID = "image-pipeline:run-id"  # the capture run that made the resource
TAG_SOURCE_VM = "image-pipeline:source-vm"


def made_by_run(tags: dict[str, str] | None) -> str | None:
    """The run that made a resource, from its tags: ``image-pipeline:run-id``, or for resources made before
    run ids existed, ``image-pipeline:capture-id`` (those runs' run id is their capture id)."""
    tags = tags or {}
    return tags.get(TAG_RUN_ID) or tags.get(TAG_CAPTURE_ID)


def ownership_tags(run_id: str, tags: dict[str, str] | None = None) -> dict[str, str]:
    """``tags`` plus the tags that mark a resource as made by ``run_id`` (the capture id is kept when given)."""
    out = dict(tags or {})
    out.setdefault(TAG_CAPTURE_ID, run_id)
    out[TAG_RUN_ID] = run_id
    return out
