"""How long simulated Azure operations take (in Azure seconds, before the time scale is applied).

Every default names its source. Where Azure publishes no figure, the default is an assumption
chosen to be plausible, and is marked so; override any field with a JSON file
(``load_latency``) or by constructing ``LatencyProfile(...)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path


@dataclass(frozen=True)
class LatencyProfile:
    # Durations: Azure publishes none, so each is an assumption within what was seen
    # (docs/azure-facts.md#durations-no-published-figures).
    # Snapshot (Copy from a disk) until provisioningState Succeeded ("usually available quickly").
    snapshot_base_s: float = 5.0
    snapshot_per_gib_s: float = 0.05
    # Managed disk from a snapshot (createOption Copy): assumption, same family as snapshots.
    disk_from_snapshot_s: float = 10.0
    # VM power actions: results arrive "in the order of few minutes".
    deallocate_s: float = 90.0
    power_off_s: float = 30.0
    start_s: float = 60.0
    vm_create_s: float = 60.0
    vm_delete_s: float = 30.0
    # A VM created from attached disks: from running until its guest agent reports Ready. No published
    # figure (the OS boots from a specialized disk, no OS provisioning step): assumption.
    vm_agent_ready_s: float = 45.0
    # A VM from a generalized image whose OS provisioning never completes fails OSProvisioningTimedOut after
    # this long: Linux "40 minutes" (docs/azsim-arm.md#latency-profile); the Windows figure is unpublished
    # (assumption). A good image's provisioning ends when the agent reports (vm_agent_ready_s).
    os_provisioning_timeout_linux_s: float = 2400.0
    os_provisioning_timeout_windows_s: float = 1200.0
    # Ordinary Run Command round trip: assumption (agent pick-up + script).
    run_command_s: float = 20.0
    # Windows sysprep /generalize /oobe /shutdown until the VM reports PowerState/stopped.
    # Microsoft's AKS image build budgets 15 min Run Command + 20 min shutdown wait: 3 min typical assumed.
    sysprep_shutdown_s: float = 180.0
    # Guest shutdown requested by a script (shutdown/poweroff) until PowerState/stopped: assumption.
    guest_shutdown_s: float = 30.0
    # beginGetAccess / endGetAccess: grant access answers 202 + Retry-After; duration assumed.
    grant_access_s: float = 5.0
    revoke_access_s: float = 5.0
    # Gallery and image definition create/update/delete: assumption.
    gallery_s: float = 10.0
    gallery_image_s: float = 10.0
    gallery_delete_s: float = 10.0
    # Image version replication per target region = base + size / throughput. No published rate
    # ("can take a few hours in some cases"); throughput from observed async VHD copies of
    # ~40 MB/s: 1 GiB ≈ 25.6 s.
    replication_base_s: float = 120.0
    replication_mb_per_s: float = 40.0
    # The source region is written first (it must be a target region); other regions start when it
    # completes: the source region takes this fraction of a full replication.
    source_region_fraction: float = 0.5
    # Async blob copy throughput (about 30-45 MB/s observed for VHD page blobs).
    copy_mb_per_s: float = 40.0
    # Retry-After sent on 202 and on running operation polls (Azure seconds). Compute sends none or
    # small values; 10 s keeps polling within Compute's GetOperation budget of 15/min per resource.
    poll_interval_s: float = 10.0

    def replication_s(self, size_bytes: int) -> float:
        return self.replication_base_s + size_bytes / (self.replication_mb_per_s * 1_000_000)

    def snapshot_s(self, size_gib: int) -> float:
        return self.snapshot_base_s + self.snapshot_per_gib_s * size_gib

    def copy_s(self, size_bytes: int) -> float:
        return size_bytes / (self.copy_mb_per_s * 1_000_000)


class LatencyError(ValueError):
    """A latency file is unreadable or names an unknown field / a bad value."""


def load_latency(path: str | Path, base: LatencyProfile | None = None) -> LatencyProfile:
    """Override fields of ``base`` (or the defaults) from a JSON object of ``field: seconds``."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise LatencyError(f"{p}: cannot read latency file: {exc}") from None
    if not isinstance(data, dict):
        raise LatencyError(f"{p}: $: expected a JSON object of field -> seconds")
    known = {f.name for f in fields(LatencyProfile)}
    values: dict[str, float] = {}
    for key, value in data.items():
        if key not in known:
            raise LatencyError(f"{p}: $.{key}: unknown latency field; expected one of {sorted(known)}")
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise LatencyError(f"{p}: $.{key}: expected a non-negative number of seconds, got {value!r}")
        values[key] = float(value)
    return replace(base or LatencyProfile(), **values)
