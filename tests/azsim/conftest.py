"""Fixtures for azsim's own tests.

- ``storage_stack`` (session): Azurite + identity endpoint + blob front started in-process, with a
  copy behaviour the test controls (``stack.behaviour``) — for storage and identity tests.
- ``storage_env`` (function): the stack's client settings applied to ``os.environ``.
- ``local_cloud_env`` (module): a whole ``python -m azsim up`` (examples/world.json, time scale 0)
  with its env applied for each test that uses it (via ``cloud_env``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from azsim.azurite import DEVSTORE_ACCOUNT, DEVSTORE_KEY, Azurite, account_key
from azsim.certs import CertPaths, ensure_certs
from azsim.identity import Identity, IdentityServer, TokenIssuer
from azsim.interfaces import CopyFaultKind
from azsim.storage.diskstore import AzuriteDiskStore
from azsim.storage.proxy import BlobFront
from azsim.testing import CloudEnv, local_cloud
from tests.azsim.azsim_test_names import CUSTOMER, MD_ACCOUNT, TENANT


@dataclass
class TestCopyBehaviour:
    """A CopyBehaviour the tests steer: duration per copy and faults per destination blob name."""

    __test__ = False
    seconds: float = 0.0
    faults: dict[str, CopyFaultKind] = field(default_factory=dict)

    def copy_seconds(self, size_bytes: int) -> float:
        return self.seconds

    def copy_fault(self, account: str, container: str, blob: str) -> CopyFaultKind | None:
        return self.faults.get(blob)


@dataclass
class StorageStack:
    certs: CertPaths
    azurite: Azurite
    front: BlobFront
    identity: IdentityServer
    issuer: TokenIssuer
    disks: AzuriteDiskStore
    behaviour: TestCopyBehaviour
    default: Identity
    other: Identity
    keys: dict[str, str]

    @property
    def env(self) -> dict[str, str]:
        return {
            "IDENTITY_ENDPOINT": self.identity.url,
            "IDENTITY_HEADER": self.identity.identity_header,
            "REQUESTS_CA_BUNDLE": str(self.certs.ca_cert),
            "SSL_CERT_FILE": str(self.certs.ca_cert),
        }

    @property
    def customer_url(self) -> str:
        return f"{self.front.url}/{CUSTOMER}"


@pytest.fixture(scope="session")
def storage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageStack]:
    workdir = tmp_path_factory.mktemp("storage-stack")
    certs = ensure_certs(workdir / "certs")
    keys = {
        DEVSTORE_ACCOUNT: DEVSTORE_KEY,
        MD_ACCOUNT: account_key(MD_ACCOUNT, b"test"),
        CUSTOMER: account_key(CUSTOMER, b"test"),
    }
    azurite = Azurite(workdir=workdir, certs=certs, accounts=keys)
    azurite.start()
    default = Identity(object_id=str(uuid.uuid4()), client_id=str(uuid.uuid4()), name="default-mi")
    other = Identity(object_id=str(uuid.uuid4()), client_id=str(uuid.uuid4()), name="other-mi")
    issuer = TokenIssuer(TENANT, [default, other], default)
    identity = IdentityServer(issuer)
    behaviour = TestCopyBehaviour()
    front = BlobFront(
        upstream_host="127.0.0.1",
        upstream_port=azurite.blob_port,
        server_ctx=certs.server_context(),
        upstream_ctx=certs.client_context(),
        copy_behaviour=behaviour,
        unsimulated_accounts=frozenset({MD_ACCOUNT}),
    )
    disks = AzuriteDiskStore(
        account=MD_ACCOUNT,
        account_key=keys[MD_ACCOUNT],
        azurite_blob_endpoint=azurite.blob_endpoint,
        ca_bundle=str(certs.ca_cert),
        public_blob_endpoint=front.url,
    )
    try:
        identity.start()
        front.start()
        yield StorageStack(certs, azurite, front, identity, issuer, disks, behaviour, default, other, keys)
    finally:
        disks.close()
        front.stop()
        identity.stop()
        azurite.stop()


@pytest.fixture
def storage_env(storage_stack: StorageStack, monkeypatch: pytest.MonkeyPatch) -> StorageStack:
    for key in (
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_USERNAME",
        "MSI_ENDPOINT",
    ):
        monkeypatch.delenv(key, raising=False)
    for key, value in storage_stack.env.items():
        monkeypatch.setenv(key, value)
    storage_stack.behaviour.seconds = 0.0
    storage_stack.behaviour.faults.clear()
    return storage_stack


@pytest.fixture(scope="module")
def local_cloud_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudEnv]:
    with local_cloud(tmp_path_factory.mktemp("azsim"), time_scale=0) as cloud:
        yield cloud


@pytest.fixture
def cloud_env(local_cloud_env: CloudEnv) -> Iterator[CloudEnv]:
    saved = {k: os.environ.get(k) for k in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")}
    for k in saved:
        os.environ.pop(k, None)
    try:
        with local_cloud_env.apply():
            yield local_cloud_env
    finally:
        for k, v in saved.items():
            if v is not None:
                os.environ[k] = v


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
