"""Running the client as a pipeline does: ``python -m imagepipeline`` in a subprocess, stdout a pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.support.worlds import REPO_ROOT


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """The client's exit code, stdout and stderr; no terminal (stdin closed, stdout and stderr pipes)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEPIPELINE_")}
    full_env.update({"PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "imagepipeline", *args],
        cwd=str(REPO_ROOT),
        env=full_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def json_out(proc: subprocess.CompletedProcess[str]) -> Any:
    """The one JSON document ``--json`` prints on stdout."""
    try:
        return json.loads(proc.stdout)
    except ValueError as exc:
        raise AssertionError(
            f"not one JSON document on stdout: {proc.stdout!r}\nstderr: {proc.stderr}"
        ) from exc
