"""The bench world: ``bench/world.json`` (vm-s1 and vm-s1-warm for the pipeline, vm-base for the baseline), and
scale worlds with N copies of vm-s1 generated into the bench work dir (not committed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BENCH_WORLD = Path(__file__).resolve().parent / "world.json"
S1_VM = "vm-s1"
S1_WARM_VM = "vm-s1-warm"  # a second S1 capture in the same (warm) devhost
S1_BASELINE_VM = "vm-base"


def scale_vm_names(n: int) -> list[str]:
    return [f"vm-scale-{i:03d}" for i in range(n)]


def scale_world(n: int, template_path: Path = BENCH_WORLD) -> dict[str, Any]:
    """The bench world with its VMs replaced by ``n`` copies of vm-s1 (disk names follow the VM name)."""
    if n < 1:
        raise ValueError(f"scale count must be at least 1, got {n}")
    world = json.loads(template_path.read_text(encoding="utf-8"))
    template = next((v for v in world["virtualMachines"] if v["name"] == S1_VM), None)
    if template is None:
        raise ValueError(f"{template_path}: $.virtualMachines: expected a VM named {S1_VM!r} to copy")
    vms = []
    for name in scale_vm_names(n):
        vm = json.loads(json.dumps(template))
        vm["name"] = name
        vm["osDisk"]["name"] = f"{name}_OsDisk"
        for d in vm.get("dataDisks", []):
            d["name"] = f"{name}_data{d['lun']}"
        vms.append(vm)
    world["virtualMachines"] = vms
    return world


def write_scale_world(path: Path, n: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(scale_world(n), indent=1), encoding="utf-8")
    return path
