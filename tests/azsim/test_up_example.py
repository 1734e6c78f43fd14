"""The hand-written capture example runs green against a fresh local cloud at time scale 0.01."""

from __future__ import annotations

import subprocess
import sys

from azsim.testing import REPO_ROOT, local_cloud

REGIONS = ("westeurope", "northeurope", "uksouth")


def test_capture_by_hand_example_runs_green(tmp_path):
    with local_cloud(tmp_path / "azsim", time_scale=0.01) as cloud:
        result = subprocess.run(
            [
                sys.executable,
                str(REPO_ROOT / "examples" / "capture_by_hand.py"),
                "--env",
                str(cloud.workdir / "env"),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Image version /subscriptions/" in out
    summary = out[out.index("Image version /subscriptions/") :].splitlines()[2:]
    assert len(summary) == len(REGIONS), summary
    for region in REGIONS:
        assert any(
            region in line.lower().replace(" ", "") and "Completed (100%)" in line for line in summary
        ), region
    assert "sig=" not in out, "the example must not print SAS signatures"
