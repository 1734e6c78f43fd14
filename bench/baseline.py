"""The baseline: a plain sequential capture script, written the way the seeds' steps read.

generalize (deallocate, mark generalized) -> for each disk: snapshot, grant read access (SAS), copy
the VHD and wait, revoke -> gallery + image definition -> image version and wait -> delete the
snapshots. Every ARM step is ``begin_*().result()`` with the SDK's default poller (``ARMPolling``:
it sleeps for the service's ``Retry-After`` and falls back to its 30 s default only when there is
none; azsim sends one on every running operation). The copy is waited for with a sleep loop at the
same 30 s (scaled by the time scale), as a script writer would. Nothing runs in parallel.

    python -m bench.baseline --env .azsim/env --vm vm-base [--time-scale 0.001]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.identity import DefaultAzureCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import (
    CreationData,
    Gallery,
    GalleryDataDiskImage,
    GalleryDiskImageSource,
    GalleryImage,
    GalleryImageIdentifier,
    GalleryImageProperties,
    GalleryImageVersion,
    GalleryImageVersionProperties,
    GalleryImageVersionPublishingProfile,
    GalleryImageVersionStorageProfile,
    GalleryOSDiskImage,
    GrantAccessData,
    Snapshot,
    SnapshotProperties,
    SnapshotSku,
    TargetRegion,
)
from azure.storage.blob import BlobServiceClient

SDK_DEFAULT_POLL_S = 30.0  # azure-mgmt-core ARMPolling's default polling_interval


@dataclass
class BaselineResult:
    vm: str
    ok: bool
    makespan_s: float
    steps: list[tuple[str, float]] = field(default_factory=list)  # (step, wall seconds)
    error: str | None = None
    copy_polls: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "vm": self.vm,
            "ok": self.ok,
            "makespanS": round(self.makespan_s, 3),  # on the clock it ran on (simulated in virtual time)
            "steps": [{"step": s, "seconds": round(d, 3)} for s, d in self.steps],
            "copyPolls": self.copy_polls,
            "error": self.error,
        }


class CloudClock:
    """The local cloud's simulated clock, for a script that is the only client (the baseline).

    ``now()`` reads it; ``sleep(s)`` advances it by ``s`` instead of waiting, and ``patched()``
    makes ``time.sleep`` do that for the block, so the Azure SDK's LRO waits pass in virtual time.
    """

    def __init__(self, cloud: Any) -> None:
        self.cloud = cloud

    def now(self) -> float:
        return float(self.cloud.clock()["now"])

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.cloud.advance(seconds)

    @contextmanager
    def patched(self) -> Iterator[None]:
        real = time.sleep
        time.sleep = self.sleep  # type: ignore[assignment]
        try:
            yield
        finally:
            time.sleep = real


class _RealClock:
    now = staticmethod(time.monotonic)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(seconds)

    @contextmanager
    def patched(self) -> Iterator[None]:
        yield


class _Steps:
    def __init__(self, result: BaselineResult, now: Callable[[], float]) -> None:
        self.result = result
        self.now = now

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        t0 = self.now()
        try:
            yield
        finally:
            self.result.steps.append((name, self.now() - t0))


def run_baseline(
    *,
    vm_name: str,
    resource_group: str,
    gallery_rg: str,
    gallery_name: str,
    image_name: str,
    version: str,
    regions: list[str],
    export_account_url: str,
    export_container: str,
    time_scale: float,
    timeout_s: float = 600.0,
    clock: CloudClock | None = None,
) -> BaselineResult:
    """Capture ``vm_name`` sequentially; the environment holds the cloud's settings (see module doc).

    With ``clock`` (a virtual-time cloud) every wait advances the simulated clock and the steps and
    makespan are simulated seconds; ``time_scale`` is then 1.
    """
    timer: CloudClock | _RealClock = clock or _RealClock()
    with timer.patched():
        return _run(
            timer,
            vm_name=vm_name,
            resource_group=resource_group,
            gallery_rg=gallery_rg,
            gallery_name=gallery_name,
            image_name=image_name,
            version=version,
            regions=regions,
            export_account_url=export_account_url,
            export_container=export_container,
            time_scale=time_scale,
            timeout_s=timeout_s,
        )


def _run(
    timer: CloudClock | _RealClock,
    *,
    vm_name: str,
    resource_group: str,
    gallery_rg: str,
    gallery_name: str,
    image_name: str,
    version: str,
    regions: list[str],
    export_account_url: str,
    export_container: str,
    time_scale: float,
    timeout_s: float,
) -> BaselineResult:
    credential = DefaultAzureCredential()
    compute = ComputeManagementClient(
        credential, os.environ["AZURE_SUBSCRIPTION_ID"], base_url=os.environ["AZURE_ARM_ENDPOINT"]
    )
    result = BaselineResult(vm=vm_name, ok=False, makespan_s=0.0)
    s = _Steps(result, timer.now)
    copy_poll_s = SDK_DEFAULT_POLL_S * time_scale
    started = timer.now()
    wall_deadline = time.monotonic() + timeout_s
    try:
        with s.step("deallocate"):
            vm = compute.virtual_machines.get(resource_group, vm_name)
            compute.virtual_machines.begin_deallocate(resource_group, vm_name).result()
        with s.step("generalize"):
            compute.virtual_machines.generalize(resource_group, vm_name)

        disks: list[tuple[str, int | None, str]] = [("os", None, vm.storage_profile.os_disk.managed_disk.id)]
        disks += [(f"lun{d.lun}", d.lun, d.managed_disk.id) for d in vm.storage_profile.data_disks or []]
        container = BlobServiceClient(export_account_url, credential=credential).get_container_client(
            export_container
        )
        try:
            container.create_container()
        except ResourceExistsError:
            pass
        snapshots: list[tuple[str, int | None, str]] = []
        for key, lun, disk_id in disks:
            name = f"snap-{vm_name}-{key}"
            with s.step(f"snapshot {key}"):
                snap = compute.snapshots.begin_create_or_update(
                    resource_group,
                    name,
                    Snapshot(
                        location=vm.location,
                        sku=SnapshotSku(name="Standard_LRS"),
                        properties=SnapshotProperties(
                            creation_data=CreationData(create_option="Copy", source_resource_id=disk_id)
                        ),
                    ),
                ).result()
            snapshots.append((name, lun, str(snap.id)))
            with s.step(f"grant {key}"):
                sas = (
                    compute.snapshots.begin_grant_access(
                        resource_group, name, GrantAccessData(access="Read", duration_in_seconds=86400)
                    )
                    .result()
                    .access_sas
                ) or ""
            try:
                with s.step(f"copy {key}"):
                    dest = container.get_blob_client(f"{vm_name}/{key}.vhd")
                    dest.start_copy_from_url(sas)
                    while True:
                        copy = dest.get_blob_properties().copy
                        result.copy_polls += 1
                        if copy.status != "pending":
                            break
                        if time.monotonic() > wall_deadline:
                            raise RuntimeError(f"copy of {name} still pending after {timeout_s:.0f} s")
                        timer.sleep(copy_poll_s)
                    if copy.status != "success":
                        raise RuntimeError(f"copy of {name} ended {copy.status}: {copy.status_description}")
            finally:
                with s.step(f"revoke {key}"):
                    compute.snapshots.begin_revoke_access(resource_group, name).result()

        with s.step("gallery"):
            compute.galleries.begin_create_or_update(
                gallery_rg, gallery_name, Gallery(location=vm.location)
            ).result()
            compute.gallery_images.begin_create_or_update(
                gallery_rg,
                gallery_name,
                image_name,
                GalleryImage(
                    location=vm.location,
                    properties=GalleryImageProperties(
                        os_type="Linux",
                        os_state="Generalized",
                        hyper_v_generation="V2",
                        architecture="x64",
                        identifier=GalleryImageIdentifier(publisher="bench", offer="baseline", sku=vm_name),
                    ),
                ),
            ).result()
        with s.step("version"):
            os_snap = next(sid for _, lun, sid in snapshots if lun is None)
            compute.gallery_image_versions.begin_create_or_update(
                gallery_rg,
                gallery_name,
                image_name,
                version,
                GalleryImageVersion(
                    location=vm.location,
                    properties=GalleryImageVersionProperties(
                        publishing_profile=GalleryImageVersionPublishingProfile(
                            target_regions=[TargetRegion(name=r, regional_replica_count=1) for r in regions]
                        ),
                        storage_profile=GalleryImageVersionStorageProfile(
                            os_disk_image=GalleryOSDiskImage(source=GalleryDiskImageSource(id=os_snap)),
                            data_disk_images=[
                                GalleryDataDiskImage(lun=lun, source=GalleryDiskImageSource(id=sid))
                                for _, lun, sid in snapshots
                                if lun is not None
                            ],
                        ),
                    ),
                ),
            ).result()
        with s.step("delete snapshots"):
            for name, _, _ in snapshots:
                compute.snapshots.begin_delete(resource_group, name).result()
        result.ok = True
    except Exception as exc:  # the bench reports it; the message never holds the SAS (no URL in it)
        result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
    result.makespan_s = timer.now() - started
    return result


def _load_env(path: Path) -> None:
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            os.environ[key.strip()] = (shlex.split(value) or [""])[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__.splitlines()[0])
    ap.add_argument("--env", type=Path, default=Path(".azsim/env"), help="env file of `python -m azsim up`")
    ap.add_argument("--vm", default="vm-base")
    ap.add_argument("--resource-group", default="rg-build")
    ap.add_argument("--time-scale", type=float, default=1.0, help="the cloud's time scale (copy polling)")
    ns = ap.parse_args(argv)
    _load_env(ns.env)
    res = run_baseline(
        vm_name=ns.vm,
        resource_group=ns.resource_group,
        gallery_rg="rg-images",
        gallery_name="galBaseline",
        image_name=f"{ns.vm}-def",
        version="1.0.0",
        regions=["westeurope", "northeurope", "eastus2"],
        export_account_url=os.environ["AZSIM_STORAGE_STEXPORTS_URL"],
        export_container="vhds-baseline",
        time_scale=ns.time_scale,
    )
    for step, secs in res.steps:
        print(f"{step:20} {secs:8.2f} s")
    print(f"{'makespan':20} {res.makespan_s:8.2f} s  ok={res.ok} {res.error or ''}")
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
