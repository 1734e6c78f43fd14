"""Azure's critical path for one capture: the lower bound no orchestration of the same steps can beat.

    deallocate -> generalize -> snapshots (in parallel: the longest)
               -> max(VHD export per disk (in parallel: grant access + copy),
                      gallery replication (source region first, then the others in parallel))

Computed from the latency profile azsim ran with (the same functions azsim uses: ``snapshot_s``,
``copy_s``, ``replication_s``), for the VM's disk sizes and blob bytes. Generalize is synchronous
in azsim (0 s). Gallery/definition creation, preflight reads and cleanup (revoke, snapshot delete)
are left out: they could overlap the steps above or come after the image is usable, so leaving them
out keeps this a lower bound.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from azsim.core.latency import LatencyProfile
from azsim.world import VirtualMachine
from bench.profile import GIB, blob_bytes


@dataclass(frozen=True)
class DiskSpec:
    key: str  # "os" or "lun<N>"
    size_gib: int
    blob_bytes: int


@dataclass(frozen=True)
class CriticalPath:
    deallocate_s: float
    generalize_s: float
    snapshots_s: float
    export_s: float  # longest disk: grant access + copy
    replication_s: float  # source region, then the others
    total_s: float  # Azure seconds
    bound_by: str  # "export" or "replication"

    def wall(self, time_scale: float) -> float:
        return self.total_s * time_scale

    def as_dict(self, time_scale: float | None = None) -> dict[str, float | str]:
        out: dict[str, float | str] = {
            k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()
        }
        if time_scale is not None:
            out["total_wall_s"] = round(self.wall(time_scale), 3)
        return out


def disks_of(vm: VirtualMachine) -> list[DiskSpec]:
    disks = [DiskSpec("os", vm.os_disk.size_gi_b, blob_bytes(vm.os_disk.content_mi_b))]
    disks += [DiskSpec(f"lun{d.lun}", d.size_gi_b, blob_bytes(d.content_mi_b)) for d in vm.data_disks]
    return disks


def critical_path(
    profile: LatencyProfile, disks: list[DiskSpec], *, regions: int, export: bool = True
) -> CriticalPath:
    """The lower bound in Azure seconds for a capture of ``disks`` replicated to ``regions`` regions."""
    if not disks:
        raise ValueError("a capture has at least the OS disk")
    if regions < 1:
        raise ValueError("at least one target region (the source region) is replicated")
    snapshots = max(profile.snapshot_s(d.size_gib) for d in disks)
    export_s = max(profile.grant_access_s + profile.copy_s(d.blob_bytes) for d in disks) if export else 0.0
    full = profile.replication_s(sum(d.size_gib for d in disks) * GIB)
    replication = full * profile.source_region_fraction + (full if regions > 1 else 0.0)
    head = profile.deallocate_s + 0.0 + snapshots
    return CriticalPath(
        deallocate_s=profile.deallocate_s,
        generalize_s=0.0,
        snapshots_s=snapshots,
        export_s=export_s,
        replication_s=replication,
        total_s=head + max(export_s, replication),
        bound_by="export" if export_s > replication else "replication",
    )
