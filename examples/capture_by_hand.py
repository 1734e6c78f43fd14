"""Capture a VM into a Compute Gallery image version by hand, with the Azure SDKs only.

The same calls work against Azure and against the local cloud; only the settings differ. Against
the local cloud:

    python -m azsim up --world examples/world.json --time-scale 0.01 &
    python examples/capture_by_hand.py            # reads .azsim/env (or --env FILE, or the environment)

Steps: deallocate -> generalize -> snapshot every disk -> grant read access (SAS) -> copy each VHD
into a storage account and poll the copy -> revoke access -> gallery + image definition -> image
version from the snapshots in three regions -> wait for replication -> print the version.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

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
    GalleryImageVersion,
    GalleryImageVersionPublishingProfile,
    GalleryImageVersionStorageProfile,
    GalleryOSDiskImage,
    GrantAccessData,
    Snapshot,
    SnapshotSku,
    TargetRegion,
)
from azure.storage.blob import BlobServiceClient

VM_RG, VM_NAME = "rg-build", "vm-web"
GALLERY_RG, GALLERY = "rg-images", "gal_byhand"
IMAGE = "web-linux"
REGIONS = ["westeurope", "northeurope", "uksouth"]
EXPORT_ACCOUNT, EXPORT_CONTAINER = "stexports", "vhds"
DEADLINE_S = 600


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def no_query(url: str) -> str:
    """A URL without its query string: SAS signatures never go to the console."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def text(value: object) -> str:
    """An SDK enum's wire value (``Completed``), or the value itself."""
    return str(getattr(value, "value", value))


def load_env(path: Path | None) -> None:
    """Apply the local cloud's env file, if there is one; otherwise use the environment as it is."""
    path = path or Path(os.environ.get("AZSIM_ENV", ".azsim/env"))
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            os.environ[key.strip()] = (shlex.split(value) or [""])[0]


def account_url(account: str) -> str:
    """The storage account's blob endpoint: the local cloud's setting, else Azure's usual host name."""
    return os.environ.get(f"AZSIM_STORAGE_{account.upper()}_URL", f"https://{account}.blob.core.windows.net")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", type=Path, help="env file written by `python -m azsim up`")
    args = parser.parse_args()
    load_env(args.env)

    credential = DefaultAzureCredential()
    subscription = os.environ["AZURE_SUBSCRIPTION_ID"]
    arm = os.environ.get("AZURE_ARM_ENDPOINT", "https://management.azure.com")
    compute = ComputeManagementClient(credential, subscription, base_url=arm)
    suffix = time.strftime("%H%M%S")

    # 1. Stop the VM and mark it generalized (the guest was prepared beforehand).
    vm = compute.virtual_machines.get(VM_RG, VM_NAME)
    log(f"VM {vm.name} in {vm.location}: deallocating")
    compute.virtual_machines.begin_deallocate(VM_RG, VM_NAME).result()
    compute.virtual_machines.generalize(VM_RG, VM_NAME)
    log("VM deallocated and generalized")

    # 2. Snapshot the OS disk and every data disk.
    disks = [("os", None, vm.storage_profile.os_disk.managed_disk.id)]
    disks += [(f"lun{d.lun}", d.lun, d.managed_disk.id) for d in vm.storage_profile.data_disks or []]
    snapshots: dict[str, tuple[int | None, str]] = {}
    for label, lun, disk_id in disks:
        name = f"snap-{VM_NAME}-{label}-{suffix}"
        snap = compute.snapshots.begin_create_or_update(
            VM_RG,
            name,
            Snapshot(
                location=vm.location,
                sku=SnapshotSku(name="Standard_LRS"),
                incremental=True,
                creation_data=CreationData(create_option="Copy", source_resource_id=disk_id),
            ),
        ).result()
        snapshots[name] = (lun, snap.id)
        log(f"snapshot {name}: {text(snap.provisioning_state)}")

    # 3. Export each snapshot: grant read access, copy the VHD into the storage account, revoke.
    blobs = BlobServiceClient(account_url(EXPORT_ACCOUNT), credential=credential)
    container = blobs.get_container_client(EXPORT_CONTAINER)
    try:
        container.create_container()
    except ResourceExistsError:
        pass
    for name in snapshots:
        sas = (
            compute.snapshots.begin_grant_access(
                VM_RG, name, GrantAccessData(access="Read", duration_in_seconds=3600)
            )
            .result()
            .access_sas
        )
        log(f"{name}: read access granted ({no_query(sas)})")
        try:
            dest = container.get_blob_client(f"{name}.vhd")
            copy_id = dest.start_copy_from_url(sas)["copy_id"]
            deadline = time.monotonic() + DEADLINE_S
            while True:
                copy = dest.get_blob_properties().copy
                if copy.status != "pending":
                    break
                log(f"  copy {copy_id[:8]}: {copy.status} {copy.progress}")
                if time.monotonic() > deadline:
                    dest.abort_copy(copy_id)
                    raise SystemExit(f"copy of {name} did not finish within {DEADLINE_S} s; aborted")
                time.sleep(0.5)
            if copy.status != "success":
                raise SystemExit(f"copy of {name} ended {copy.status}: {copy.status_description}")
            log(f"  copied to {no_query(dest.url)} ({copy.progress} bytes)")
        finally:
            compute.snapshots.begin_revoke_access(VM_RG, name).result()
            log(f"{name}: access revoked")

    # 4. Gallery and image definition (matching the VM: Linux, generalized, Gen2, x64).
    gallery = compute.galleries.begin_create_or_update(
        GALLERY_RG, GALLERY, Gallery(location=vm.location, description="captured by hand")
    ).result()
    image = compute.gallery_images.begin_create_or_update(
        GALLERY_RG,
        GALLERY,
        IMAGE,
        GalleryImage(
            location=vm.location,
            os_type="Linux",
            os_state="Generalized",
            hyper_v_generation="V2",
            architecture="x64",
            identifier=GalleryImageIdentifier(publisher="contoso", offer="web", sku="ubuntu-22_04"),
        ),
    ).result()
    log(f"gallery {gallery.name}, image definition {image.name}: ready")

    # 5. Image version from the snapshots, replicated to three regions.
    os_snap = next(snap_id for lun, snap_id in snapshots.values() if lun is None)
    data_snaps = [(lun, snap_id) for lun, snap_id in snapshots.values() if lun is not None]
    version_name = f"1.0.{int(time.time()) % 1_000_000}"
    compute.gallery_image_versions.begin_create_or_update(
        GALLERY_RG,
        GALLERY,
        IMAGE,
        version_name,
        GalleryImageVersion(
            location=vm.location,
            publishing_profile=GalleryImageVersionPublishingProfile(
                target_regions=[TargetRegion(name=region, regional_replica_count=1) for region in REGIONS]
            ),
            storage_profile=GalleryImageVersionStorageProfile(
                os_disk_image=GalleryOSDiskImage(source=GalleryDiskImageSource(id=os_snap)),
                data_disk_images=[
                    GalleryDataDiskImage(lun=lun, source=GalleryDiskImageSource(id=snap_id))
                    for lun, snap_id in data_snaps
                ],
            ),
        ),
    ).result()
    log(f"image version {version_name}: created, waiting for replication")

    # 6. Wait until every target region reports Completed.
    deadline = time.monotonic() + DEADLINE_S
    while True:
        version = compute.gallery_image_versions.get(
            GALLERY_RG, GALLERY, IMAGE, version_name, expand="ReplicationStatus"
        )
        summary = version.replication_status.summary or []
        states = ", ".join(f"{s.region} {text(s.state)} {s.progress}%" for s in summary)
        log(f"  replication {text(version.replication_status.aggregated_state)}: {states}")
        if summary and all(s.state == "Completed" for s in summary):
            break
        if any(s.state == "Failed" for s in summary):
            raise SystemExit(f"replication failed: {[(s.region, s.details) for s in summary]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"replication not complete within {DEADLINE_S} s")
        time.sleep(1.0)

    print(f"\nImage version {version.id}")
    print(f"  provisioningState: {text(version.provisioning_state)}")
    for s in summary:
        print(f"  {s.region:<14} {text(s.state)} ({s.progress}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
