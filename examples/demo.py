"""``make demo``: capture the example Linux VM into a gallery image version in 3 regions, over HTTP.

The capture is ``captureMode: "specialized"``: the VM keeps running (no guest step, no generalize),
so the demo destroys nothing and can be run against the same world again and again.

Starts the local cloud (azsim + Azurite, from ``examples/world.json``, Azure durations scaled down so
the whole capture takes well under a minute) and devhost running ``function_app.py``; submits a capture
of ``rg-build/vm-web`` to westeurope, eastus2 and northeurope with VHD export and a boot test
(``verify.bootTest``: the version is published excluded from latest, a test VM from it boots in each
region and runs a smoke script, and the version is promoted once every region passed); prints live
progress from ``GET /api/captures/{id}``, with each region's boot-test verdict; ends with the image
version, per-region state and verdicts. Exit code 0 only if the capture completed. Everything started is stopped on exit, also on Ctrl-C or failure.

    python -m examples.demo [--time-scale 0.012] [--timeout 240]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from azsim.testing import local_cloud
from devhost.testing import running_devhost

REPO = Path(__file__).resolve().parent.parent
WORLD = REPO / "examples" / "world.json"
WORKDIR = REPO / ".azsim" / "demo"
DEVHOST_WORKDIR = REPO / ".devhost" / "demo"
TERMINAL = {"Completed", "Failed", "Terminated", "Canceled"}


def _http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, method=method, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        text = exc.read().decode("utf-8", "replace")
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, text


def _policy_env() -> dict[str, str]:
    """Capture timings matched to the scaled-down cloud (poll every 0.5-2 s instead of 15-300 s); queues."""
    return {
        "CAPTURE_POLL_MIN_SECONDS": "0.5",
        "CAPTURE_POLL_MAX_SECONDS": "2",
        "CAPTURE_EXPECTED_COPY_MBPS": "1000",
        "CAPTURE_COPY_STALL_SECONDS": "30",
        "CAPTURE_TRANSIENT_RETRY_FIRST_SECONDS": "1",
        "AZURE_LRO_POLLING_INTERVAL_SECONDS": "0.2",
        "AZURE_ARM_RETRY_BACKOFF_SECONDS": "0.2",
        # The queue trigger's %CAPTURE_REQUESTS_QUEUE% must resolve, or devhost logs an ERROR at start.
        "CAPTURE_REQUESTS_QUEUE": "capture-requests",
        "CAPTURE_RESULTS_QUEUE": "capture-results",
        # The world's export account: exports are refused until an account is allow-listed.
        "CAPTURE_EXPORT_ACCOUNTS": "stexports",
        # The boot test's subnet per region: the world's vnet-boottest-<region> (rg-image-build).
        "BOOT_TEST_SUBNET_TEMPLATE": "/subscriptions/{subscription}/resourceGroups/rg-image-build/providers/"
        "Microsoft.Network/virtualNetworks/vnet-boottest-{region}/subnets/snet-boot-tests",
    }


def _line(status: dict[str, Any], started: float) -> str:
    stage = status.get("stage") or "-"
    running = [s["name"] for s in status.get("stages") or [] if s.get("state") == "running"]
    if stage == "publish" and "export" in running:
        stage = "publish+export"
    parts = [
        f"{time.monotonic() - started:5.1f}s",
        f"{status.get('runtimeStatus', '?'):9}",
        f"stage={stage:14}",
    ]
    if status.get("generalized"):
        parts.append("generalized")
    disks = status.get("disks") or []
    snaps = [d for d in disks if d.get("snapshotState")]
    if snaps and stage == "snapshot":
        parts.append("snapshots " + " ".join(f"{d['key']}:{d['snapshotState']}" for d in snaps))
    copies = [d for d in disks if d.get("copyState")]
    if copies:
        parts.append("copy " + " ".join(f"{d['key']}:{d.get('copyPercent', 0):.0f}%" for d in copies))
    boot = status.get("bootTests") or []
    if boot and stage in ("verify", "promote", "cleanup", "done"):
        parts.append("boot " + " ".join(f"{b['region']}:{_verdict(b)}" for b in boot))
        return "  ".join(parts)
    regions = status.get("regions") or []
    if regions and stage in ("publish", "publish+export", "cleanup", "done"):
        parts.append(
            "regions " + " ".join(f"{r['region']}:{r['state']}({r.get('progress', 0)}%)" for r in regions)
        )
    return "  ".join(parts)


def _verdict(b: dict[str, Any]) -> str:
    """``passed`` / ``failed(<code>)`` / what a running boot test waits for."""
    if b.get("state") == "running":
        return str(b.get("detail") or "running").replace(" ", "-")
    return b["state"] + (f"({b['code']})" if b.get("code") else "")


def run(time_scale: float, timeout: float) -> int:
    for d in (WORKDIR, DEVHOST_WORKDIR):
        shutil.rmtree(d, ignore_errors=True)
    print(f"Starting the local cloud (azsim + Azurite, time scale {time_scale}) ...", flush=True)
    # The example disks hold ~2 MiB of real bytes behind their nominal 30/64 GiB, so a real copy would be
    # instant; slow the simulated copy rate so the export runs about as long (scaled) as a real one would.
    WORKDIR.mkdir(parents=True, exist_ok=True)
    latency = WORKDIR.parent / "demo-latency.json"
    latency.write_text(json.dumps({"copy_mb_per_s": 0.002}))
    with local_cloud(WORKDIR, world=WORLD, time_scale=time_scale, latency=latency) as cloud:
        print(f"  ARM at {cloud.arm_endpoint}")
        print("Starting devhost with function_app.py ...", flush=True)
        env = {**dict(cloud), **_policy_env()}
        with running_devhost(REPO, DEVHOST_WORKDIR, env=env) as dh:
            print(f"  Functions at {dh.base_url}/api")
            vm_id = (
                f"/subscriptions/{cloud.subscription_id}/resourceGroups/rg-build"
                "/providers/Microsoft.Compute/virtualMachines/vm-web"
            )
            request = {
                "sourceVmId": vm_id,
                "gallery": {"resourceGroup": "rg-images", "name": "galContoso", "createIfMissing": True},
                "imageDefinition": {
                    "name": "web-ubuntu-specialized",
                    "publisher": "contoso",
                    "offer": "web",
                    "sku": "ubuntu-22-specialized",
                    "createIfMissing": True,
                },
                "version": "auto",
                "targetRegions": [
                    {"name": "westeurope", "replicaCount": 2, "storageAccountType": "Standard_ZRS"},
                    {"name": "eastus2"},
                    {"name": "northeurope"},
                ],
                # The VM is left as it is (crash-consistent snapshots of the running VM).
                "captureMode": "specialized",
                "vhdExport": {"accountUrl": cloud.storage_account_url("stexports"), "container": "vhds"},
                "deleteSnapshots": True,
                "tags": {"ci-run": "demo"},
                # Boot a test VM from the version in every target region before it becomes "latest".
                "verify": {"bootTest": True, "smokeScript": "echo smoke test: the image boots\nexit 0"},
            }
            print("\nPOST /api/captures")
            print(json.dumps(request, indent=2))
            code, answer = _http("POST", f"{dh.base_url}/api/captures", request)
            if code != 202:
                print(f"\nThe capture was not accepted ({code}):\n{json.dumps(answer, indent=2)}")
                return 1
            cid = answer["id"]
            print(f"\n202 Accepted: capture {cid}\nProgress (GET /api/captures/{cid}):")
            started = time.monotonic()
            last_line = ""
            status: dict[str, Any] = {}
            while time.monotonic() - started < timeout:
                code, status = _http("GET", f"{dh.base_url}/api/captures/{cid}")
                if code != 200:
                    print(f"  status answered {code}: {status}")
                    return 1
                line = _line(status, started)
                if line.split("  ", 1)[1] != last_line:
                    print("  " + line, flush=True)
                    last_line = line.split("  ", 1)[1]
                if status.get("runtimeStatus") in TERMINAL:
                    break
                time.sleep(0.5)
            else:
                print(f"\nThe capture did not finish within {timeout:.0f} s.")
                return 1
            return _report(status, _power_state(cloud))


def _power_state(cloud: Any) -> str:
    """vm-web's power state, read through the real SDK as a user would (``az vm get-instance-view``)."""
    from azure.mgmt.compute import ComputeManagementClient

    with cloud.apply():
        view = cloud.arm_client(ComputeManagementClient).virtual_machines.instance_view("rg-build", "vm-web")
    codes = [s.code or "" for s in view.statuses or [] if (s.code or "").startswith("PowerState/")]
    return codes[0].split("/", 1)[1] if codes else "unknown"


def _report(status: dict[str, Any], power: str) -> int:
    if status.get("runtimeStatus") != "Completed":
        for b in status.get("bootTests") or []:
            print(f"  boot test {b['region']}: {_verdict(b)} {b.get('message') or ''}")
        err = status.get("error") or {}
        print(
            f"\nCapture {status.get('runtimeStatus')}: [{err.get('step')}] {err.get('code')}: {err.get('message')}"
        )
        if err.get("advice"):
            print(f"  advice: {err['advice']}")
        return 1
    result = status["result"]
    print(f"\nImage version: {result['imageVersionId']}")
    print(
        f"  {result.get('captureMode')} image, {result.get('consistency')} snapshots; "
        f"source VM {result.get('sourceState')}, now {power}"
    )
    verdicts = {b["region"]: b for b in status.get("bootTests") or []}
    for r in result["regions"]:
        boot = verdicts.get(r["region"])
        tested = f"  boot test {_verdict(boot)}, test VM deleted: {boot['cleaned']}" if boot else ""
        print(f"  {r['region']:14} {r['state']:10} {r.get('progress', 0)}%{tested}")
    if verdicts:
        print("  promoted: excludeFromLatest false (every boot test passed)")
    for url in result.get("exportedBlobs", []):
        print(f"  exported VHD: {url}")
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in result.get("timings", {}).items())
    print(f"  stage timings: {timings}")
    print(
        f"  snapshots deleted: {len(result.get('snapshotsDeleted', []))}, kept: {len(result.get('snapshotsKept', []))}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m examples.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--time-scale", type=float, default=0.012, help="azsim time scale (default 0.012)")
    ap.add_argument("--timeout", type=float, default=240.0, help="give up after this many seconds")
    ns = ap.parse_args(argv)
    try:
        return run(ns.time_scale, ns.timeout)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the local cloud and devhost")
        return 130


if __name__ == "__main__":
    sys.exit(main())
