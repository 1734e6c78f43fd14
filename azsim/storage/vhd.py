"""Fixed VHD images: the byte layout Azure uses for managed-disk exports.

A fixed VHD is the raw disk data followed by a 512-byte footer (cookie ``conectix``, big-endian
fields, one's-complement checksum), as laid out in Microsoft's "Virtual Hard Disk Image Format
Specification". Content is deterministic from a seed so copies can be checked byte for byte.
"""

from __future__ import annotations

import hashlib
import random
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

MIB = 1024 * 1024
FOOTER_SIZE = 512
COOKIE = b"conectix"
DISK_TYPE_FIXED = 2
# Footer timestamps count seconds from 2000-01-01 UTC; a fixed value keeps images reproducible.
_TIMESTAMP = 0x2D000000
# Struct of every footer field up to (not including) the 427 reserved bytes.
_FOOTER = struct.Struct(">8sIIQI4sI4sQQHBBII16sB")
assert _FOOTER.size == 85


class InvalidVhdError(ValueError):
    """The bytes are not a fixed VHD (bad cookie, checksum, type or size)."""


@dataclass(frozen=True)
class VhdFooter:
    cookie: bytes
    features: int
    format_version: int
    data_offset: int
    timestamp: int
    creator_app: bytes
    creator_version: int
    creator_host_os: bytes
    original_size: int
    current_size: int
    cylinders: int
    heads: int
    sectors_per_track: int
    disk_type: int
    checksum: int
    unique_id: uuid.UUID
    saved_state: int


def chs_geometry(size_bytes: int) -> tuple[int, int, int]:
    """Cylinders, heads, sectors per track for a disk of ``size_bytes`` (the VHD spec's algorithm)."""
    total = min(size_bytes // 512, 65535 * 16 * 255)
    if total >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = total // spt
    else:
        spt = 17
        cth = total // spt
        heads = max((cth + 1023) // 1024, 4)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = total // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = total // spt
    return cth // heads, heads, spt


def _checksum(footer_without_checksum: bytes) -> int:
    return (~sum(footer_without_checksum)) & 0xFFFFFFFF


def make_footer(size_bytes: int, seed: int) -> bytes:
    """The 512-byte fixed-VHD footer for ``size_bytes`` of data."""
    cylinders, heads, spt = chs_geometry(size_bytes)
    unique = hashlib.sha256(f"azsim-vhd:{seed}".encode()).digest()[:16]
    fields = [
        COOKIE,
        0x00000002,  # features: reserved bit always set
        0x00010000,  # file format version 1.0
        0xFFFFFFFFFFFFFFFF,  # data offset: none for fixed disks
        _TIMESTAMP,
        b"azsm",  # creator application
        0x000A0000,  # creator version
        b"Wi2k",  # creator host OS
        size_bytes,  # original size
        size_bytes,  # current size
        cylinders,
        heads,
        spt,
        DISK_TYPE_FIXED,
        0,  # checksum, filled in below
        unique,
        0,  # saved state
    ]
    raw = _FOOTER.pack(*fields) + bytes(FOOTER_SIZE - _FOOTER.size)
    fields[14] = _checksum(raw)
    return _FOOTER.pack(*fields) + bytes(FOOTER_SIZE - _FOOTER.size)


def parse_footer(footer: bytes) -> VhdFooter:
    """Parse and check a fixed-VHD footer; raise ``InvalidVhdError`` naming what is wrong."""
    if len(footer) != FOOTER_SIZE:
        raise InvalidVhdError(f"VHD footer must be {FOOTER_SIZE} bytes, got {len(footer)}")
    values = _FOOTER.unpack(footer[: _FOOTER.size])
    fields = list(values)
    fields[15] = uuid.UUID(bytes=values[15])
    parsed = VhdFooter(*fields)
    if parsed.cookie != COOKIE:
        raise InvalidVhdError(f"VHD footer cookie is {parsed.cookie!r}; expected {COOKIE!r}")
    zeroed = footer[:64] + bytes(4) + footer[68:]
    if _checksum(zeroed) != parsed.checksum:
        raise InvalidVhdError("VHD footer checksum does not match its contents")
    if parsed.disk_type != DISK_TYPE_FIXED:
        raise InvalidVhdError(f"VHD disk type is {parsed.disk_type}; expected {DISK_TYPE_FIXED} (fixed)")
    return parsed


def check_fixed_vhd(total_length: int, footer: bytes) -> VhdFooter:
    """Check a whole image: footer valid and current size == length - 512 (MiB-aligned, as Azure wants)."""
    parsed = parse_footer(footer)
    if parsed.current_size != total_length - FOOTER_SIZE:
        raise InvalidVhdError(
            f"VHD footer says {parsed.current_size} bytes of data but the image holds {total_length - FOOTER_SIZE}"
        )
    if parsed.current_size % MIB:
        raise InvalidVhdError(f"VHD data size {parsed.current_size} is not a whole number of MiB")
    return parsed


def data_chunks(content_mib: int, seed: int, chunk_mib: int = 4) -> Iterator[tuple[int, bytes]]:
    """``(offset, bytes)`` chunks of the deterministic disk data (``content_mib`` MiB in total)."""
    rng = random.Random(seed)
    offset = 0
    remaining = content_mib * MIB
    while remaining:
        n = min(remaining, chunk_mib * MIB)
        yield offset, rng.randbytes(n)
        offset += n
        remaining -= n


def fixed_vhd_bytes(content_mib: int, seed: int) -> bytes:
    """The whole image in memory (for tests and small disks)."""
    data = b"".join(chunk for _, chunk in data_chunks(content_mib, seed))
    return data + make_footer(len(data), seed)
