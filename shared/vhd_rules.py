"""Marketplace's VHD rules that a file can be checked for, as pure functions of what the Blob service says.

A VHD handed to Partner Center (the legacy SAS-URI route) must be a page blob holding a **fixed** VHD
(the raw disk followed by a 512-byte footer with cookie ``conectix``), its virtual size a whole number of
MiB, and the disk within Marketplace's size range: OS disk 30-1023 GB on Linux, 30-250 GB on Windows, a
data disk at most 1023 GB (Microsoft's 2020 certification page; the current bounds are unverified, see
docs/azure-facts.md). Each failed rule is one sentence naming the rule and the fix.

The size range is checked against the disk's size as ARM reports it (in Azure an exported VHD's virtual
size is the disk's size; azsim's VHDs hold only a few MiB of real bytes, so the footer's size would not do).
"""

from __future__ import annotations

import struct

MIB = 1024 * 1024
FOOTER_SIZE = 512
COOKIE = b"conectix"
_DISK_TYPES = {2: "fixed", 3: "dynamic", 4: "differencing"}
OS_DISK_GB = {"Linux": (30, 1023), "Windows": (30, 250)}
DATA_DISK_MAX_GB = 1023


def _checksum_ok(footer: bytes) -> bool:
    stored = struct.unpack(">I", footer[64:68])[0]
    return (~sum(footer[:64] + bytes(4) + footer[68:])) & 0xFFFFFFFF == stored


def footer_problems(blob_type: str, length: int, footer: bytes) -> tuple[int | None, list[str]]:
    """The VHD's virtual size (from its footer) and every file rule it breaks."""
    problems: list[str] = []
    if blob_type.lower() != "pageblob":
        problems.append(
            f"page blob: it is a {blob_type}; copy it again as a page blob (azcopy --blob-type PageBlob)"
        )
    if length < FOOTER_SIZE or len(footer) != FOOTER_SIZE or footer[:8] != COOKIE:
        problems.append(
            "VHD footer: the last 512 bytes are no VHD footer (cookie 'conectix'); export the disk as a VHD "
            "(fileFormat VHD), not as raw or VHDX"
        )
        return None, problems
    if not _checksum_ok(footer):
        problems.append("VHD footer: its checksum does not match; export the disk again")
    disk_type = struct.unpack(">I", footer[60:64])[0]
    if disk_type != 2:
        kind = _DISK_TYPES.get(disk_type, f"type {disk_type}")
        problems.append(
            f"fixed VHD: it is a {kind} VHD; convert it to a fixed VHD (Convert-VHD -VHDType Fixed, or "
            "qemu-img convert -O vpc -o subformat=fixed,force_size)"
        )
    size = struct.unpack(">Q", footer[48:56])[0]
    if disk_type == 2 and size != length - FOOTER_SIZE:
        problems.append(
            f"fixed VHD: the footer says {size} bytes of data but the blob holds {length - FOOTER_SIZE}; "
            "export the disk again"
        )
    if size % MIB:
        whole = -(-size // MIB)
        problems.append(
            f"1 MiB alignment: the virtual size {size} bytes is not a whole number of MiB; resize the image "
            f"to {whole} MiB ({whole * MIB} bytes) before converting it to a fixed VHD (qemu-img resize, "
            "then qemu-img convert with force_size)"
        )
    return size, problems


def size_problems(os_disk: bool, os_type: str | None, size_gb: int | None) -> list[str]:
    """The Marketplace size range of the disk (OS disk by OS type; data disks at most 1023 GB)."""
    if size_gb is None:
        return []
    if os_disk:
        low, high = OS_DISK_GB.get(os_type or "Linux", OS_DISK_GB["Linux"])
        if not low <= size_gb <= high:
            return [
                f"OS disk size: {size_gb} GB is outside Marketplace's {low}-{high} GB for {os_type or 'Linux'} "
                f"OS disks; resize the disk (and its partitions) to {low}-{high} GB and capture again"
            ]
        return []
    if size_gb > DATA_DISK_MAX_GB:
        return [
            f"data disk size: {size_gb} GB is more than Marketplace's {DATA_DISK_MAX_GB} GB; use smaller data "
            "disks"
        ]
    return []
