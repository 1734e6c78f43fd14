"""``python -m azsim up`` killed with SIGKILL during start-up leaves no Azurite behind: Azurite runs
with a parent-death signal, and a child whose parent died before that signal was armed (between fork
and ``prctl``) exits by itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from azsim.azurite import child_setup
from azsim.testing import DEFAULT_WORLD, REPO_ROOT

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only"
)


def processes_with(marker: str) -> list[int]:
    """Pids whose command line mentions ``marker`` (the Azurite data folder of one workdir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def wait_for(predicate: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())


def _spawned(wd: Path) -> bool:
    return (wd / "azurite.pid").exists()


def _listening(wd: Path) -> bool:
    log = wd / "azurite.log"
    return log.exists() and b"Blob service is successfully listening" in log.read_bytes()


def _ready(wd: Path) -> bool:
    return (wd / "env").exists()


MOMENTS: dict[str, Callable[[Path], bool]] = {
    "at once": lambda wd: True,
    "right after spawning Azurite": _spawned,
    "while Azurite starts listening": _listening,
    "when ready": _ready,
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_sigkill_of_up_during_start_leaves_no_azurite(tmp_path: Path, moment: str) -> None:
    wd = tmp_path / "wd"
    marker = str(wd / "azurite")
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "azsim",
            "up",
            "--world",
            str(DEFAULT_WORLD),
            "--workdir",
            str(wd),
            "--time-scale",
            "0",
        ],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        reached = wait_for(lambda: MOMENTS[moment](wd) or up.poll() is not None, 60)
        assert reached and up.poll() is None, f"azsim up did not reach {moment!r}"
        up.send_signal(signal.SIGKILL)
        up.wait(5)
        assert wait_for(lambda: not processes_with(marker), 5), (
            f"Azurite left running: {processes_with(marker)}"
        )
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(5)
        for pid in processes_with(marker):  # only this test's own Azurite (its workdir is unique)
            os.kill(pid, signal.SIGKILL)


def test_child_whose_parent_died_before_prctl_exits(tmp_path: Path) -> None:
    """The race itself, made wide: the parent exits while its child has not yet armed the signal."""
    survived = tmp_path / "survived"
    child_pid_file = tmp_path / "child"
    middle = os.fork()
    if middle == 0:  # plays azsim up
        try:
            me = os.getpid()
            setup = child_setup(me)
            child = os.fork()
            if child == 0:  # plays Azurite before exec
                try:
                    wait_for(lambda: os.getppid() != me, 5)
                    setup()
                    survived.write_text(f"setup returned; parent now {os.getppid()}, was {me}")
                finally:
                    os._exit(0)
            partial = child_pid_file.with_suffix(".partial")
            partial.write_text(str(child))
            partial.rename(child_pid_file)  # atomic: the test never reads a half-written pid
        finally:
            os._exit(0)
    os.waitpid(middle, 0)
    assert wait_for(child_pid_file.exists, 5)
    child = int(child_pid_file.read_text())
    assert wait_for(lambda: not Path(f"/proc/{child}").exists() or _zombie(child), 5)
    assert not survived.exists(), survived.read_text()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
