"""User delegation keys and user-delegation SAS at the blob front, through the real azure-storage-blob client.

Azurite issues the keys and checks the SAS signatures; the front adds Azure's seven-day limit on a key
(``400 InvalidXmlNodeValue``) and the rule that a user-delegation SAS grants only what its delegator holds
(``azsim.storage.delegation``). The world is examples/world.json plus a principal holding Storage Blob
Data Reader on one container of stexports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import DefaultAzureCredential
from azure.storage.blob import (
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    generate_container_sas,
)

from azsim.storage.delegation import INVALID_XML_NODE, key_expiry_refusal
from azsim.testing import DEFAULT_WORLD, CloudEnv, local_cloud

CONTAINER_READER_CLIENT_ID = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
ACCOUNT = "stexports"
SHARED = "delegated"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudEnv]:
    world = json.loads(DEFAULT_WORLD.read_text())
    sub = world["subscriptions"][0]["id"]
    world["principals"].append(
        {
            "objectId": "7b6c5d4e-3f2a-4b1c-8d9e-0f1a2b3c4d5e",
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
    # Azure authorises Get User Delegation Key at the account (like the built-in Storage Blob Delegator).
    world.setdefault("customRoles", []).append(
        {
            "name": "Delegator",
            "actions": ["Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action"],
        }
    )
    world["roleAssignments"].append(
        {
            "principal": "container-reader",
            "roleDefinitionName": "Delegator",
            "scope": f"/subscriptions/{sub}/resourceGroups/rg-storage/providers/Microsoft.Storage/"
            f"storageAccounts/{ACCOUNT}",
        }
    )
    root = tmp_path_factory.mktemp("azsim-delegation")
    path = root / "world.json"
    path.write_text(json.dumps(world))
    with local_cloud(root / "wd", world=path, time_scale=0) as env, env.apply():
        yield env


def _client(cloud: CloudEnv, client_id: str | None = None) -> BlobServiceClient:
    with pytest.MonkeyPatch.context() as mp:
        if client_id:
            mp.setenv("AZURE_CLIENT_ID", client_id)
        else:
            mp.delenv("AZURE_CLIENT_ID", raising=False)
        credential = DefaultAzureCredential()
    return BlobServiceClient(cloud.storage_account_url(ACCOUNT), credential=credential, retry_total=0)


def _sas(svc: BlobServiceClient, container: str, days: float) -> str:
    now = datetime.now(UTC)
    key = svc.get_user_delegation_key(now - timedelta(minutes=5), now + timedelta(days=days))
    return generate_container_sas(
        ACCOUNT,
        container,
        user_delegation_key=key,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=now + timedelta(days=days),
        start=now - timedelta(minutes=5),
    )


def test_a_key_beyond_seven_days_is_refused_as_azure_does(cloud: CloudEnv) -> None:
    svc = _client(cloud)
    now = datetime.now(UTC)
    with pytest.raises(HttpResponseError) as exc:
        svc.get_user_delegation_key(now, now + timedelta(days=8))
    assert exc.value.status_code == 400
    assert exc.value.error_code == INVALID_XML_NODE  # type: ignore[attr-defined]  # set by azure-storage
    assert "The value for one of the XML nodes is not in the correct format." in str(exc.value)
    key = svc.get_user_delegation_key(now, now + timedelta(days=7) - timedelta(minutes=5))
    assert key.value and key.signed_oid


def test_a_user_delegation_sas_reads_only_what_its_delegator_may(cloud: CloudEnv) -> None:
    owner = _client(cloud)  # Storage Blob Data Contributor on the account
    for name in (SHARED, "private"):
        owner.create_container(name).upload_blob("disk.vhd", b"v" * 1024)
    reader = _client(cloud, CONTAINER_READER_CLIENT_ID)  # Blob Data Reader on SHARED only
    base = cloud.storage_account_url(ACCOUNT)

    mine = ContainerClient.from_container_url(f"{base}/{SHARED}?{_sas(reader, SHARED, 1)}")
    assert [b.name for b in mine.list_blobs()] == ["disk.vhd"]
    assert mine.get_blob_client("disk.vhd").download_blob().readall() == b"v" * 1024

    # Signed correctly by the delegator's key, but the delegator may not read that container.
    theirs = ContainerClient.from_container_url(f"{base}/private?{_sas(reader, 'private', 1)}")
    with pytest.raises(HttpResponseError) as exc:
        theirs.get_blob_client("disk.vhd").download_blob().readall()
    assert exc.value.status_code == 403
    assert exc.value.error_code == "AuthorizationPermissionMismatch"  # type: ignore[attr-defined]


def test_key_expiry_refusal_reads_the_request_body() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    body = b"<KeyInfo><Start>2026-01-01T00:00:00Z</Start><Expiry>{}</Expiry></KeyInfo>"
    late = key_expiry_refusal(body.replace(b"{}", b"2026-01-08T00:00:01Z"), now.timestamp(), {})
    assert late is not None and late[0] == 400 and b"<XmlNodeValue>2026-01-08T00:00:01Z<" in late[3]
    assert key_expiry_refusal(body.replace(b"{}", b"2026-01-08T00:00:00Z"), now.timestamp(), {}) is None
    assert key_expiry_refusal(b"not xml", now.timestamp(), {}) is None
