"""Pure rules of the non-VM sources: the VHD footer, the data-disk size limit, the definition's fit.

No I/O here: ``activities.sources`` reads the blobs and images and these functions judge them, each
problem an actionable sentence naming the resource, the rule and the fix.

The VHD rules (docs/azure-facts.md, "VHD sources"): Azure takes **fixed** VHDs only, as page blobs,
whose virtual size is a whole number of MiB; a fixed VHD is the disk data followed by a 512-byte
footer (cookie ``conectix``, disk type 2 = fixed, big-endian fields, one's-complement checksum), so
the blob is N MiB + 512 bytes. Which of these Azure checks when it builds a version, and its exact
error texts, are not documented: the texts below are our text.
"""

from __future__ import annotations

import struct

from activities import compat
from shared.contracts import DefinitionFacts, VmFacts

FOOTER_SIZE = 512
MIB = 1024 * 1024
COOKIE = b"conectix"
DISK_TYPE_FIXED = 2
_DISK_TYPES = {0: "none", 2: "fixed", 3: "dynamic", 4: "differencing"}
# The seed's limit (migrate a managed image to a gallery): a data disk "must not be larger than 1 TB".
MAX_DATA_DISK_GIB = 1024  # 1 TB, as azsim (version_sources.MAX_SOURCE_DISK_GIB) reads it
# How to make a fixed, MiB-aligned VHD of a disk image (qemu-img; Hyper-V's Convert-VHD works too).
CONVERT = (
    "qemu-img convert -O vpc -o subformat=fixed,force_size <image> <disk>.vhd (after "
    "qemu-img resize -f raw <image> <size rounded up to a whole MiB> for a raw image), or in Hyper-V "
    "Convert-VHD -VHDType Fixed; then upload it as a page blob (azcopy copy --blob-type PageBlob, or "
    "az storage blob upload --type page) and send its URI"
)


def vhd_problems(label: str, blob_type: str | None, length: int, footer: bytes) -> list[str]:
    """Why the blob ``label`` (``container/blob``) is no VHD Azure can make an image of, or []."""
    if blob_type and blob_type.lower() != "pageblob":
        # Azure's text for a disk from a block blob (IncorrectImageBlobType).
        return [
            f"blob {label}: Disk blobs can only be of type page blob. Blob {label} is of type "
            f"'{blob_type}'. Copy it as a page blob (azcopy copy --blob-type PageBlob) and send that URI"
        ]
    if length < FOOTER_SIZE or len(footer) < FOOTER_SIZE:
        return [f"blob {label} is {length} bytes, shorter than a VHD footer ({FOOTER_SIZE} bytes): {CONVERT}"]
    tail = footer[-FOOTER_SIZE:]
    if tail[:8] != COOKIE:
        return [
            f"blob {label} does not end with a VHD footer (cookie 'conectix' in its last 512 bytes): it "
            f"is not a VHD (a raw image, a VHDX or a VMDK?). Azure takes fixed VHDs only: {CONVERT}"
        ]
    problems: list[str] = []
    disk_type = struct.unpack(">I", tail[60:64])[0]
    if disk_type != DISK_TYPE_FIXED:
        kind = _DISK_TYPES.get(disk_type, f"type {disk_type}")
        problems.append(
            f"blob {label} is a {kind} VHD (footer disk type {disk_type}); Azure takes fixed VHDs only "
            f"(disk type {DISK_TYPE_FIXED}): {CONVERT}"
        )
    checksum = struct.unpack(">I", tail[64:68])[0]
    if (~sum(tail[:64] + bytes(4) + tail[68:])) & 0xFFFFFFFF != checksum:
        problems.append(
            f"blob {label}: its VHD footer's checksum does not match (a damaged footer): {CONVERT}"
        )
    data = length - FOOTER_SIZE
    if data % MIB:
        problems.append(
            f"blob {label} holds {data} bytes of disk data before its 512-byte footer, not a whole number "
            f"of MiB: Azure requires a VHD's virtual size aligned to 1 MiB (the blob must be N MiB + 512 "
            f"bytes; the next size is {(data // MIB + 1) * MIB + FOOTER_SIZE} bytes): {CONVERT}"
        )
    current = struct.unpack(">Q", tail[48:56])[0]
    if disk_type == DISK_TYPE_FIXED and current != data:
        problems.append(
            f"blob {label}: its VHD footer says {current} bytes of disk data but the blob holds {data} "
            f"before the footer (a truncated or padded upload): upload the VHD again, whole: {CONVERT}"
        )
    return problems


def data_disk_problem(source_label: str, lun: int, size_gib: int) -> str | None:
    """The seed's data-disk size limit for an image version's source, or None."""
    if size_gib <= MAX_DATA_DISK_GIB:
        return None
    return (
        f"{source_label}: the data disk at LUN {lun} is {size_gib} GiB, larger than the 1 TB a gallery "
        "image version's source data disk may be (Microsoft's migration guide): shrink or split that "
        "disk (or leave it out of the image) and make the image again"
    )


_FIX = "choose another definition name (the capture creates one that matches the source)"


def definition_problems(
    ref: str, d: DefinitionFacts, src: VmFacts, os_state: str, source_label: str
) -> list[str]:
    """Every way the existing definition ``ref`` (gallery/definition) cannot hold the source's image.

    ``src`` describes the source as the definition sees it (its OS type, generation, security type and
    architecture); ``source_label`` names it ("managed image legacy-web").
    """
    out: list[str] = []
    if d.hyper_v_generation.upper() != src.hyper_v_generation:
        gen = {"V1": "Gen1", "V2": "Gen2"}[src.hyper_v_generation]
        out.append(
            f"{source_label} is {gen} ({src.hyper_v_generation}) but definition {ref} is "
            f"{d.hyper_v_generation.upper()}: {_FIX}, or one that is {src.hyper_v_generation}"
        )
    if d.os_type.lower() != src.os_type.lower():
        out.append(f"{source_label} is {src.os_type} but definition {ref} is for {d.os_type}: {_FIX}")
    if d.os_state.lower() != os_state.lower():
        why = (
            "managed images are always generalized"
            if source_label.startswith("managed image")
            else f"the source is {os_state} (source.osState)"
        )
        out.append(
            f"definition {ref} holds {d.os_state or 'unknown-state'} images but {why}: {_FIX}"
            + ("" if source_label.startswith("managed image") else ", or send the source's real osState")
        )
    if d.security_type not in compat.SECURITY_ACCEPTS[src.security_type]:
        out.append(
            f"definition {ref} has SecurityType {d.security_type}, which does not take {source_label} "
            f"(an image without a VM guest state: TrustedLaunchSupported or no SecurityType does): {_FIX}"
        )
    if d.architecture.lower() != src.architecture.lower():
        out.append(
            f"{source_label} is {src.architecture} but definition {ref} is for {d.architecture}: {_FIX}"
        )
    return out
