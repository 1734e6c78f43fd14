"""Property-based fuzz of the Event Grid webhook (hypothesis, derandomized: the same cases every run).

- In process (about two thousand deliveries): both schemas, batches, garbage values in every field,
  malformed, future and too-old times, weird tags through the tag parser, whole bodies that are not
  deliveries. Properties: never a 5xx or an exception; a capture starts only for an unmodified, fresh
  deallocation event of a deallocated VM whose tags are valid and say ``image-pipeline:mode=inPlace``;
  such an event of a VM with no capture yet always starts one.
- Through devhost + azsim (a few dozen deliveries): invalid and stale events only; never a 5xx, and no
  capture instance appears for the VMs they name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.vm_tags import TAG_MODE, request_from_tags
from tests.support.stack import Stack, running_trigger_stack
from tests.triggers.eventgrid_world import GOOD_TAGS, NOW, World, as_cloud_event, eg_event, vm_id
from triggers import eventgrid_captures

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def bad_times(now: datetime) -> st.SearchStrategy[Any]:
    """Event times that must be refused when the clock reads ``now``."""
    return st.one_of(
        JSON_VALUES,
        st.sampled_from(
            [
                "9999-12-31T23:59:59Z",
                "9999-12-31T23:59:59.9999999-01:00",
                "0001-01-01T00:00:00+14:00",
                "2026-13-45T10:00:00Z",
                "2026-05-01",
                "2026-05-01T10:00:00",
                "yesterday",
                "",
            ]
        ),
        st.integers(min_value=6, max_value=10**6).map(
            lambda m: (now + timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ")
        ),
        st.integers(min_value=1, max_value=3650).map(
            lambda d: (now - timedelta(days=d, minutes=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
        ),
    )


VMS = ["vm-ok", "vm-running", "vm-nomode", "vm-weird", "vm-untagged", "vm-missing"]
TAG_NAMES = st.sampled_from(
    [
        TAG_MODE,
        "image-pipeline:gallery",
        "image-pipeline:definition",
        "image-pipeline:regions",
        "image-pipeline:version",
        "image-pipeline:enabled",
        "Image-Pipeline:MODE",
        "image-pipeline:mod",
        "image-pipeline:",
        "app",
    ]
) | st.text(max_size=20)
TAG_VALUES = st.sampled_from(
    ["inPlace", "INPLACE", "clone", "rg-images/galContoso", "golden", "true", ""]
) | st.text(max_size=40)
WEIRD_TAGS = st.dictionaries(TAG_NAMES, TAG_VALUES, max_size=8).map(lambda t: {**GOOD_TAGS, **t})


def corrupt(draw: st.DrawFn, event: dict[str, Any], now: datetime) -> dict[str, Any]:
    """One damage a forger or a broken sender could do to a deallocation event (either schema)."""
    cloud = "specversion" in event
    time_key, type_key = ("time", "type") if cloud else ("eventTime", "eventType")
    data = dict(event["data"])
    how = draw(st.sampled_from(["time", "id", "type", "data", "operation", "status", "vm", "drop"]))
    if how == "time":
        event[time_key] = draw(bad_times(now))
    elif how == "id":
        event["id"] = draw(JSON_VALUES.filter(lambda v: not isinstance(v, str) or not v) | st.just("x" * 300))
    elif how == "type":
        event[type_key] = draw(JSON_VALUES)
    elif how == "data":
        event["data"] = draw(JSON_VALUES.filter(lambda v: not isinstance(v, dict)))
    elif how == "operation":
        data["operationName"] = draw(JSON_VALUES)
    elif how == "status":
        data["status"] = draw(st.sampled_from(["Failed", "Canceled", "Started", 1, [], ""]))
    elif how == "vm":
        near = st.sampled_from(["\n", " ", "?", "#", "\x00", "/x/y", "%2F"]).map(
            lambda c: str(data["resourceUri"]) + c
        )
        data["resourceUri"] = draw(JSON_VALUES | near)
        event["subject"] = draw(JSON_VALUES | near)
    else:
        event.pop(draw(st.sampled_from(["id", time_key, "data", type_key])))
    if how in ("operation", "status", "vm"):
        event["data"] = data
    return event


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[bytes, set[str], dict[str, str]]:
    """A delivery body, the ids of the events in it that are genuine, and the weird VM's tags."""
    weird_tags = draw(WEIRD_TAGS)
    if draw(st.integers(0, 9)) == 0:  # a whole body that is no delivery at all
        raw = draw(st.binary(max_size=200) | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
        return raw, set(), weird_tags
    cloud = draw(st.booleans())
    events: list[Any] = []
    genuine: set[str] = set()
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 7)) == 0:
            events.append(draw(JSON_VALUES))
            continue
        vm = draw(st.sampled_from(VMS))
        age = draw(st.integers(min_value=-240, max_value=86_000))  # up to 4 min ahead (clock skew)
        event = eg_event(vm, at=NOW - timedelta(seconds=age))
        event = as_cloud_event(event) if cloud else event
        if draw(st.booleans()):
            event = corrupt(draw, event, NOW)
        else:
            genuine.add(event["id"])
        events.append(event)
    return json.dumps(events).encode(), genuine, weird_tags


def build_world(weird_tags: dict[str, str]) -> World:
    w = World()
    w.add_vm("vm-ok", GOOD_TAGS)
    w.add_vm("vm-running", {**GOOD_TAGS, "image-pipeline:definition": "r"}, power="running")
    w.add_vm("vm-nomode", {k: v for k, v in GOOD_TAGS.items() if k != TAG_MODE})
    w.add_vm("vm-weird", weird_tags)
    w.add_vm("vm-untagged", {"app": "x"})
    return w


@settings(
    max_examples=2000,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(deliveries())
def test_fuzz_in_process(case: tuple[bytes, set[str], dict[str, str]]) -> None:
    raw, genuine, weird_tags = case
    w = build_world(weird_tags)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(eventgrid_captures, "read_vm", w.read_vm)
        mp.setattr(eventgrid_captures, "start_capture", w.start_capture)
        code, answer, _ = w.deliver(raw)
    assert code in (200, 400, 413), (code, answer)
    started_ids = {r["tags"]["image-pipeline:event-id"] for r in w.started}
    assert started_ids <= genuine, "a capture started from an invalid or modified event"
    weird_ok = request_from_tags(vm_id("vm-weird"), weird_tags)
    allowed = {vm_id("vm-ok")} | (
        {vm_id("vm-weird")} if weird_ok.request is not None and weird_ok.enabled else set()
    )
    assert {r["sourceVmId"] for r in w.started} <= allowed
    assert len(w.started) == len({r["sourceVmId"] for r in w.started})  # one capture per VM
    # Liveness: a genuine event of vm-ok (no capture yet) always starts one.
    events = json.loads(raw) if code == 200 else []
    ok_genuine = [
        e
        for e in events
        if isinstance(e, dict) and str(e.get("id")) in genuine and vm_id("vm-ok") in str(e.get("subject"))
    ]
    assert bool(ok_genuine) == (vm_id("vm-ok") in {r["sourceVmId"] for r in w.started})


# --- through devhost + azsim ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def fstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_trigger_stack(Path(tmp_path_factory.mktemp("eventgrid-fuzz"))) as s:
        yield s
        s.assert_no_secrets()


@st.composite
def stack_deliveries(draw: st.DrawFn, stack: Stack, now: datetime) -> bytes:
    """Deliveries naming vm-fuzz (deallocated, tagged) only in damaged events, and vm-golden-up (running)
    and vm-nomode (no mode tag) in genuine ones."""
    events: list[Any] = []
    for _ in range(draw(st.integers(1, 4))):
        vm = draw(st.sampled_from(["vm-fuzz", "vm-golden-up", "vm-nomode"]))
        event = stack.deallocation_event(vm, at=now)
        event = stack.as_cloud_event(event) if draw(st.booleans()) else event
        events.append(corrupt(draw, event, now) if vm == "vm-fuzz" else event)
    raw = json.dumps(events).encode()
    if draw(st.integers(0, 5)) == 0:
        return draw(st.sampled_from([b"[" * 3000, b"{", b"7", raw[:-1], b"[" + raw + b"," + raw + b"]"]))
    return raw


@pytest.mark.e2e
def test_fuzz_through_devhost(fstack: Stack) -> None:
    codes: list[int] = []

    @settings(
        max_examples=60,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(stack_deliveries(fstack, datetime.now(UTC)))
    def one(raw: bytes) -> None:
        code, answer = fstack.deliver_raw(raw)
        codes.append(code)
        assert code < 500, (code, answer, raw[:300])

    one()
    assert len(codes) >= 30 and {200, 400} <= set(codes)
    for vm in ("vm-fuzz", "vm-golden-up", "vm-nomode"):
        assert not fstack.capture_instances(vm), vm
    log = fstack.devhost.log_text()
    assert "vm-nomode is tagged for capture but its tags are invalid" in log and TAG_MODE in log
