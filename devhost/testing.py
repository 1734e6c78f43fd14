"""Run devhost as a subprocess from tests: ``with running_devhost(app_dir, workdir) as dh: ...``.

The process runs ``python -m devhost start`` in its own process group on a free port. ``running_devhost``
waits for the readiness line with a deadline (showing the log when it fails), and always stops the process
group on exit, even when the test fails. ``DevhostProcess.kill()`` (SIGKILL) and ``.restart()`` support
durability tests: the work dir keeps the state between runs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

READY_PREFIX = "devhost ready: "
_REPO_ROOT = Path(__file__).resolve().parent.parent


class DevhostStartError(RuntimeError):
    """devhost exited or did not report readiness in time."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevhostProcess:
    """One ``python -m devhost start`` subprocess. Use through ``running_devhost``."""

    def __init__(
        self,
        app_dir: Path,
        workdir: Path,
        *,
        env: dict[str, str] | None = None,
        env_file: Path | None = None,
        settings_file: Path | None = None,
        virtual_clock: bool = False,
        clock_url: str | None = None,
        require_keys: bool = False,
        port: int = 0,
        startup_timeout: float = 30.0,
        extra_args: list[str] | None = None,
    ) -> None:
        self.app_dir = Path(app_dir).resolve()
        self.workdir = Path(workdir).resolve()
        self.env = dict(env or {})
        self.env_file = env_file
        self.settings_file = settings_file
        self.virtual_clock = virtual_clock
        self.clock_url = clock_url
        self.require_keys = require_keys
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.extra_args = list(extra_args or [])
        self.log_path = self.workdir / "devhost.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._log_file: IO[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "devhost",
            "start",
            "--app-dir",
            str(self.app_dir),
            "--workdir",
            str(self.workdir),
            "--port",
            str(self.port),
        ]
        if self.virtual_clock or self.clock_url:
            cmd.append("--virtual-clock")
        if self.clock_url:
            cmd += ["--clock-url", self.clock_url]
        if self.require_keys:
            cmd.append("--require-keys")
        if self.env_file is not None:
            cmd += ["--env-file", str(self.env_file)]
        if self.settings_file is not None:
            cmd += ["--settings", str(self.settings_file)]
        return cmd + self.extra_args

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        # devhost itself must be importable whatever the cwd; the app dir is added by devhost
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.env)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_file.write(f"--- devhost start {time.strftime('%H:%M:%S')} port {self.port}\n".encode())
        self._log_file.flush()
        self.proc = subprocess.Popen(
            self.command(),
            cwd=str(self.app_dir),
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + self.startup_timeout
        os.set_blocking(self.proc.stdout.fileno(), False)
        buf = b""
        while time.monotonic() < deadline:
            chunk = self.proc.stdout.read()
            if chunk:
                buf += chunk
                if self._log_file is not None:
                    self._log_file.write(chunk)
                    self._log_file.flush()
                for line in buf.decode(errors="replace").splitlines():
                    if line.startswith(READY_PREFIX):
                        url = line[len(READY_PREFIX) :].strip()
                        if url != self.base_url:
                            self.base_url = url
                        self._drain_stdout_in_background()
                        return
            if self.proc.poll() is not None:
                raise DevhostStartError(
                    f"devhost exited with code {self.proc.returncode} before it was ready.\n{self.log_tail()}"
                )
            time.sleep(0.05)
        self.stop()
        raise DevhostStartError(
            f"devhost was not ready within {self.startup_timeout:.0f}s.\n{self.log_tail()}"
        )

    def _drain_stdout_in_background(self) -> None:
        # keep stdout flowing into the log so the child never blocks on a full pipe
        import threading

        proc, log = self.proc, self._log_file

        def pump() -> None:
            assert proc is not None and proc.stdout is not None
            os.set_blocking(proc.stdout.fileno(), True)
            for line in proc.stdout:
                if log is not None and not log.closed:
                    try:
                        log.write(line)
                        log.flush()
                    except ValueError:
                        return

        threading.Thread(target=pump, daemon=True).start()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, wait, then SIGKILL if needed. Returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        code: int | None = proc.poll()
        if code is None:
            self._signal_group(signal.SIGTERM)
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                code = proc.wait(5)
        self._signal_group(signal.SIGKILL)  # leftovers in the group (none expected)
        self._close()
        return code

    def kill(self) -> None:
        """SIGKILL the whole process group at once, like a crash: nothing gets to clean up."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGKILL)
        try:
            self.proc.wait(5)
        finally:
            self._close()

    def restart(self) -> None:
        """Stop (if still running) and start again on the same port and work dir."""
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        self.proc = None
        self.start()

    def _signal_group(self, sig: signal.Signals) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _close(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            try:
                self.proc.stdout.close()
            except OSError:
                pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # -- helpers -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_text().splitlines()
        return f"--- last {min(lines, len(text))} lines of {self.log_path}:\n" + "\n".join(text[-lines:])

    def keys(self) -> dict[str, Any]:
        """The key file (exists when started with require_keys=True)."""
        return dict(json.loads((self.workdir / "keys.json").read_text()))

    @property
    def function_key(self) -> str:
        return str(self.keys()["functionKeys"]["default"])

    @property
    def master_key(self) -> str:
        return str(self.keys()["masterKey"])

    def system_key(self, name: str) -> str:
        return str(self.keys()["systemKeys"][name])

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"


@contextmanager
def running_devhost(
    app_dir: Path | str,
    workdir: Path | str,
    *,
    env: dict[str, str] | None = None,
    env_file: Path | None = None,
    settings_file: Path | None = None,
    virtual_clock: bool = False,
    clock_url: str | None = None,
    require_keys: bool = False,
    port: int = 0,
    startup_timeout: float = 30.0,
) -> Iterator[DevhostProcess]:
    """Start devhost for ``app_dir`` with state in ``workdir``; yield it ready; always stop it."""
    dh = DevhostProcess(
        Path(app_dir),
        Path(workdir),
        env=env,
        env_file=env_file,
        settings_file=settings_file,
        virtual_clock=virtual_clock,
        clock_url=clock_url,
        require_keys=require_keys,
        port=port,
        startup_timeout=startup_timeout,
    )
    try:
        dh.start()
        yield dh
    finally:
        dh.stop()
