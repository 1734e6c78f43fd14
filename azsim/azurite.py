"""Start and stop Azurite, the storage emulator behind the local cloud.

Azurite comes from the project's own ``node_modules`` (pinned in ``package.json`` /
``package-lock.json``), never from a global install. It runs with HTTPS (the local CA's server
certificate), ``--oauth basic`` (so bearer tokens from the identity endpoint work), telemetry off,
any API version accepted, and its data under the workdir. Ports default to 0: Azurite picks free
ones and prints them, which we read back from its log, so there is no race for a port.
"""

from __future__ import annotations

import base64
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from azsim.certs import CertPaths

# The well-known development account every Azure Storage tool knows (also Azurite's default).
DEVSTORE_ACCOUNT = "devstoreaccount1"
DEVSTORE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

REPO_ROOT = Path(__file__).resolve().parent.parent
_LISTENING = re.compile(
    r"Azurite (Blob|Queue|Table) service is successfully listening at https?://[^:\s]+:(\d+)"
)
_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")


class AzuriteError(RuntimeError):
    """Azurite could not be started (missing install, crash at start, or not ready in time)."""


def azurite_binary(repo_root: Path = REPO_ROOT) -> Path:
    """The project-local Azurite launcher; a clear error if ``npm ci`` has not been run."""
    binary = repo_root / "node_modules" / ".bin" / "azurite"
    if not binary.exists():
        raise AzuriteError(
            f"Azurite is not installed at {binary}. Run `make bootstrap` (npm ci) in {repo_root} "
            "to install the pinned version from package-lock.json."
        )
    return binary


def account_key(account: str, salt: bytes) -> str:
    """A base64 account key, stable for one workdir (``salt``) and account name."""
    import hashlib

    return base64.b64encode(hashlib.sha512(salt + account.encode()).digest()).decode()


_PR_SET_PDEATHSIG = 1


def child_setup(parent_pid: int) -> Callable[[], None]:
    """The ``preexec_fn`` for the Azurite child of ``parent_pid``: its own process group (so it can be
    stopped whole) and, on Linux, death with the parent, so a killed ``azsim up`` never leaves an
    orphaned Azurite holding its ports.

    libc is loaded here, in the parent: the child runs only a few calls between fork and exec (an
    import there is slow and not safe after fork). A parent killed between fork and ``prctl`` sends
    no death signal any more, so the child then checks that its parent is still the one that forked
    it and exits otherwise.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None

    def setup() -> None:
        os.setsid()
        if prctl is None:
            return
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:
            os._exit(1)

    return setup


@dataclass
class Azurite:
    """One Azurite process (blob + queue + table) in its own process group."""

    workdir: Path
    certs: CertPaths
    accounts: dict[str, str]
    blob_port: int = 0
    queue_port: int = 0
    table_port: int = 0
    host: str = "127.0.0.1"
    repo_root: Path = REPO_ROOT
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        for name in self.accounts:
            if not _ACCOUNT_NAME.match(name):
                raise ValueError(
                    f"storage account name {name!r} is not valid: expected 3-24 lowercase letters and digits"
                )

    @property
    def log_path(self) -> Path:
        return self.workdir / "azurite.log"

    @property
    def blob_endpoint(self) -> str:
        """Azurite's own blob service base URL (path-style: ``<endpoint>/<account>``)."""
        return f"https://{self.host}:{self.blob_port}"

    @property
    def queue_endpoint(self) -> str:
        return f"https://{self.host}:{self.queue_port}"

    @property
    def table_endpoint(self) -> str:
        return f"https://{self.host}:{self.table_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def connection_string(self, account: str = DEVSTORE_ACCOUNT) -> str:
        """A key-based connection string for ``account`` on Azurite directly (HTTPS)."""
        return (
            f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey={self.accounts[account]};"
            f"BlobEndpoint={self.blob_endpoint}/{account};QueueEndpoint={self.queue_endpoint}/{account};"
            f"TableEndpoint={self.table_endpoint}/{account};"
        )

    def start(self, timeout: float = 60.0) -> None:
        """Start Azurite and wait until all three services listen; raise ``AzuriteError`` otherwise."""
        self.spawn()
        self.wait_ready(timeout)

    def spawn(self) -> None:
        """Start the Azurite process without waiting (call ``wait_ready`` before using it)."""
        binary = azurite_binary(self.repo_root)
        data = self.workdir / "azurite"
        data.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["AZURITE_ACCOUNTS"] = ";".join(f"{name}:{key}" for name, key in self.accounts.items())
        # Azurite checks a cross-account copy source by requesting it (through our blob front, over
        # HTTPS with the local CA), so Node must trust that CA.
        env["NODE_EXTRA_CA_CERTS"] = str(self.certs.ca_cert)
        args = [
            str(binary),
            "--blobHost", self.host, "--blobPort", str(self.blob_port),
            "--queueHost", self.host, "--queuePort", str(self.queue_port),
            "--tableHost", self.host, "--tablePort", str(self.table_port),
            "--location", str(data),
            "--cert", str(self.certs.server_cert),
            "--key", str(self.certs.server_key),
            "--oauth", "basic",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ]  # fmt: skip
        log = open(self.log_path, "wb")  # noqa: SIM115 - handed to the child, closed below
        try:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(data),
                preexec_fn=child_setup(os.getpid()),
            )
        finally:
            log.close()
        (self.workdir / "azurite.pid").write_text(str(self._proc.pid))

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until blob, queue and table listen; learn their ports from Azurite's log."""
        if self._proc is None:
            raise AzuriteError("Azurite was not started")
        deadline = time.monotonic() + timeout
        while True:
            ports = dict(
                (m.group(1), int(m.group(2)))
                for m in _LISTENING.finditer(self.log_path.read_text(errors="replace"))
            )
            if len(ports) == 3:
                self.blob_port, self.queue_port, self.table_port = (
                    ports["Blob"],
                    ports["Queue"],
                    ports["Table"],
                )
                return
            if self._proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                self._proc = None
                raise AzuriteError(f"Azurite exited at start (see {self.log_path}):\n{tail}")
            if time.monotonic() > deadline:
                self.stop()
                raise AzuriteError(f"Azurite did not listen within {timeout:.0f} s (see {self.log_path})")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Azurite's whole process group: SIGTERM, then SIGKILL after ``timeout``."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            self._stop(proc, timeout)
        finally:
            (self.workdir / "azurite.pid").unlink(missing_ok=True)

    def _stop(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(5)
