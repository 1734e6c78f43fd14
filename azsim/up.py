"""``python -m azsim up``: start the whole local cloud in the foreground and write its env file.

Order of start: certificates, Azurite, the managed-identity endpoint, the blob front, the ARM
simulator (with its disks' bytes written to Azurite), and last, atomically, ``<workdir>/env``:
shell-sourceable ``KEY='value'`` lines with every setting a client needs. The env file appearing is
the readiness signal (it is removed first thing at start). On SIGINT/SIGTERM everything started is
stopped again, Azurite's whole process group included. Bad input (world, fault or latency file) is
reported in one message naming the file, the field and what was expected, with exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azsim.azurite import DEVSTORE_ACCOUNT, DEVSTORE_KEY, Azurite, AzuriteError, account_key
from azsim.certs import ensure_certs
from azsim.core.clock import SimClock
from azsim.core.requestlog import AuthorizationLog
from azsim.identity import Identity, IdentityServer, TokenIssuer
from azsim.interfaces import CopyBehaviour, CopyFaultKind
from azsim.storage.proxy import BlobFront

log = logging.getLogger("azsim.up")

# The Azurite account playing Azure's internal managed-disk storage (not a customer account).
MANAGED_DISK_ACCOUNT = "azsimmanageddisks"
ENV_FILE = "env"
EXIT_BAD_INPUT = 2
EXIT_START_FAILED = 3


class BadInput(Exception):
    """Input to azsim itself is invalid; the message names file, field and expectation."""


def env_key_for_account(name: str) -> str:
    return f"AZSIM_STORAGE_{name.upper()}_URL"


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """Write ``KEY='value'`` lines atomically (temp file + rename), readable by ``sh`` and :func:`read_env_file`."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    lines = [f"{k}={shlex.quote(v)}" for k, v in values.items()]
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# Written by `python -m azsim up`; load with: set -a; . ./env; set +a\n")
        f.write("\n".join(lines) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse an env file written by :func:`write_env_file`."""
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        parsed = shlex.split(value)
        values[key.strip()] = parsed[0] if parsed else ""
    return values


class FallbackCopyBehaviour:
    """Copy timing and faults from the latency profile and fault engine, if the simulator offers none."""

    def __init__(self, copy_s: Callable[[int], float], time_scale: float, faults: Any | None) -> None:
        self._copy_s = copy_s
        self._scale = time_scale
        self._faults = faults

    def copy_seconds(self, size_bytes: int) -> float:
        return self._copy_s(size_bytes) * self._scale

    def copy_fault(self, account: str, container: str, blob: str) -> CopyFaultKind | None:
        if self._faults is None:
            return None
        result: CopyFaultKind | None = self._faults.for_copy(account, container, blob)
        return result


@dataclass
class UpOptions:
    world: Path
    workdir: Path
    time_scale: float = 1.0
    faults: Path | None = None
    latency: Path | None = None
    seed: int = 0
    arm_port: int = 0
    front_port: int = 0
    blob_port: int = 0
    queue_port: int = 0
    table_port: int = 0
    identity_port: int = 0
    throttle: bool = True
    exit_on_stdin_eof: bool = False
    virtual_clock: bool = False


@dataclass
class LocalCloud:
    """Everything ``up`` started, so it can be stopped in reverse order."""

    options: UpOptions
    stoppers: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    azurite: Azurite | None = None
    env: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        while self.stoppers:
            name, stop = self.stoppers.pop()
            try:
                stop()
            except Exception as e:  # keep stopping the rest
                log.warning("stopping %s failed: %s", name, e)


def _load_inputs(opts: UpOptions) -> tuple[Any, Any, Any]:
    from azsim.core.faults import FaultFileError, load_faults
    from azsim.core.latency import LatencyError, load_latency
    from azsim.world import WorldError, load_world

    try:
        world = load_world(opts.world)
        world.default_principal  # noqa: B018 - the identity endpoint needs one; fail now, not later
    except WorldError as e:
        raise BadInput(str(e)) from None
    try:
        faults = load_faults(opts.faults) if opts.faults else None
    except FaultFileError as e:
        raise BadInput(str(e)) from None
    try:
        latency = load_latency(opts.latency) if opts.latency else None
    except LatencyError as e:
        raise BadInput(str(e)) from None
    if opts.time_scale < 0:
        raise BadInput(f"--time-scale: expected a number >= 0 (0 = instant), got {opts.time_scale}")
    return world, faults, latency


def start(opts: UpOptions) -> LocalCloud:
    """Start the local cloud and write the env file; the caller must call ``stop()`` on the result."""
    world, faults, latency = _load_inputs(opts)
    workdir = opts.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    env_path = workdir / ENV_FILE
    env_path.unlink(missing_ok=True)
    cloud = LocalCloud(opts)
    try:
        _start(cloud, workdir, world, faults, latency)
    except BaseException:
        cloud.stop()
        raise
    return cloud


def _workdir_salt(workdir: Path) -> bytes:
    """A per-workdir secret from which Azurite account keys are derived (stable across restarts)."""
    path = workdir / "account-key-salt"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _start(cloud: LocalCloud, workdir: Path, world: Any, faults: Any, latency: Any) -> None:
    opts = cloud.options
    t0 = time.monotonic()
    certs = ensure_certs(workdir / "certs")
    ca = str(certs.ca_cert)

    salt = _workdir_salt(workdir)
    accounts = {DEVSTORE_ACCOUNT: DEVSTORE_KEY, MANAGED_DISK_ACCOUNT: account_key(MANAGED_DISK_ACCOUNT, salt)}
    for sa in world.storage_accounts:
        accounts[sa.account_name] = sa.azurite_key or account_key(sa.account_name, salt)

    azurite = Azurite(
        workdir=workdir,
        certs=certs,
        accounts=accounts,
        blob_port=opts.blob_port,
        queue_port=opts.queue_port,
        table_port=opts.table_port,
    )
    # Azurite takes about a second to listen: start it first and do the rest meanwhile.
    azurite.spawn()
    cloud.azurite = azurite
    cloud.stoppers.append(("azurite", azurite.stop))

    identities = [
        Identity(object_id=p.object_id, client_id=p.client_id, name=p.display_name) for p in world.principals
    ]
    default = next(i for i in identities if i.object_id == world.default_principal.object_id)
    issuer = TokenIssuer(world.tenant_id, identities, default)
    msi = IdentityServer(issuer, port=opts.identity_port)
    msi.start()
    cloud.stoppers.append(("identity endpoint", msi.stop))

    # The slow imports (Azure SDK, the simulator) overlap with Azurite's start.
    import azsim.arm.server  # noqa: F401
    from azsim.storage.diskstore import AzuriteDiskStore
    from azsim.storage.rbac import BlobDataAuthorizer
    from azsim.storage.vhdblobs import AzuriteVhdBlobs

    azurite.wait_ready()
    log.info("azurite up in %.2f s", time.monotonic() - t0)
    clock = SimClock() if opts.virtual_clock else None
    authorizations = AuthorizationLog()  # one log of RBAC decisions for both planes (/_sim/authorizations)
    front = BlobFront(
        upstream_host="127.0.0.1",
        upstream_port=azurite.blob_port,
        server_ctx=certs.server_context(),
        upstream_ctx=certs.client_context(),
        copy_behaviour=FallbackCopyBehaviour(lambda n: 0.0, 0.0, None),
        unsimulated_accounts=frozenset({MANAGED_DISK_ACCOUNT}),
        port=opts.front_port,
        # Azurite checks tokens but not roles: the front enforces the world's data-plane RBAC.
        data_auth=BlobDataAuthorizer.for_world(world, issuer.verifier(), authorizations),
        clock=clock,
    )
    disks = AzuriteDiskStore(
        account=MANAGED_DISK_ACCOUNT,
        account_key=accounts[MANAGED_DISK_ACCOUNT],
        azurite_blob_endpoint=azurite.blob_endpoint,
        ca_bundle=ca,
        public_blob_endpoint=front.url,
    )
    arm_url, control_url, copy_behaviour, arm_stop = _start_arm(
        world=world,
        disks=disks,
        tokens=issuer.verifier(),
        faults=faults,
        latency=latency,
        opts=opts,
        ssl_context=certs.server_context(),
        clock=clock,
        authorizations=authorizations,
        vhd_blobs=AzuriteVhdBlobs(
            azurite_blob_endpoint=azurite.blob_endpoint,
            keys={sa.account_name: accounts[sa.account_name] for sa in world.storage_accounts},
            ca_bundle=ca,
        ),
    )
    cloud.stoppers.append(("arm simulator", arm_stop))
    front.copy_behaviour = copy_behaviour
    front.start()
    cloud.stoppers.append(("blob front", front.stop))

    env: dict[str, str] = {
        "AZURE_TENANT_ID": world.tenant_id,
        "AZURE_SUBSCRIPTION_ID": world.default_subscription.id,
        "AZURE_ARM_ENDPOINT": arm_url,
        # Managed identity never calls the authority; point it at the local cloud so that nothing
        # configured by mistake reaches the real Entra ID.
        "AZURE_AUTHORITY_HOST": arm_url,
        "REQUESTS_CA_BUNDLE": ca,
        "SSL_CERT_FILE": ca,
        "IDENTITY_ENDPOINT": msi.url,
        "IDENTITY_HEADER": msi.identity_header,
        "AzureWebJobsStorage": azurite.connection_string(DEVSTORE_ACCOUNT),
        "AZSIM_BLOB_ENDPOINT": front.url,
        # The blob endpoint of an account in this cloud (path-style, through the blob front): what an app
        # compares an account URL with before it sends a token there (Azure's is https://{account}.blob.<suffix>).
        "AZURE_STORAGE_BLOB_ENDPOINT_TEMPLATE": f"{front.url}/{{account}}",
        "AZSIM_QUEUE_ENDPOINT": azurite.queue_endpoint,
        "AZSIM_TABLE_ENDPOINT": azurite.table_endpoint,
        "AZSIM_CONTROL_URL": control_url,
        # The one simulated clock (docs/virtual-time.md); in real-clock mode it only reports the scale.
        "AZSIM_CLOCK_URL": f"{control_url}/clock",
        "AZSIM_VIRTUAL_CLOCK": "1" if opts.virtual_clock else "0",
        "AZSIM_WORKDIR": str(workdir),
        "AZSIM_PID": str(os.getpid()),
    }
    for sa in world.storage_accounts:
        env[env_key_for_account(sa.name)] = f"{front.url}/{sa.account_name}"
    write_env_file(workdir / ENV_FILE, env)
    cloud.env = env
    log.info("local cloud up in %.2f s; env in %s", time.monotonic() - t0, workdir / ENV_FILE)


def _start_arm(
    *,
    world: Any,
    disks: Any,
    tokens: Any,
    faults: Any,
    latency: Any,
    opts: UpOptions,
    ssl_context: Any,
    clock: SimClock | None = None,
    authorizations: AuthorizationLog | None = None,
    vhd_blobs: Any = None,
) -> tuple[str, str, CopyBehaviour, Callable[[], None]]:
    """Start the ARM simulator; return its base URL, control URL, copy behaviour and a stop function."""
    from azsim.arm.server import ArmSimulator, serve_arm

    sim = ArmSimulator(
        world,
        disks,
        tokens,
        time_scale=opts.time_scale,
        faults=faults,
        seed=opts.seed,
        latency=latency,
        throttle=opts.throttle,
        clock=clock,
        authorizations=authorizations,
    )
    if vhd_blobs is not None:  # the world's VHD blobs, written now, read by image (version) sources
        sim.backend.attach_vhd_blobs(vhd_blobs)
    server = serve_arm(sim, "127.0.0.1", opts.arm_port, ssl_context)
    port = int(server.server_address[1])
    url = f"https://127.0.0.1:{port}"
    behaviour: CopyBehaviour | None = getattr(sim, "copy_behaviour", None)
    if behaviour is None:
        behaviour = sim

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return url, f"{url}/_sim", behaviour, stop


def _parse(argv: list[str]) -> UpOptions:
    parser = argparse.ArgumentParser(prog="python -m azsim up", description="Start the local Azure cloud.")
    parser.add_argument(
        "--world", type=Path, required=True, help="world file (JSON), e.g. examples/world.json"
    )
    parser.add_argument("--workdir", type=Path, default=Path(".azsim"), help="state, certs, logs, env file")
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="multiply simulated durations (0=instant)"
    )
    parser.add_argument(
        "--virtual-clock",
        action="store_true",
        help="one simulated clock that moves only by skips (docs/virtual-time.md); ignores --time-scale",
    )
    parser.add_argument("--faults", type=Path, help="fault-injection rules (JSON)")
    parser.add_argument("--latency", type=Path, help="latency profile overrides (JSON)")
    parser.add_argument("--seed", type=int, default=0, help="seed for probabilistic faults")
    parser.add_argument("--arm-port", type=int, default=0, help="ARM simulator port (0 = any free port)")
    parser.add_argument("--blob-port", type=int, default=0, help="blob front port (0 = any free port)")
    parser.add_argument("--azurite-blob-port", type=int, default=0)
    parser.add_argument("--azurite-queue-port", type=int, default=0)
    parser.add_argument("--azurite-table-port", type=int, default=0)
    parser.add_argument("--identity-port", type=int, default=0)
    parser.add_argument("--no-throttle", action="store_true", help="disable ARM/Compute throttling")
    parser.add_argument(
        "--exit-on-stdin-eof", action="store_true", help="stop when stdin closes (for supervising processes)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    ns = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if ns.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if not ns.verbose:
        # The SDK clients' request logging (used for disk bytes) would drown the simulator's own log.
        logging.getLogger("azure").setLevel(logging.WARNING)
    return UpOptions(
        world=ns.world,
        workdir=ns.workdir,
        time_scale=ns.time_scale,
        faults=ns.faults,
        latency=ns.latency,
        seed=ns.seed,
        arm_port=ns.arm_port,
        front_port=ns.blob_port,
        blob_port=ns.azurite_blob_port,
        queue_port=ns.azurite_queue_port,
        table_port=ns.azurite_table_port,
        identity_port=ns.identity_port,
        throttle=not ns.no_throttle,
        exit_on_stdin_eof=ns.exit_on_stdin_eof,
        virtual_clock=ns.virtual_clock,
    )


def main(argv: list[str]) -> int:
    opts = _parse(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        cloud = start(opts)
    except BadInput as e:
        print(f"azsim up: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except AzuriteError as e:
        print(f"azsim up: {e}", file=sys.stderr)
        return EXIT_START_FAILED
    if opts.exit_on_stdin_eof:
        threading.Thread(target=_watch_stdin, args=(stop,), daemon=True).start()
    print(f"azsim up: local cloud ready; env in {opts.workdir / ENV_FILE}", file=sys.stderr, flush=True)
    try:
        while not stop.wait(1.0):
            if cloud.azurite is not None and not cloud.azurite.running():
                print(f"azsim up: Azurite exited unexpectedly; see {cloud.azurite.log_path}", file=sys.stderr)
                return EXIT_START_FAILED
    finally:
        (opts.workdir / ENV_FILE).unlink(missing_ok=True)
        cloud.stop()
    return 0


def _watch_stdin(stop: threading.Event) -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    stop.set()
