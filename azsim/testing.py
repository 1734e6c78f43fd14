"""Run the local cloud from tests: ``local_cloud()`` starts ``python -m azsim up`` and yields a ``CloudEnv``.

    with local_cloud(tmp_path / "azsim", time_scale=0) as cloud, cloud.apply():
        compute = cloud.arm_client(ComputeManagementClient)
        vm = compute.virtual_machines.get("rg-build", "vm-web")

The subprocess gets its own process group and free ports; readiness is the env file appearing.
On exit (also on failure) the whole process group is stopped, and the subprocess also stops by
itself when the test process dies (its stdin closes). Start-up errors carry the tail of its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.request import Request, urlopen

from azsim.up import ENV_FILE, env_key_for_account, read_env_file

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORLD = REPO_ROOT / "examples" / "world.json"
T = TypeVar("T")


class LocalCloudError(RuntimeError):
    """The local cloud did not start (bad input, crash, or not ready before the deadline)."""


class CloudEnv(Mapping[str, str]):
    """The env file of a running local cloud: a read-only mapping of app settings plus helpers."""

    def __init__(self, values: Mapping[str, str], workdir: Path, pid: int | None = None) -> None:
        self._values = dict(values)
        self.workdir = workdir
        self.pid = pid

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:  # no IDENTITY_HEADER / keys in test output
        return f"CloudEnv(arm_endpoint={self.arm_endpoint!r}, workdir={str(self.workdir)!r})"

    @property
    def arm_endpoint(self) -> str:
        return self._values["AZURE_ARM_ENDPOINT"]

    @property
    def subscription_id(self) -> str:
        return self._values["AZURE_SUBSCRIPTION_ID"]

    @property
    def tenant_id(self) -> str:
        return self._values["AZURE_TENANT_ID"]

    @property
    def ca_bundle(self) -> str:
        return self._values["REQUESTS_CA_BUNDLE"]

    @property
    def control_url(self) -> str:
        """Base URL of the simulator's inspection API (``/_sim``)."""
        return self._values["AZSIM_CONTROL_URL"]

    @property
    def blob_endpoint(self) -> str:
        """Base URL of the blob front (customer storage accounts live at ``<this>/<account>``)."""
        return self._values["AZSIM_BLOB_ENDPOINT"]

    @property
    def storage_connection_string(self) -> str:
        """``AzureWebJobsStorage``: devstoreaccount1 on Azurite (blob, queue, table over HTTPS)."""
        return self._values["AzureWebJobsStorage"]

    def storage_account_url(self, name: str) -> str:
        """Account URL of a world storage account (through the blob front)."""
        try:
            return self._values[env_key_for_account(name)]
        except KeyError:
            names = sorted(k for k in self._values if k.startswith("AZSIM_STORAGE_"))
            raise KeyError(f"no storage account {name!r} in this world; env has {names}") from None

    # -- the simulated clock (virtual_clock=True; docs/virtual-time.md) ------------------------------

    @property
    def clock_url(self) -> str:
        """The clock API (``GET`` state, ``POST /advance``, ``POST /holds``, ``DELETE /holds/{id}``)."""
        return self._values["AZSIM_CLOCK_URL"]

    def _clock_call(self, method: str, path: str = "", body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = Request(self.clock_url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        ctx = ssl.create_default_context(cafile=self.ca_bundle)
        with urlopen(req, timeout=10, context=ctx) as resp:
            answer: dict[str, Any] = json.loads(resp.read())
        return answer

    def clock(self) -> dict[str, Any]:
        """The clock's state: ``now`` (simulated seconds), ``nextDue``, ``inFlight``, ``holds``."""
        return self._clock_call("GET")

    def advance(self, seconds: float) -> dict[str, Any]:
        """Move simulated time forward by ``seconds`` (an explicit advance, whatever is pending)."""
        return self._clock_call("POST", "/advance", {"by": seconds})

    @contextlib.contextmanager
    def hold(self, reason: str = "test") -> Iterator[None]:
        """Keep simulated time still for the block (to deliver an input before a timer fires)."""
        hold_id = self._clock_call("POST", "/holds", {"reason": reason})["id"]
        try:
            yield
        finally:
            self._clock_call("DELETE", f"/holds/{hold_id}")

    @contextlib.contextmanager
    def apply(self) -> Iterator[CloudEnv]:
        """Set every env-file value in ``os.environ`` for the duration, then restore the previous values."""
        saved = {k: os.environ.get(k) for k in self._values}
        os.environ.update(self._values)
        try:
            yield self
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def credential(self) -> Any:
        """A ``DefaultAzureCredential`` (managed identity via IDENTITY_ENDPOINT/IDENTITY_HEADER).

        MSAL reads those settings when a token is requested, so request tokens (i.e. use clients)
        inside ``apply()``.
        """
        from azure.identity import DefaultAzureCredential

        with self.apply():
            return DefaultAzureCredential()

    def arm_client(self, client_cls: type[T], credential: Any = None, **kwargs: Any) -> T:
        """An ARM management client (``ComputeManagementClient``, ...) pointed at the simulator."""
        kwargs.setdefault("base_url", self.arm_endpoint)
        return client_cls(credential or self.credential(), self.subscription_id, **kwargs)  # type: ignore[call-arg]

    def blob_service(self, account: str, credential: Any = None) -> Any:
        """A ``BlobServiceClient`` for a world storage account, with a bearer credential."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(
            self.storage_account_url(account), credential=credential or self.credential()
        )


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


@contextlib.contextmanager
def local_cloud(
    workdir: str | os.PathLike[str],
    *,
    world: str | os.PathLike[str] = DEFAULT_WORLD,
    time_scale: float = 0,
    faults: str | os.PathLike[str] | None = None,
    latency: str | os.PathLike[str] | None = None,
    seed: int = 0,
    throttle: bool = False,
    virtual_clock: bool = False,
    start_timeout: float = 60.0,
    extra_args: tuple[str, ...] = (),
) -> Iterator[CloudEnv]:
    """Start ``python -m azsim up`` in ``workdir`` and yield its ``CloudEnv``; always stop it on exit."""
    wd = Path(workdir).resolve()
    wd.mkdir(parents=True, exist_ok=True)
    env_path = wd / ENV_FILE
    env_path.unlink(missing_ok=True)
    log_path = wd / "azsim-up.log"
    cmd = [
        sys.executable, "-m", "azsim", "up",
        "--world", str(Path(world).resolve()),
        "--workdir", str(wd),
        "--time-scale", repr(float(time_scale)),
        "--seed", str(seed),
        "--exit-on-stdin-eof",
    ]  # fmt: skip
    if faults is not None:
        cmd += ["--faults", str(Path(faults).resolve())]
    if latency is not None:
        cmd += ["--latency", str(Path(latency).resolve())]
    if not throttle:
        cmd.append("--no-throttle")
    if virtual_clock:
        cmd.append("--virtual-clock")
    cmd += list(extra_args)
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), child_env.get("PYTHONPATH")]))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=str(REPO_ROOT),
            env=child_env,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + start_timeout
        while not env_path.exists():
            code = proc.poll()
            if code is not None:
                raise LocalCloudError(
                    f"`python -m azsim up` exited with status {code} before it was ready:\n{_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise LocalCloudError(
                    f"`python -m azsim up` was not ready within {start_timeout:.0f} s:\n{_tail(log_path)}"
                )
            time.sleep(0.02)
        yield CloudEnv(read_env_file(env_path), wd, proc.pid)
    finally:
        _stop(proc, wd)


def _stop(proc: subprocess.Popen[bytes], workdir: Path, grace: float = 15.0) -> None:
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    if proc.poll() is None:
        _kill_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait(5)
    # Azurite runs in its own group (and dies with its parent); make sure of it anyway.
    pid_file = workdir / "azurite.pid"
    with contextlib.suppress(OSError, ValueError):
        azurite_pid = int(pid_file.read_text())
        for _ in range(100):
            try:
                os.killpg(azurite_pid, 0)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.05)
        else:
            _kill_group(azurite_pid, signal.SIGKILL)
