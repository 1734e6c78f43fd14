"""The blob front: async copies observed as pending with advancing progress, then success or a fault.

Everything goes through the real ``azure-storage-blob`` client with a managed-identity bearer token
(``DefaultAzureCredential``), the way the app polls copies in Azure.
"""

from __future__ import annotations

import time
import uuid

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import DefaultAzureCredential
from azure.storage.blob import BlobClient, BlobServiceClient

from azsim.storage.vhd import fixed_vhd_bytes

DEADLINE_S = 15.0


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def dest_container(storage_env):
    service = BlobServiceClient(storage_env.customer_url, credential=DefaultAzureCredential())
    container = service.get_container_client(_name("exports"))
    container.create_container()
    return container


@pytest.fixture
def source_sas(storage_env):
    name = _name("snap")
    storage_env.disks.create_disk_blob(name, content_mib=2, seed=11)
    return name, storage_env.disks.grant_read(name, "grant", 600)


def _progress(props) -> tuple[int, int]:
    done, total = props.copy.progress.split("/")
    return int(done), int(total)


def _poll_until_not_pending(blob: BlobClient):
    seen = []
    deadline = time.monotonic() + DEADLINE_S
    while True:
        props = blob.get_blob_properties()
        seen.append(props)
        if props.copy.status != "pending":
            return props, seen
        assert time.monotonic() < deadline, "copy still pending after the deadline"
        time.sleep(0.05)


def test_copy_is_pending_with_advancing_progress_then_success(storage_env, dest_container, source_sas):
    storage_env.behaviour.seconds = 1.0
    _, sas = source_sas
    dest = dest_container.get_blob_client("os.vhd")
    started = dest.start_copy_from_url(sas)
    assert started["copy_status"] == "pending"

    final, seen = _poll_until_not_pending(dest)
    pending = [_progress(p) for p in seen if p.copy.status == "pending"]
    assert len(pending) >= 3
    assert all(p.copy.completion_time is None for p in seen[:-1])
    done = [d for d, _ in pending]
    assert done == sorted(done) and done[-1] > done[0], f"progress must advance: {done}"
    assert all(d < total for d, total in pending)
    assert final.copy.status == "success"
    assert final.copy.id == started["copy_id"]
    assert _progress(final) == (final.size, final.size)
    assert final.copy.completion_time is not None
    assert dest.download_blob().readall() == fixed_vhd_bytes(2, 11)


def test_injected_failure_ends_failed_with_a_description(storage_env, dest_container, source_sas):
    storage_env.behaviour.seconds = 0.4
    storage_env.behaviour.faults["bad.vhd"] = "fail"
    dest = dest_container.get_blob_client("bad.vhd")
    dest.start_copy_from_url(source_sas[1])
    final, _ = _poll_until_not_pending(dest)
    assert final.copy.status == "failed"
    assert final.copy.status_description and final.copy.status_description.startswith("500 ")
    assert final.size == 0
    done, total = _progress(final)
    assert 0 < done < total
    assert dest.download_blob().readall() == b""


def test_injected_abort_ends_aborted(storage_env, dest_container, source_sas):
    storage_env.behaviour.faults["ab.vhd"] = "abort"  # also with copy_seconds == 0
    dest = dest_container.get_blob_client("ab.vhd")
    assert dest.start_copy_from_url(source_sas[1])["copy_status"] == "pending"
    final, _ = _poll_until_not_pending(dest)
    assert final.copy.status == "aborted"
    assert final.size == 0


def test_injected_stall_never_completes(storage_env, dest_container, source_sas):
    storage_env.behaviour.seconds = 0.4
    storage_env.behaviour.faults["stuck.vhd"] = "stall"
    dest = dest_container.get_blob_client("stuck.vhd")
    dest.start_copy_from_url(source_sas[1])
    seen = []
    until = time.monotonic() + 1.0  # well past the simulated duration
    while time.monotonic() < until:
        seen.append(dest.get_blob_properties())
        time.sleep(0.05)
    assert {p.copy.status for p in seen} == {"pending"}
    last = [_progress(p)[0] for p in seen[-5:]]
    assert len(set(last)) == 1 and 0 < last[0] < _progress(seen[-1])[1], f"progress must freeze: {last}"


def test_abort_copy_on_a_pending_copy(storage_env, dest_container, source_sas):
    storage_env.behaviour.seconds = 30.0
    dest = dest_container.get_blob_client("abort-me.vhd")
    copy_id = dest.start_copy_from_url(source_sas[1])["copy_id"]
    assert dest.get_blob_properties().copy.status == "pending"

    with pytest.raises(HttpResponseError) as mismatch:
        dest.abort_copy(str(uuid.uuid4()))
    assert mismatch.value.error_code == "CopyIdMismatch"  # type: ignore[attr-defined]  # set by azure-storage

    dest.abort_copy(copy_id)  # 204
    props = dest.get_blob_properties()
    assert props.copy.status == "aborted"
    assert props.size == 0
    with pytest.raises(HttpResponseError) as again:
        dest.abort_copy(copy_id)
    assert again.value.error_code == "NoPendingCopyOperation"  # type: ignore[attr-defined]  # set by azure-storage


def test_abort_without_credentials_is_refused(storage_env, dest_container, source_sas):
    storage_env.behaviour.seconds = 30.0
    dest = dest_container.get_blob_client("guarded.vhd")
    copy_id = dest.start_copy_from_url(source_sas[1])["copy_id"]
    anonymous = BlobClient(storage_env.customer_url, dest_container.container_name, "guarded.vhd")
    with pytest.raises(HttpResponseError):
        anonymous.abort_copy(copy_id)
    assert dest.get_blob_properties().copy.status == "pending"


def test_copy_fails_when_the_source_sas_is_revoked_while_pending(storage_env, dest_container, source_sas):
    storage_env.behaviour.seconds = 30.0
    name, sas = source_sas
    dest = dest_container.get_blob_client("revoked.vhd")
    dest.start_copy_from_url(sas)
    assert dest.get_blob_properties().copy.status == "pending"
    storage_env.disks.revoke(name, "grant")
    final, _ = _poll_until_not_pending(dest)
    assert final.copy.status == "failed"
    assert "CannotVerifyCopySource" in (final.copy.status_description or "")
    assert "sig=" not in (final.copy.status_description or "")


def test_front_forwards_shared_key_requests_unchanged(storage_env):
    """Shared Key signs path, query and x-ms headers: the front must pass them through untouched."""
    from tests.azsim.azsim_test_names import CUSTOMER

    service = BlobServiceClient(
        storage_env.customer_url,
        credential={"account_name": CUSTOMER, "account_key": storage_env.keys[CUSTOMER]},
    )
    container = service.get_container_client(_name("keyed"))
    container.create_container(metadata={"purpose": "test"})
    payload = b"x" * 70_000
    container.upload_blob("a/b c.txt", payload)
    assert [b.name for b in container.list_blobs()] == ["a/b c.txt"]
    assert container.download_blob("a/b c.txt").readall() == payload
    assert container.get_container_properties().metadata == {"purpose": "test"}
    container.delete_container()
