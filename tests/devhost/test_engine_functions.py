"""devhost.functions: indexing an app like the worker and invoking its functions."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from devhost.functions import (
    AppLoadError,
    FunctionNotFound,
    call_activity,
    invoke,
    load_app,
)
from tests.devhost.engine_support import APPS


def test_index_exposes_worker_binding_metadata() -> None:
    index = load_app(APPS / "chaining")
    assert set(index.orchestrators) == {"chain", "calls_unknown"}
    assert set(index.activities) == {"hello", "RenamedActivity"}
    http = index.by_trigger("httpTrigger")
    assert [f.name for f in http] == ["http_start"]
    start = http[0]
    assert start.is_async is True  # the durable client middleware is async
    assert start.trigger_binding == {
        "direction": "IN", "type": "httpTrigger", "name": "req", "authLevel": "ANONYMOUS", "route": "start/{name}",
    }  # fmt: skip
    assert {"direction": "IN", "type": "durableClient", "name": "client"} in start.bindings
    assert {"direction": "OUT", "type": "http", "name": "$return"} in start.bindings
    renamed = index.activity("RenamedActivity")
    assert renamed.trigger_arg == "x" and renamed.is_async is True
    with pytest.raises(FunctionNotFound, match="registered activities: \\['RenamedActivity', 'hello'\\]"):
        index.activity("some_activity")  # the Python name is not the registered name


def test_activity_io_is_json_text_like_the_worker() -> None:
    index = load_app(APPS / "chaining")
    assert call_activity(index.activity("hello"), '"Tokyo"') == '"Hello Tokyo"'
    assert call_activity(index.activity("RenamedActivity"), '{"a": [1, 2]}') == '{"got": {"a": [1, 2]}}'
    assert call_activity(index.activity("hello"), "not json") == '"Hello not json"'  # raw string passthrough


def test_async_functions_run_safely_from_many_threads() -> None:
    index = load_app(APPS / "chaining")
    renamed = index.activity("RenamedActivity")
    results: dict[int, object] = {}

    def run(i: int) -> None:
        results[i] = invoke(renamed, x={"i": i})

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {i: {"got": {"i": i}} for i in range(8)}


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(AppLoadError, match=r"function_app\.py not found"):
        load_app(tmp_path)
    (tmp_path / "function_app.py").write_text("x = 1\n")
    with pytest.raises(AppLoadError, match="defines no FunctionApp"):
        load_app(tmp_path)
    (tmp_path / "function_app.py").write_text("import nonexistent_module_xyz\n")
    with pytest.raises(AppLoadError, match=r"Importing .*function_app\.py failed: ModuleNotFoundError"):
        load_app(tmp_path)


def test_non_serializable_activity_output_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(
        "import azure.durable_functions as df\n"
        "app = df.DFApp()\n"
        "@app.activity_trigger(input_name='x')\n"
        "def bad(x):\n"
        "    return object()\n"
    )
    index = load_app(tmp_path)
    with pytest.raises(ValueError, match="activity trigger output must be json serializable"):
        call_activity(index.activity("bad"), json.dumps(1))


def test_one_running_engine_per_work_dir(tmp_path: Path) -> None:
    from devhost.engine import Engine

    index = load_app(APPS / "chaining")
    first = Engine(index, tmp_path)
    first.start()
    try:
        second = Engine(index, tmp_path)
        with pytest.raises(RuntimeError, match="Another devhost engine is already running"):
            second.start()
        assert second.get_instance("nope") is None  # reading the store is still fine
        second.stop()
    finally:
        first.stop()
    third = Engine(index, tmp_path)
    third.start()  # the lock is released by stop()
    third.stop()
