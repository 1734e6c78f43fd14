"""devhost's orchestration versioning: version stamping, inheritance, and the match / failure strategies.

The rules are the extension's (docs/deploying-changes.md): an instance gets host.json's defaultVersion
(or the version its start names) when it is created and keeps it (also through continue-as-new); a
sub-orchestration started without a version gets the worker's defaultVersion; a worker runs only the
instances its versionMatchStrategy accepts and rejects (leaves) or fails the others.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from devhost.engine.history import EventType
from devhost.engine.versioning import Versioning, compare_versions
from devhost.settings import SettingsError, load_host_config
from tests.devhost.engine_support import running_engine, wait_until


def _started(history: list[dict[str, object]]) -> dict[str, object]:
    return next(e for e in history if e["EventType"] == EventType.ExecutionStarted)


def _waiting(engine: object, iid: str) -> None:
    # The instance has recorded its first episode (it waits for an event).
    wait_until(lambda: len(engine.history(iid)) >= 3, what=f"{iid} to wait")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("a", "b", "order"),
    [
        (None, "", 0),
        ("", "1", -1),
        ("1.0", None, 1),
        ("1.0", "1.0.0", -1),  # System.Version: 1.0 < 1.0.0 (a missing part is older)
        ("1.2", "1.10", -1),
        ("2", "10", -1),  # plain integers compare as numbers
        ("V1.0-Release", "v1.0-release", 0),  # otherwise strings, ignoring case
        ("2025-02-01", "2025-01-31", 1),
    ],
)
def test_version_order_follows_the_documented_rules(a: str | None, b: str | None, order: int) -> None:
    assert compare_versions(a, b) == order
    assert compare_versions(b, a) == -order


def test_host_json_versioning_settings_are_read_and_checked(tmp_path: Path) -> None:
    host = tmp_path / "host.json"
    host.write_text(json.dumps({"version": "2.0", "extensions": {"durableTask": {"defaultVersion": "2"}}}))
    assert load_host_config(tmp_path).versioning == Versioning("2", "CurrentOrOlder", "Reject")
    dt = {"defaultVersion": "2", "versionMatchStrategy": "strict", "versionFailureStrategy": "FAIL"}
    host.write_text(json.dumps({"version": "2.0", "extensions": {"durableTask": dt}}))
    assert load_host_config(tmp_path).versioning == Versioning("2", "Strict", "Fail")
    host.write_text(json.dumps({"extensions": {"durableTask": {"versionMatchStrategy": "Newest"}}}))
    with pytest.raises(
        SettingsError, match=r"versionMatchStrategy: expected one of None, Strict, CurrentOrOlder"
    ):
        load_host_config(tmp_path)


def test_new_instances_get_the_default_version_children_too_unless_a_version_is_named(tmp_path: Path) -> None:
    with running_engine("versioning", tmp_path, versioning=Versioning("1.0")) as (engine, _, _):
        iid = engine.start_new("parent", "p1", None)
        named = engine.start_new("child", "c1", None, version="0.5")
        assert json.loads(engine.wait_for(named).output or "") == "0.5"
        _waiting(engine, iid)
        engine.raise_event(iid, "go", None)
        rec = engine.wait_for(iid)
        assert rec.runtime_status == "Completed", rec.output
        assert json.loads(rec.output or "") == ["1.0", "0.9", "1.0"]
        history = engine.history(iid)
    assert _started(history)["Version"] == "1.0"
    created = [e["Version"] for e in history if e["EventType"] == EventType.SubOrchestrationInstanceCreated]
    assert created == ["0.9", "1.0"]


def test_without_a_default_version_instances_carry_an_empty_version(tmp_path: Path) -> None:
    with running_engine("versioning", tmp_path) as (engine, _, _):
        iid = engine.start_new("child", "c1", None)
        assert json.loads(engine.wait_for(iid).output or "") == ""
        assert _started(engine.history(iid))["Version"] == ""


def test_deploying_a_newer_default_keeps_running_instances_on_their_version(tmp_path: Path) -> None:
    with running_engine("versioning", tmp_path, versioning=Versioning("1.0")) as (engine, _, _):
        iid = engine.start_new("parent", "p1", None)
        _waiting(engine, iid)
    # The new deployment: same store, defaultVersion 2.0 (CurrentOrOlder runs the older instance).
    with running_engine("versioning", tmp_path, versioning=Versioning("2.0")) as (engine, _, _):
        engine.raise_event(iid, "go", None)
        rec = engine.wait_for(iid)
    # The parent keeps 1.0; the child it starts now gets the new defaultVersion (as the extension does).
    assert json.loads(rec.output or "") == ["1.0", "0.9", "2.0"]


def test_continue_as_new_keeps_the_version(tmp_path: Path) -> None:
    with running_engine("versioning", tmp_path, versioning=Versioning("1.0")) as (engine, _, _):
        iid = engine.start_new("looping", "l1", None)
        _waiting(engine, iid)
    with running_engine("versioning", tmp_path, versioning=Versioning("2.0")) as (engine, _, _):
        engine.raise_event(iid, "again", None)
        rec = engine.wait_for(iid)
    assert json.loads(rec.output or "") == ["1.0", "1.0"]


@pytest.mark.parametrize(
    ("started", "worker"),
    [
        (Versioning("2.0"), Versioning("1.0")),  # CurrentOrOlder: an older worker never runs a newer instance
        (Versioning("1.0"), Versioning("2.0", "Strict")),  # Strict: only its own version
    ],
)
def test_reject_leaves_the_instance_as_it_is_for_a_compatible_worker(
    tmp_path: Path, started: Versioning, worker: Versioning
) -> None:
    with running_engine("versioning", tmp_path, versioning=started) as (engine, _, _):
        iid = engine.start_new("parent", "p1", None)
        _waiting(engine, iid)
        before = len(engine.history(iid))
    with running_engine("versioning", tmp_path, versioning=worker) as (engine, _, _):
        engine.raise_event(iid, "go", None)
        engine.run_until_idle(10)  # the rejected work is not runnable: the engine goes idle
        rec = engine.get_instance(iid)
        assert rec is not None and rec.runtime_status == "Running"
        assert len(engine.history(iid)) == before  # nothing ran, nothing was recorded
    with running_engine("versioning", tmp_path, versioning=started) as (engine, _, _):
        rec = engine.wait_for(iid)  # a compatible worker takes the kept event
    assert rec.runtime_status == "Completed", rec.output


def test_fail_strategy_fails_the_instance_and_says_why(tmp_path: Path) -> None:
    with running_engine("versioning", tmp_path, versioning=Versioning("2.0")) as (engine, _, _):
        iid = engine.start_new("parent", "p1", None)
        _waiting(engine, iid)
    with running_engine("versioning", tmp_path, versioning=Versioning("1.0", failure_strategy="Fail")) as (
        engine,
        _,
        _,
    ):
        engine.raise_event(iid, "go", None)
        rec = engine.wait_for(iid)
    assert rec.runtime_status == "Failed"
    assert "'2.0'" in (rec.output or "") and "defaultVersion is '1.0'" in (rec.output or "")


def test_a_terminate_is_never_rejected(tmp_path: Path) -> None:
    with running_engine("versioning", tmp_path, versioning=Versioning("2.0")) as (engine, _, _):
        iid = engine.start_new("parent", "p1", None)
        _waiting(engine, iid)
    with running_engine("versioning", tmp_path, versioning=Versioning("1.0")) as (engine, _, _):
        engine.raise_event(iid, "go", None)
        engine.run_until_idle(10)
        engine.terminate(iid, "straggler")
        rec = engine.wait_for(iid)
    assert rec.runtime_status == "Terminated"


def test_devhost_stamps_host_json_default_and_the_start_urls_version(tmp_path: Path) -> None:
    import shutil

    from devhost.testing import running_devhost
    from tests.support.http import http, wait_for

    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(Path(__file__).resolve().parent / "apps" / "versioning" / "function_app.py", app)
    (app / "host.json").write_text(
        json.dumps({"version": "2.0", "extensions": {"durableTask": {"defaultVersion": "3.0"}}})
    )
    with running_devhost(app, tmp_path / "wd") as dh:
        outputs = {}
        for iid, query in (("plain", ""), ("named", "?version=0.7")):
            code, body, _ = http(
                "POST", dh.url(f"runtime/webhooks/durabletask/orchestrators/child/{iid}{query}")
            )
            assert code == 202, body

            def done(iid: str = iid) -> Any:
                status = http("GET", dh.url(f"runtime/webhooks/durabletask/instances/{iid}"))[1]
                return status if status.get("runtimeStatus") == "Completed" else None

            outputs[iid] = wait_for(f"{iid} to complete", done, timeout=20)["output"]
    assert outputs == {"plain": "3.0", "named": "0.7"}
