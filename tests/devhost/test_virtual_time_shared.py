"""devhost on azsim's clock (--clock-url): the race of an HTTP-raised event against a 2-day timer.

The test holds azsim's clock while it starts the orchestration and, 0.5 s of wall time later,
raises the event over devhost's HTTP API; devhost asks azsim before every skip, so the hold keeps
the timer from firing and the event wins. Without a hold the timer wins at once.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from azsim.testing import local_cloud
from devhost.testing import DevhostProcess, running_devhost

APP = Path(__file__).resolve().parent / "apps" / "race"
pytestmark = pytest.mark.e2e


def _call(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read()
        return resp.status, json.loads(text) if text else None


def _wait_done(status_url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        _, body = _call("GET", status_url)
        if body["runtimeStatus"] in ("Completed", "Failed", "Terminated"):
            return dict(body)
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def _start(dh: DevhostProcess) -> dict[str, Any]:
    code, body = _call("POST", dh.url("/runtime/webhooks/durabletask/orchestrators/approval"))
    assert code == 202
    return dict(body)


def test_a_held_shared_clock_lets_an_http_event_beat_a_two_day_timer(tmp_path: Path) -> None:
    with (
        local_cloud(tmp_path / "azsim", virtual_clock=True) as cloud,
        running_devhost(APP, tmp_path / "dh", env=dict(cloud), clock_url=cloud.clock_url) as dh,
    ):
        before = cloud.clock()["now"]
        with cloud.hold():
            started = _start(dh)
            time.sleep(0.5)
            raise_url = started["sendEventPostUri"].replace("{eventName}", "approve")
            _call("POST", raise_url, "bob")  # answered once the event is recorded: safe to release
        won = _wait_done(started["statusQueryGetUri"])
        assert won["output"] == {"result": "approved", "by": "bob"}
        assert cloud.clock()["now"] == before  # no time had to pass at all

        lost = _wait_done(_start(dh)["statusQueryGetUri"])  # no hold: nothing runnable, time skips
        assert lost["output"] == {"result": "timed out"}
        assert cloud.clock()["now"] - before == 2 * 86400
