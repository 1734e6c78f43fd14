"""What a test stack runs: the example world (or the tagged test world) and the app folder.

- ``WORLD``: ``examples/world.json``, the world the demo and the e2e tests capture from.
- ``write_tagged_world``: that world plus test VMs with ``image-pipeline:*`` tags, for the queue,
  Event Grid, cancel and notice tests (written to the test's tmp dir, never into examples/).
- ``write_fast_queue_app``: a tmp app folder whose ``function_app.py`` loads the repository's
  ``function_app.py`` (the real composition, unchanged), with a ``host.json`` copy whose queue polling
  is short (the Functions default backs off to one minute on an empty queue).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrators.capture.plan import RELEASE

REPO_ROOT = Path(__file__).resolve().parents[2]
WORLD = REPO_ROOT / "examples" / "world.json"

GOLDEN_TAGS = {
    "image-pipeline:mode": "inPlace",
    "image-pipeline:gallery": "rg-images/galContoso",
    "image-pipeline:definition": "golden-def",
    "image-pipeline:identifier": "contoso/golden/ubuntu",
    "image-pipeline:regions": "westeurope, eastus2",
    "image-pipeline:version": "auto",
}


def _vm(name: str, power: str, tags: dict[str, str], *, deprovisioned: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "resourceGroup": "rg-build",
        "location": "westeurope",
        "osType": "Linux",
        "hyperVGeneration": "V2",
        "vmSize": "Standard_D2s_v5",
        "powerState": power,
        "guestDeprovisioned": deprovisioned,
        "osDisk": {"name": f"{name}_OsDisk", "sizeGiB": 30, "contentMiB": 1},
        "dataDisks": [{"name": f"{name}_data0", "lun": 0, "sizeGiB": 32, "contentMiB": 1}],
        "tags": tags,
    }


def write_tagged_world(path: Path) -> Path:
    world = json.loads(WORLD.read_text())
    world["virtualMachines"] += [
        _vm("vm-golden", "deallocated", {"app": "golden", **GOLDEN_TAGS}),
        _vm("vm-golden-ce", "deallocated", {**GOLDEN_TAGS, "image-pipeline:definition": "golden-ce-def"}),
        _vm("vm-golden-up", "running", GOLDEN_TAGS),
        _vm(
            "vm-badtags",
            "deallocated",
            {
                "image-pipeline:mode": "inPlace",
                "image-pipeline:gallery": "galContoso",
                "image-pipeline:regions": "x:y",
            },
        ),
        # Tagged for capture but without image-pipeline:mode: never captured (its guest was not deprovisioned).
        _vm("vm-nomode", "deallocated", {k: v for k, v in GOLDEN_TAGS.items() if k != "image-pipeline:mode"}),
        # Targets of the Event Grid fuzz: deallocated and fully tagged, but only ever sent invalid or stale events.
        _vm("vm-fuzz", "deallocated", {**GOLDEN_TAGS, "image-pipeline:definition": "fuzz-def"}),
        _vm("vm-plain", "deallocated", {"app": "plain"}),
        _vm("vm-queue", "running", {}, deprovisioned=False),
        _vm("vm-queue-dup", "running", {}, deprovisioned=False),
        _vm("vm-cancel", "running", {}, deprovisioned=False),
        _vm("vm-notice", "running", {}, deprovisioned=False),
        _vm("vm-fail", "running", {}, deprovisioned=False),
        _vm("vm-409", "running", {}, deprovisioned=False),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(world, indent=1))
    return path


APP_SOURCE = '''"""Test app: the repository's function_app.py as is (this folder only changes host.json)."""
import importlib.util
import pathlib

_spec = importlib.util.spec_from_file_location("image_pipeline_function_app", pathlib.Path({root!r}) / "function_app.py")
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
app = _mod.app
'''


def write_fast_queue_app(app_dir: Path) -> Path:
    app_dir.mkdir(parents=True, exist_ok=True)
    (app_dir / "function_app.py").write_text(APP_SOURCE.format(root=str(REPO_ROOT)))
    host = json.loads((REPO_ROOT / "host.json").read_text())
    queues = host.setdefault("extensions", {}).setdefault("queues", {})
    queues["maxPollingInterval"] = "00:00:00.500"
    (app_dir / "host.json").write_text(json.dumps(host, indent=1))
    return app_dir


# Faults of the tagged world's cancel/notice/janitor scenarios: copies of vm-cancel and vm-notice stall
# (so a cancel or a termination finds them mid-copy), and version 9.9.9 fails replication in westeurope
# (a half-made version for the janitor to find).
JANITOR_FAULTS: dict[str, Any] = {
    "rules": [
        {
            "name": "copies-stall",
            "match": {"copy": {"account": "^stexports$", "blob": "capture-vm-(cancel|notice)-"}},
            "effect": {"type": "copy", "outcome": "stall"},
        },
        {
            "name": "half-made-version-fails",
            "match": {
                "action": "Microsoft.Compute/galleries/images/versions/write",
                "path": "/versions/9\\.9\\.9$",
            },
            "effect": {"type": "replicationFailure", "region": "westeurope"},
        },
        {
            # A boot-test VM that Azure refuses to create: its NIC is deleted on its own.
            "name": "boot-test-vm-refused",
            "match": {
                "action": "Microsoft.Compute/virtualMachines/write",
                "path": "/virtualMachines/imgtest-[0-9a-f]{10}-northeurope$",
            },
            "effect": {"type": "vmCreateFailure", "reason": "skuNotAvailable"},
        },
    ]
}


# The release stages every plan lists after publish/export, by status name; a request without
# verify/retention/share/marketplace reports each of them skipped.
RELEASE_STAGES: tuple[str, ...] = tuple(str(s.name) for s in RELEASE)
