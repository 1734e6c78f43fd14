"""The benchmark's latency profile: azsim's Azure-realistic defaults, adjusted for the bench world.

azsim copies a disk's real bytes, and the bench world keeps them tiny (``contentMiB``) while the
disks are provisioned at 128/256 GiB. A VHD export copies the whole fixed-size page blob, so the
copy throughput is multiplied by ``content bytes / provisioned bytes``: a 1 MiB blob then copies as
long as 128 GiB would at the Azure figure. Replication already uses provisioned sizes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from azsim.core.latency import LatencyProfile
from azsim.world import VirtualMachine

BENCH_DIR = Path(__file__).resolve().parent
PROFILE_FILE = BENCH_DIR / "profile.json"
GIB = 1024**3
MIB = 1024**2
VHD_FOOTER = 512


class ProfileError(ValueError):
    """bench/profile.json is malformed or the world's disks cannot share one copy throughput."""


def load_profile_doc(path: Path = PROFILE_FILE) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read the bench profile: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("overrides", {}), dict):
        raise ProfileError(f"{path}: $.overrides: expected an object of latency field -> {{value, source}}")
    return doc


def azure_profile(path: Path = PROFILE_FILE) -> LatencyProfile:
    """azsim's defaults with the overrides of ``bench/profile.json`` (each ``{"value": s, "source": ...}``)."""
    doc = load_profile_doc(path)
    known = set(asdict(LatencyProfile()))
    values: dict[str, float] = {}
    for field, spec in doc.get("overrides", {}).items():
        if field not in known:
            raise ProfileError(
                f"{path}: $.overrides.{field}: unknown latency field; expected one of {sorted(known)}"
            )
        if (
            not isinstance(spec, dict)
            or not isinstance(spec.get("value"), int | float)
            or not spec.get("source")
        ):
            raise ProfileError(f'{path}: $.overrides.{field}: expected {{"value": number, "source": text}}')
        values[field] = float(spec["value"])
    return replace(LatencyProfile(), **values)


def blob_bytes(content_mib: int) -> int:
    """Bytes of azsim's disk blob: ``contentMiB`` of data plus the 512-byte VHD footer."""
    return content_mib * MIB + VHD_FOOTER


def content_ratio(vm: VirtualMachine) -> float:
    """content bytes / provisioned bytes, the same for every disk of the VM (else a ProfileError)."""
    disks = [vm.os_disk, *vm.data_disks]
    ratios = {d.content_mi_b * MIB / (d.size_gi_b * GIB) for d in disks}
    if len(ratios) != 1:
        sizes = ", ".join(f"{d.name}: {d.content_mi_b} MiB / {d.size_gi_b} GiB" for d in disks)
        raise ProfileError(
            f"VM {vm.name}: contentMiB/sizeGiB must be the same for every disk so one copy throughput "
            f"models them all ({sizes})"
        )
    return ratios.pop()


def bench_profile(
    base: LatencyProfile, vm: VirtualMachine, *, copy_hours: float | None = None
) -> LatencyProfile:
    """The profile azsim runs with: copy throughput scaled to the content ratio (and to ``copy_hours``).

    With ``copy_hours`` the Azure throughput is chosen so the VM's largest disk copies for that long.
    """
    mbps = base.copy_mb_per_s
    if copy_hours is not None:
        largest = max(d.size_gi_b for d in [vm.os_disk, *vm.data_disks]) * GIB
        mbps = largest / (copy_hours * 3600) / 1_000_000
    return replace(base, copy_mb_per_s=mbps * content_ratio(vm))


def azure_copy_mbps(profile: LatencyProfile, vm: VirtualMachine) -> float:
    """The Azure-equivalent copy throughput (MB/s of provisioned size) a bench profile models."""
    return profile.copy_mb_per_s / content_ratio(vm)


def write_latency_file(profile: LatencyProfile, path: Path) -> Path:
    """Write every field for ``python -m azsim up --latency`` (azsim's ``load_latency`` format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(profile), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path
