"""Test doubles for the ARM simulator's seams (not SDK mocks): an in-memory DiskStore, a token
verifier + credential pair, and a helper that runs an ``ArmSimulator`` over HTTPS for the real SDKs.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.core.credentials import AccessToken
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from azsim.arm.server import ArmHttpsServer, ArmSimulator, serve_arm
from azsim.certs import CertPaths, ensure_certs
from azsim.interfaces import InvalidToken, Principal
from azsim.world import World, load_world
from tests.azsim.azsim_test_names import TENANT

REPO = Path(__file__).resolve().parents[2]
WORLD_FILE = REPO / "examples" / "world.json"
SUB = "89d0a3c1-7028-549c-b21b-dc72b5b9bb42"
PIPELINE_OID = "45fca010-4ea4-54a8-80ca-6a67cd24c896"
READER_OID = "b238e621-424b-5f06-bd00-d0f513770f55"


class MemoryDiskStore:
    """DiskStore in memory: blobs are byte counts, a SAS is valid while its access id is granted."""

    def __init__(self) -> None:
        self.blobs: dict[str, int] = {}
        self.grants: dict[str, str] = {}  # access_id -> blob
        self.lock = threading.Lock()

    def create_disk_blob(
        self, blob_name: str, *, content_mib: int, seed: int, vhd_format: str = "fixed"
    ) -> int:
        with self.lock:
            self.blobs[blob_name] = content_mib * 1024 * 1024 + 512
            return self.blobs[blob_name]

    def copy_blob(self, src_blob_name: str, dst_blob_name: str) -> None:
        with self.lock:
            self.blobs[dst_blob_name] = self.blobs[src_blob_name]

    def delete_blob(self, blob_name: str) -> None:
        with self.lock:
            self.blobs.pop(blob_name, None)

    def grant_read(self, blob_name: str, access_id: str, duration_seconds: int) -> str:
        with self.lock:
            self.grants[access_id] = blob_name
        return f"https://md-test.blob.local/{blob_name}/abcd?sv=2018-03-28&sr=b&si={access_id}&sig=SECRETSIG{access_id[:8]}"

    def revoke(self, blob_name: str, access_id: str) -> None:
        with self.lock:
            self.grants.pop(access_id, None)

    def sas_valid(self, sas: str) -> bool:
        access_id = sas.split("si=", 1)[1].split("&", 1)[0]
        with self.lock:
            return access_id in self.grants


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def make_token(oid: str, aud: str = "https://management.azure.com/", lifetime: int = 3600) -> str:
    now = int(time.time())
    claims = {
        "aud": aud,
        "oid": oid,
        "tid": TENANT,
        "iss": f"https://sts.windows.net/{TENANT}/",
        "nbf": now - 5,
        "exp": now + lifetime,
    }
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.sig"


class FakeVerifier:
    """Accepts the unsigned JWTs of ``make_token`` (signature is not the point of these tests)."""

    def verify(self, authorization_header: str | None, *, audience: str) -> Principal:
        if not authorization_header or not authorization_header.startswith("Bearer "):
            raise InvalidToken("missing bearer token")
        try:
            payload = authorization_header[7:].split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError) as exc:
            raise InvalidToken("malformed token") from exc
        if str(claims.get("aud", "")).rstrip("/") != audience.rstrip("/"):
            raise InvalidToken(f"wrong audience {claims.get('aud')!r}")
        if claims.get("exp", 0) < time.time():
            raise InvalidToken("token expired")
        return Principal(object_id=claims["oid"], tenant_id=claims["tid"], audience=audience)


class StaticCredential:
    """A TokenCredential for one principal (what ManagedIdentityCredential would hand the SDK)."""

    def __init__(self, oid: str, aud: str = "https://management.azure.com/") -> None:
        self.oid = oid
        self.aud = aud

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(make_token(self.oid, self.aud), int(time.time()) + 3600)


@dataclass
class SimHandle:
    sim: ArmSimulator
    server: ArmHttpsServer
    store: MemoryDiskStore
    certs: CertPaths
    world: World
    clients: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.base_url

    def compute(self, oid: str = PIPELINE_OID, **kwargs: Any) -> ComputeManagementClient:
        kwargs.setdefault("polling_interval", 0.01)
        return ComputeManagementClient(
            StaticCredential(oid), SUB, base_url=self.url, connection_verify=str(self.certs.ca_cert), **kwargs
        )

    def network(self, oid: str = PIPELINE_OID, **kwargs: Any) -> NetworkManagementClient:
        kwargs.setdefault("polling_interval", 0.01)
        return NetworkManagementClient(
            StaticCredential(oid), SUB, base_url=self.url, connection_verify=str(self.certs.ca_cert), **kwargs
        )

    def resources(self, oid: str = PIPELINE_OID, **kwargs: Any) -> ResourceManagementClient:
        return ResourceManagementClient(
            StaticCredential(oid), SUB, base_url=self.url, connection_verify=str(self.certs.ca_cert), **kwargs
        )


@contextmanager
def running_sim(cert_dir: Path, *, world: World | None = None, **kwargs: Any) -> Iterator[SimHandle]:
    certs = ensure_certs(cert_dir)
    store = MemoryDiskStore()
    w = world or load_world(WORLD_FILE)
    kwargs.setdefault("throttle", False)
    sim = ArmSimulator(w, store, FakeVerifier(), **kwargs)
    server = serve_arm(sim, "127.0.0.1", 0, certs.server_context())
    try:
        yield SimHandle(sim, server, store, certs, w)
    finally:
        server.shutdown()
        server.server_close()


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll ``predicate`` until it returns a truthy value or the deadline passes (no blind sleeps)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def vm_id(name: str, rg: str = "rg-build") -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def disk_id(name: str, rg: str = "rg-build", kind: str = "disks") -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/{kind}/{name}"
