"""The size budget (tools/budget.py) fails on a long function and a long file, passes on a compliant
tree, and is part of ``make lint``. No servers: this runs in ``make test-fast``."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tools.budget import PRODUCT_FILE_LINES, PRODUCT_FUNCTION_LINES, SIMULATOR_FILE_LINES, check_tree, main

REPO = Path(__file__).resolve().parents[2]


def _function(name: str, lines: int) -> str:
    """A function of exactly ``lines`` lines from ``def`` to the last line of its body."""
    body = "".join(f"    x{i} = {i}\n" for i in range(lines - 2))
    return f"def {name}() -> int:\n{body}    return 0\n"


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _filler(lines: int) -> str:
    return "".join(f"X{i} = {i}\n" for i in range(lines))


def _broken_tree(root: Path) -> None:
    _write(root, "activities/long_function.py", _function("too_long", PRODUCT_FUNCTION_LINES + 1))
    _write(root, "shared/long_file.py", _filler(PRODUCT_FILE_LINES + 1))


def _compliant_tree(root: Path) -> None:
    # Every limit met exactly: a 60-line function (also nested in a class), a 400-line product file,
    # and a 600-line simulator file with a function far over 60 lines (azsim has no function limit).
    method = "".join(
        "    " + line + "\n" for line in _function("at_limit", PRODUCT_FUNCTION_LINES).splitlines()
    )
    _write(root, "activities/ok.py", _function("at_limit", PRODUCT_FUNCTION_LINES) + f"class C:\n{method}")
    _write(root, "shared/full.py", _filler(PRODUCT_FILE_LINES))
    long_sim = _function("long_handler", 200)
    _write(root, "azsim/full.py", long_sim + _filler(SIMULATOR_FILE_LINES - len(long_sim.splitlines())))


def test_the_checker_names_a_61_line_function_and_a_401_line_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _broken_tree(tmp_path)
    assert main([str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert sorted(out) == [
        "activities/long_function.py:1: function too_long is too long (61 > 60)",
        "shared/long_file.py:1: file has too many lines (401 > 400)",
    ]


def test_methods_and_nested_functions_count(tmp_path: Path) -> None:
    inner = "".join("    " + line + "\n" for line in _function("inner", 61).splitlines())
    _write(tmp_path, "triggers/nested.py", f"def outer() -> None:\n{inner}")
    _write(tmp_path, "devhost/big.py", _filler(601))
    found = {(v.path, v.line, v.what) for v in check_tree(tmp_path)}
    assert found == {
        ("triggers/nested.py", 1, "function outer is too long"),
        ("triggers/nested.py", 2, "function inner is too long"),
        ("devhost/big.py", 1, "file has too many lines"),
    }


def test_the_checker_passes_a_compliant_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _compliant_tree(tmp_path)
    assert main([str(tmp_path)]) == 0
    assert capsys.readouterr().out == ""


def _lint_recipe() -> list[str]:
    """The commands ``make lint`` runs (``make -n`` prints them without running any)."""
    result = subprocess.run(
        ["make", "-n", "lint"], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout.splitlines()


def test_make_lint_runs_the_checker_and_fails_with_it(tmp_path: Path) -> None:
    budget_lines = [line for line in _lint_recipe() if "tools.budget" in line]
    assert len(budget_lines) == 1, "make lint does not run tools/budget.py"
    # Run that very command in a tree with a long function: the lint step exits non-zero.
    command = shlex.split(budget_lines[0])
    assert command[-2:] == ["-m", "tools.budget"]
    _broken_tree(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, *command[1:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "activities/long_function.py:1: function too_long is too long (61 > 60)" in result.stdout
