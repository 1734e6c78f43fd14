"""The client's own reading of the status body (``GET /api/captures/{id}``): only what it shows.

Lenient on purpose: a field the server adds later is ignored, a field it leaves out reads as absent,
so an older client keeps following a newer app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Exit codes of the client (also listed in the README's "From a pipeline (CLI)").
EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_CANCELED = 2
EXIT_USAGE = 3
EXIT_API = 4  # the API could not be reached, refused the call, or the wait timed out

TERMINAL = {
    "Completed": EXIT_COMPLETED,
    "Failed": EXIT_FAILED,
    "Terminated": EXIT_FAILED,
    "Canceled": EXIT_CANCELED,
}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


@dataclass(frozen=True)
class Stage:
    name: str
    state: str
    seconds: float | None


@dataclass(frozen=True)
class DiskCopy:
    key: str
    name: str
    snapshot_state: str | None
    copy_state: str | None
    bytes_copied: float
    bytes_total: float

    @property
    def percent(self) -> float:
        return round(100.0 * self.bytes_copied / self.bytes_total, 1) if self.bytes_total else 0.0


@dataclass(frozen=True)
class Region:
    name: str
    state: str
    progress: float


@dataclass(frozen=True)
class Status:
    id: str
    runtime_status: str
    stage: str | None = None
    source_vm_id: str | None = None
    stages: list[Stage] = field(default_factory=list)
    disks: list[DiskCopy] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    image_version_id: str | None = None
    error: dict[str, Any] | None = None
    cancel_requested: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def terminal(self) -> bool:
        return self.runtime_status in TERMINAL

    @property
    def exit_code(self) -> int:
        """The outcome's exit code (0 while it still runs: the status was read)."""
        return TERMINAL.get(self.runtime_status, EXIT_COMPLETED)

    @property
    def exporting(self) -> bool:
        return any(d.copy_state or d.bytes_total for d in self.disks)

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> Status:
        stages = [
            Stage(str(s.get("name")), str(s.get("state") or "pending"), s.get("seconds"))
            for s in body.get("stages") or []
            if isinstance(s, dict)
        ]
        disks = [
            DiskCopy(
                key=str(d.get("key")),
                name=str(d.get("name") or d.get("key")),
                snapshot_state=_str(d.get("snapshotState")),
                copy_state=_str(d.get("copyState")),
                bytes_copied=_num(d.get("bytesCopied")),
                bytes_total=_num(d.get("bytesTotal")),
            )
            for d in body.get("disks") or []
            if isinstance(d, dict)
        ]
        regions = [
            Region(str(r.get("region")), str(r.get("state") or "Unknown"), _num(r.get("progress")))
            for r in body.get("regions") or []
            if isinstance(r, dict)
        ]
        result = body.get("result") if isinstance(body.get("result"), dict) else {}
        return cls(
            id=str(body.get("id")),
            runtime_status=str(body.get("runtimeStatus") or "Unknown"),
            stage=_str(body.get("stage")),
            source_vm_id=_str(body.get("sourceVmId")),
            stages=stages,
            disks=disks,
            regions=regions,
            image_version_id=_str(body.get("imageVersionId")) or _str((result or {}).get("imageVersionId")),
            error=body.get("error") if isinstance(body.get("error"), dict) else None,
            cancel_requested=bool(body.get("cancelRequested")),
            raw=body,
        )
