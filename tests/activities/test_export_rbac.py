"""check_export_target against storage data-plane RBAC (enforced by the local cloud's blob front).

The app's default identity holds Storage Blob Data Contributor on stexports; the world's "reader-only"
principal holds ARM Reader on the subscription, which reads containers but no blob data. The check
must tell the reader exactly what is missing before anything irreversible happens.
"""

from __future__ import annotations

import uuid
from typing import Any

from azure.identity import ManagedIdentityCredential
from azure.storage.blob import BlobServiceClient

from activities import preflight
from shared.contracts import ExportCheckResult
from tests.activities.activity_cloud import Calls, reader_identity

ROLE = "Storage Blob Data Contributor"
PERM = "Microsoft.Storage/storageAccounts/blobServices/containers"


def _check(call: Calls, url: str, container: str) -> ExportCheckResult:
    return ExportCheckResult.from_wire(
        call(preflight.check_export_target, {"accountUrl": url, "container": container})
    )


def _owner(cloud: Any) -> BlobServiceClient:
    """stexports as the app's default identity, whatever AZURE_CLIENT_ID says (the reader tests set it)."""
    return BlobServiceClient(cloud.storage_account_url("stexports"), credential=ManagedIdentityCredential())


def _blobs(cloud: Any, container: str) -> list[str]:
    return [b.name for b in _owner(cloud).get_container_client(container).list_blobs()]


def test_contributor_passes_and_leaves_no_probe(cloud: Any, call: Calls) -> None:
    url = cloud.storage_account_url("stexports")
    name = f"exp-{uuid.uuid4().hex[:8]}"
    ok = _check(call, url, name)
    assert (ok.reachable, ok.container_exists, ok.problem) == (True, True, None)
    assert _blobs(cloud, name) == []  # the probe blob was deleted again
    assert _check(call, url, name).problem is None  # and again, with the container now there


def test_reader_cannot_create_the_container(cloud: Any, call: Calls, as_reader: None) -> None:
    url = cloud.storage_account_url("stexports")
    name = f"exp-{uuid.uuid4().hex[:8]}"
    result = _check(call, url, name)
    assert result.problem is not None
    assert not result.container_exists
    problem = result.problem
    assert f"may not create the container {name} of storage account {url}" in problem
    assert "AuthorizationPermissionMismatch" in problem
    assert f"{PERM}/write" in problem
    assert f"grant the Function App's identity the role {ROLE}" in problem
    assert f"/blobServices/default/containers/{name}" in problem
    assert not _owner(cloud).get_container_client(name).exists()


def test_reader_cannot_write_into_an_existing_container(cloud: Any, call: Calls, as_reader: None) -> None:
    # Reader may read the container (ARM */read covers containers/read) but not write blobs into it.
    url = cloud.storage_account_url("stexports")
    name = f"exp-{uuid.uuid4().hex[:8]}"
    _owner(cloud).create_container(name)
    result = _check(call, url, name)
    assert result.reachable and result.container_exists
    assert result.problem is not None
    assert f"may not write blobs into the container {name} of storage account {url}" in result.problem
    assert f"it lacks the permission {PERM}/blobs/write" in result.problem
    assert ROLE in result.problem
    assert _blobs(cloud, name) == []  # nothing was written


def test_no_secret_in_what_the_checks_returned(cloud: Any, call: Calls) -> None:
    # Its own checks (a pass and both refusals), so the test stands alone.
    url = cloud.storage_account_url("stexports")
    start = len(call.texts)
    passed, fresh = f"exp-{uuid.uuid4().hex[:8]}", f"exp-{uuid.uuid4().hex[:8]}"
    assert _check(call, url, passed).problem is None
    with reader_identity():
        assert _check(call, url, passed).problem is not None  # may not write blobs
        assert _check(call, url, fresh).problem is not None  # may not create the container
    texts = "\n".join(call.texts[start:])
    assert len(call.texts) - start == 3 and "AuthorizationPermissionMismatch" in texts
    for secret_marker in ("sig=", "Bearer ", "eyJ"):
        assert secret_marker not in texts
