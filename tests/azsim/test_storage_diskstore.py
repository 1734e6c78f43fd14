"""Managed-disk bytes in Azurite: fixed VHD content, grants (SAS), revocation, copies — via the real SDK."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobServiceClient

from azsim.storage.diskstore import container_for
from azsim.storage.vhd import (
    FOOTER_SIZE,
    MIB,
    InvalidVhdError,
    check_fixed_vhd,
    chs_geometry,
    fixed_vhd_bytes,
    make_footer,
    parse_footer,
)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_disk_blob_is_a_valid_fixed_vhd(storage_env):
    name = _name("disk")
    length = storage_env.disks.create_disk_blob(name, content_mib=3, seed=42)
    assert length == 3 * MIB + FOOTER_SIZE

    url = storage_env.disks.grant_read(name, "read1", 600)
    blob = BlobClient.from_blob_url(url)
    props = blob.get_blob_properties()
    assert props.blob_type == "PageBlob"
    assert props.size == length
    data = blob.download_blob().readall()
    footer = check_fixed_vhd(len(data), data[-FOOTER_SIZE:])
    assert footer.cookie == b"conectix"
    assert footer.current_size == footer.original_size == 3 * MIB
    assert (footer.cylinders, footer.heads, footer.sectors_per_track) == chs_geometry(3 * MIB)
    assert data == fixed_vhd_bytes(3, 42), "content must be deterministic from the seed"
    assert fixed_vhd_bytes(3, 43)[:MIB] != data[:MIB]


def test_footer_checks_reject_broken_images():
    footer = make_footer(MIB, seed=1)
    parse_footer(footer)
    with pytest.raises(InvalidVhdError, match="cookie"):
        parse_footer(b"notavhd!" + footer[8:])
    corrupted = bytearray(footer)
    corrupted[50] ^= 0xFF  # change current size without fixing the checksum
    with pytest.raises(InvalidVhdError, match="checksum"):
        parse_footer(bytes(corrupted))
    with pytest.raises(InvalidVhdError, match="holds"):
        check_fixed_vhd(2 * MIB + FOOTER_SIZE, footer)
    # The VHD spec's worked limit: disks above ~127 GiB use 255 sectors per track and 16 heads.
    assert chs_geometry(200 * 1024**3)[1:] == (16, 255)


def test_copy_blob_makes_an_identical_disk(storage_env):
    src, dst = _name("disk"), _name("snap")
    storage_env.disks.create_disk_blob(src, content_mib=1, seed=7)
    storage_env.disks.copy_blob(src, dst)
    url = storage_env.disks.grant_read(dst, "g", 600)
    assert BlobClient.from_blob_url(url).download_blob().readall() == fixed_vhd_bytes(1, 7)
    storage_env.disks.delete_blob(dst)
    storage_env.disks.delete_blob(dst)  # deleting a missing blob is not an error
    with pytest.raises(RuntimeError, match="does not exist"):
        storage_env.disks.copy_blob(dst, _name("x"))


def test_sas_copy_into_a_storage_account_copies_the_bytes(storage_env, tmp_path):
    from azure.identity import DefaultAzureCredential

    name = _name("snap")
    storage_env.disks.create_disk_blob(name, content_mib=2, seed=9)
    sas = storage_env.disks.grant_read(name, "copy", 600)
    service = BlobServiceClient(storage_env.customer_url, credential=DefaultAzureCredential())
    container = service.get_container_client(_name("exports"))
    container.create_container()
    dest = container.get_blob_client("os.vhd")
    result = dest.start_copy_from_url(sas)
    assert result["copy_status"] == "success"  # copy_seconds == 0: Azurite's instant copy shows through
    props = dest.get_blob_properties()
    assert props.copy.status == "success"
    assert props.copy.progress == f"{props.size}/{props.size}"
    assert props.blob_type == "PageBlob"
    assert dest.download_blob().readall() == fixed_vhd_bytes(2, 9)


def test_sas_is_refused_after_revoke(storage_env):
    from azure.identity import DefaultAzureCredential

    name = _name("snap")
    storage_env.disks.create_disk_blob(name, content_mib=1, seed=3)
    sas_a = storage_env.disks.grant_read(name, "access-a", 600)
    sas_b = storage_env.disks.grant_read(name, "access-b", 600)
    assert "sig=" in sas_a and f"/{container_for(name)}/" in sas_a
    BlobClient.from_blob_url(sas_a).get_blob_properties()

    storage_env.disks.revoke(name, "access-a")
    with pytest.raises(HttpResponseError) as err:
        BlobClient.from_blob_url(sas_a).download_blob().readall()
    assert err.value.status_code == 403
    # Other grants on the same disk are untouched.
    assert BlobClient.from_blob_url(sas_b).get_blob_properties().size == MIB + FOOTER_SIZE

    # A copy from the revoked SAS is refused by Azurite at the start.
    service = BlobServiceClient(storage_env.customer_url, credential=DefaultAzureCredential())
    container = service.get_container_client(_name("exports"))
    container.create_container()
    with pytest.raises((HttpResponseError, ResourceNotFoundError)) as copy_err:
        container.get_blob_client("os.vhd").start_copy_from_url(sas_a)
    assert copy_err.value.error_code == "CannotVerifyCopySource"  # type: ignore[attr-defined]  # set by azure-storage
    storage_env.disks.revoke(name, "never-granted")  # revoking an unknown access is a no-op


def test_a_tampered_sas_is_refused(storage_env):
    name = _name("snap")
    storage_env.disks.create_disk_blob(name, content_mib=1, seed=3)
    sas = storage_env.disks.grant_read(name, "g", 600)
    tampered = sas.replace("sp=r", "sp=rw") if "sp=r" in sas else sas.replace("si=g", "si=h")
    with pytest.raises(HttpResponseError) as err:
        BlobClient.from_blob_url(tampered).get_blob_properties()
    assert err.value.status_code == 403
