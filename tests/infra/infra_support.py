"""Offline views of infra/ for tests/infra: pycep-parser's tree of each Bicep file, a checkov scan, the
app's registered functions, and the settings ``shared/settings.py`` reads.

pycep-parser and checkov live in ``.venv-infra`` (the Makefile bootstraps it from requirements-infra.txt),
so they run as subprocesses. checkov is run with ``--skip-download`` and with its HTTP(S) proxy set to a
closed port on 127.0.0.1, so that nothing it might try to fetch leaves this machine.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
INFRA_PYTHON = ROOT / ".venv-infra" / "bin" / "python"
CHECKOV = ROOT / ".venv-infra" / "bin" / "checkov"
_BICEP_JSON = Path(__file__).with_name("bicep_json.py")
_CLOSED_PORT_PROXY = "http://127.0.0.1:9"


def _require_infra_venv() -> None:
    if not INFRA_PYTHON.exists() or not CHECKOV.exists():
        pytest.fail(
            f"{INFRA_PYTHON.parent.parent} is missing: run `make bootstrap` (it installs checkov and "
            "pycep-parser from requirements-infra.txt)"
        )


def bicep_files(root: Path = INFRA) -> list[Path]:
    return sorted(root.rglob("*.bicep"))


def parse_bicep(paths: Iterable[Path]) -> dict[Path, dict[str, Any]]:
    """pycep-parser's result per file: ``{"tree": ...}`` or ``{"error": "..."}``."""
    _require_infra_venv()
    files = [str(p) for p in paths]
    done = subprocess.run(
        [str(INFRA_PYTHON), str(_BICEP_JSON), *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"bicep_json.py failed: {done.stderr[-2000:]}"
    return {Path(k): v for k, v in json.loads(done.stdout).items()}


@lru_cache(maxsize=1)
def _repo_trees() -> dict[str, dict[str, Any]]:
    parsed = parse_bicep(bicep_files())
    errors = {str(p): r["error"] for p, r in parsed.items() if "error" in r}
    assert not errors, f"Bicep files that do not parse: {errors}"
    return {str(p.relative_to(INFRA)): r["tree"] for p, r in parsed.items()}


def tree(relative: str) -> dict[str, Any]:
    """The parsed tree of ``infra/<relative>`` (parsed once per process, all files together)."""
    return _repo_trees()[relative]


def resolve(doc: dict[str, Any], value: Any) -> Any:
    """pycep writes a reference to a variable or parameter as its bare name: follow it to its value (a
    variable's expression, a parameter's default), else return the value unchanged."""
    if isinstance(value, str):
        if value in doc.get("variables", {}):
            return resolve(doc, doc["variables"][value]["value"])
        if value in doc.get("parameters", {}):
            return doc["parameters"][value].get("default")
    return value


def names_in(expr: Any) -> set[str]:
    """Every bare string in a pycep expression (the references it makes, among literals)."""
    if isinstance(expr, str):
        return {expr}
    if isinstance(expr, dict):
        return set().union(*(names_in(v) for v in expr.values())) if expr else set()
    if isinstance(expr, list):
        return set().union(*(names_in(v) for v in expr)) if expr else set()
    return set()


def body(entry: dict[str, Any]) -> dict[str, Any]:
    """A resource's or module's properties, looped or not."""
    config = entry["config"]
    return config["config"] if "loop_type" in config else config


def checkov_scan(directory: Path) -> dict[str, Any]:
    """checkov's JSON report of ``directory`` (Bicep framework), offline."""
    _require_infra_venv()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("BC_", "PRISMA_", "CKV_"))}
    env.update(
        HTTPS_PROXY=_CLOSED_PORT_PROXY, HTTP_PROXY=_CLOSED_PORT_PROXY, https_proxy=_CLOSED_PORT_PROXY,
        http_proxy=_CLOSED_PORT_PROXY, NO_PROXY="", no_proxy="",
    )  # fmt: skip
    done = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", "bicep", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.stdout.strip(), f"checkov printed no report: {done.stderr[-2000:]}"
    report = json.loads(done.stdout)
    return report[0] if isinstance(report, list) else report


@lru_cache(maxsize=1)
def _registered_functions() -> tuple[dict[str, Any], ...]:
    """function_app.py's functions as the worker would index them: name, trigger type, route, methods.

    In a fresh interpreter: ``get_functions()`` may be called once per app, and the import must not leave
    the app's modules behind in a test process other tests share.
    """
    script = (
        "import json, function_app\n"
        "out = []\n"
        "for f in function_app.app.get_functions():\n"
        "    t = f.get_trigger()\n"
        "    kind = t.get_binding_name() if t else ''\n"
        "    bindings = [json.loads(raw) for raw in f.get_raw_bindings()]\n"
        "    b = next((b for b in bindings if b.get('type') == kind), {})\n"
        "    out.append({'name': f.get_function_name(), 'trigger': kind,\n"
        "                'route': b.get('route'), 'methods': b.get('methods')})\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"importing function_app failed: {done.stderr[-2000:]}"
    return tuple(json.loads(done.stdout.strip().splitlines()[-1]))


def registered_functions() -> list[dict[str, Any]]:
    return list(_registered_functions())


_ENV_READERS = {"_float", "_bool", "_janitor_bool"}  # shared/settings.py: (env, NAME, default)


def settings_read(source: str, namespace: dict[str, Any]) -> set[str]:
    """The names of the settings a module's source reads: ``env.get(NAME, ...)`` and its typed readers
    ``_float/_bool/_janitor_bool(env, NAME, ...)``, NAME a string or a constant of ``namespace``. A read
    whose name is a parameter of the function making it (a generic reader such as ``_float``) is skipped:
    its callers name the setting."""
    names: set[str] = set()
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, ast.FunctionDef):
            continue
        params = {a.arg for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]}
        for node in ast.walk(fn):
            arg = _setting_arg(node)
            if arg is None or (isinstance(arg, ast.Name) and arg.id in params):
                continue
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
            elif isinstance(arg, ast.Name) and isinstance(namespace.get(arg.id), str):
                names.add(namespace[arg.id])
            else:
                raise AssertionError(
                    f"a setting read with a name this test cannot resolve: {ast.unparse(node)}"
                )
    return names


def _setting_arg(node: ast.AST) -> ast.expr | None:
    """The name argument of a settings read, or ``None`` if ``node`` is not one."""
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr == "get" and node.args:
        target = func.value
        if isinstance(target, ast.Name) and target.id == "env":
            return node.args[0]
        if isinstance(target, ast.IfExp):  # (os.environ if env is None else env).get(name)
            return node.args[0]
    if isinstance(func, ast.Name) and func.id in _ENV_READERS and len(node.args) >= 2:
        return node.args[1]
    return None


def optional_settings(readme: Path = INFRA / "README.md") -> set[str]:
    """The settings infra/README.md lists as left at the app's defaults (its table's first column)."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.startswith("## Settings left at the app's defaults")
    )
    names: set[str] = set()
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        if line.startswith("| `"):
            names.add(line.split("`")[1])
    return names
