"""Storage data-plane RBAC at the blob front, through the real azure-storage-blob client.

The world is examples/world.json plus one principal holding Storage Blob Data Reader on a single
container of stexports, so container-scoped assignments are covered too. The default identity has
Storage Blob Data Contributor on stexports; "reader-only" has ARM Reader on the subscription, which
lets it read containers (an action, ``*/read``) but no blob data (data actions).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

from azsim.storage.rbac import (
    BLOBS_READ,
    BLOBS_WRITE,
    CONTAINERS_READ,
    CONTAINERS_WRITE,
    PERMISSION_MISMATCH_MESSAGE,
    Permission,
    required_permission,
)
from azsim.testing import DEFAULT_WORLD, CloudEnv, local_cloud

READER_CLIENT_ID = "bf7fb5c3-5737-5943-89d1-a507ba0acb14"  # "reader-only" in examples/world.json
CONTAINER_READER_CLIENT_ID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
SHARED = "shared"  # the container the container-scoped reader may read
ACCOUNT = "stexports"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudEnv]:
    world = json.loads(DEFAULT_WORLD.read_text())
    sub = world["subscriptions"][0]["id"]
    world["principals"].append(
        {
            "objectId": "6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d",
            "displayName": "container-reader",
            "clientId": CONTAINER_READER_CLIENT_ID,
            "kind": "managedIdentity",
        }
    )
    world["roleAssignments"].append(
        {
            "principal": "container-reader",
            "roleDefinitionName": "Storage Blob Data Reader",
            "scope": f"/subscriptions/{sub}/resourceGroups/rg-storage/providers/Microsoft.Storage/"
            f"storageAccounts/{ACCOUNT}/blobServices/default/containers/{SHARED}",
        }
    )
    root = tmp_path_factory.mktemp("azsim-storage-rbac")
    path = root / "world.json"
    path.write_text(json.dumps(world))
    with local_cloud(root / "wd", world=path, time_scale=0) as env, env.apply():
        yield env


def _client(cloud: CloudEnv, client_id: str | None = None, *, managed: bool = False) -> BlobServiceClient:
    credential: Any
    if managed:
        credential = ManagedIdentityCredential(client_id=client_id)
    else:
        # DefaultAzureCredential picks the managed identity; AZURE_CLIENT_ID (its client id) selects one.
        with pytest.MonkeyPatch.context() as mp:
            if client_id:
                mp.setenv("AZURE_CLIENT_ID", client_id)
            else:
                mp.delenv("AZURE_CLIENT_ID", raising=False)
            credential = DefaultAzureCredential()
    return BlobServiceClient(cloud.storage_account_url(ACCOUNT), credential=credential, retry_total=0)


def _key_client(cloud: CloudEnv) -> BlobServiceClient:
    world = json.loads(DEFAULT_WORLD.read_text())
    key = next(a["azuriteKey"] for a in world["storageAccounts"] if a["name"] == ACCOUNT)
    return BlobServiceClient(
        cloud.storage_account_url(ACCOUNT), credential={"account_name": ACCOUNT, "account_key": key}
    )


def _assert_mismatch(exc: pytest.ExceptionInfo[HttpResponseError]) -> None:
    assert exc.value.status_code == 403
    assert exc.value.error_code == "AuthorizationPermissionMismatch"  # type: ignore[attr-defined]  # set by azure-storage
    assert PERMISSION_MISMATCH_MESSAGE in str(exc.value)


def _new(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_contributor_creates_container_uploads_and_copies(cloud: CloudEnv) -> None:
    svc = _client(cloud)
    container = svc.create_container(_new("contrib"))
    container.upload_blob("src.bin", b"x" * 4096)
    # Copy with a SAS source (as the export does), into a blob written with the bearer token.
    sas = generate_blob_sas(
        ACCOUNT,
        container.container_name,
        "src.bin",
        account_key=_key_client(cloud).credential.account_key,
        permission=BlobSasPermissions(read=True),
        expiry=datetime.now(UTC) + timedelta(minutes=10),
    )
    dst = container.get_blob_client("dst.bin")
    dst.start_copy_from_url(f"{container.get_blob_client('src.bin').url}?{sas}")
    assert dst.get_blob_properties().copy.status == "success"
    assert dst.download_blob().readall() == b"x" * 4096
    assert sorted(b.name for b in container.list_blobs()) == ["dst.bin", "src.bin"]
    dst.delete_blob()
    container.delete_container()


@pytest.mark.parametrize(
    "managed", [False, True], ids=["DefaultAzureCredential", "ManagedIdentityCredential"]
)
def test_reader_only_is_refused_container_create_and_blob_data(cloud: CloudEnv, managed: bool) -> None:
    existing = _client(cloud).create_container(_new("existing"))
    existing.upload_blob("data.bin", b"payload")
    reader = _client(cloud, READER_CLIENT_ID, managed=managed)

    with pytest.raises(HttpResponseError) as exc:
        reader.create_container(_new("denied"))
    _assert_mismatch(exc)
    theirs = reader.get_container_client(existing.container_name)
    with pytest.raises(HttpResponseError) as exc:
        theirs.upload_blob("new.bin", b"nope")
    _assert_mismatch(exc)
    with pytest.raises(HttpResponseError) as exc:
        theirs.get_blob_client("data.bin").download_blob().readall()
    _assert_mismatch(exc)
    with pytest.raises(HttpResponseError) as exc:
        list(theirs.list_blobs())
    _assert_mismatch(exc)
    with pytest.raises(HttpResponseError) as exc:  # HEAD: the error code comes in a header only
        theirs.get_blob_client("data.bin").get_blob_properties()
    _assert_mismatch_head(exc)
    # ARM Reader (*/read) covers the container-read action: properties and container listing work.
    assert theirs.get_container_properties().name == existing.container_name
    assert existing.container_name in {c.name for c in reader.list_containers()}
    # Nothing the refused requests tried reached Azurite.
    assert [b.name for b in existing.list_blobs()] == ["data.bin"]


def _assert_mismatch_head(exc: pytest.ExceptionInfo[HttpResponseError]) -> None:
    assert exc.value.status_code == 403
    assert exc.value.error_code == "AuthorizationPermissionMismatch"  # type: ignore[attr-defined]  # set by azure-storage


def test_shared_key_and_sas_are_not_role_checked(cloud: CloudEnv) -> None:
    keyed = _key_client(cloud)
    container = keyed.create_container(_new("keyed"))
    container.upload_blob("k.bin", b"k")
    sas = generate_blob_sas(
        ACCOUNT,
        container.container_name,
        "k.bin",
        account_key=keyed.credential.account_key,
        permission=BlobSasPermissions(read=True),
        expiry=datetime.now(UTC) + timedelta(minutes=10),
    )
    from azure.storage.blob import BlobClient

    with BlobClient.from_blob_url(f"{container.get_blob_client('k.bin').url}?{sas}") as by_sas:
        assert by_sas.download_blob().readall() == b"k"


def test_container_scoped_reader_reads_only_its_container(cloud: CloudEnv) -> None:
    owner = _client(cloud)
    shared = owner.get_container_client(SHARED)
    if not shared.exists():
        shared.create_container()
    shared.upload_blob("r.bin", b"readable", overwrite=True)
    other = owner.create_container(_new("other"))
    other.upload_blob("r.bin", b"hidden")

    reader = _client(cloud, CONTAINER_READER_CLIENT_ID)
    assert reader.get_blob_client(SHARED, "r.bin").download_blob().readall() == b"readable"
    assert [b.name for b in reader.get_container_client(SHARED).list_blobs()] == ["r.bin"]
    with pytest.raises(HttpResponseError) as exc:
        reader.get_blob_client(SHARED, "w.bin").upload_blob(b"no")
    _assert_mismatch(exc)
    with pytest.raises(HttpResponseError) as exc:
        reader.get_blob_client(other.container_name, "r.bin").download_blob().readall()
    _assert_mismatch(exc)
    with pytest.raises(HttpResponseError) as exc:  # the role is on one container, not the account
        list(reader.list_containers())
    _assert_mismatch(exc)


@pytest.mark.parametrize(
    ("method", "container", "blob", "query", "expected"),
    [
        ("GET", None, None, {"comp": "list"}, Permission(CONTAINERS_READ, False)),
        ("PUT", "c", None, {"restype": "container"}, Permission(CONTAINERS_WRITE, False)),
        ("HEAD", "c", None, {"restype": "container"}, Permission(CONTAINERS_READ, False)),
        ("GET", "c", None, {"restype": "container", "comp": "list"}, Permission(BLOBS_READ, True)),
        ("PUT", "c", "b", {}, Permission(BLOBS_WRITE, True)),
        ("PUT", "c", "b", {"comp": "copy"}, Permission(BLOBS_WRITE, True)),
        ("HEAD", "c", "b", {}, Permission(BLOBS_READ, True)),
        ("OPTIONS", "c", "b", {}, None),
        ("PUT", "c", None, {"restype": "container", "comp": "acl"}, None),
    ],
)
def test_required_permission(
    method: str, container: str | None, blob: str | None, query: dict[str, str], expected: Permission | None
) -> None:
    assert required_permission(method, container, blob, query) == expected
