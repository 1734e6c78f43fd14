"""The size budget that ``make lint`` enforces.

Small files and short functions keep each decision readable in a screenful, and the budget holds
only if a machine checks it: ruff has no rule for file length or function length, so this module
does that part (ruff's C901 covers cyclomatic complexity). The limits:

- in ``triggers/``, ``orchestrators/``, ``activities/`` and ``shared/``: no file over 400 lines and
  no function (methods and nested functions included) over 60 lines, counted from the ``def`` line
  to the last line of its body;
- in ``azsim/`` and ``devhost/`` (the local cloud and host, larger by nature): no file over 600 lines.

Run ``python -m tools.budget [ROOT]``: one line per violation, ``path:line: what (n > limit)``, and
exit status 1 if there is any.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Budget:
    """The limits for the Python files under one folder (``None``: that limit is not checked)."""

    folder: str
    max_file_lines: int
    max_function_lines: int | None


PRODUCT_FILE_LINES = 400
PRODUCT_FUNCTION_LINES = 60
SIMULATOR_FILE_LINES = 600

BUDGETS: tuple[Budget, ...] = (
    *(
        Budget(f, PRODUCT_FILE_LINES, PRODUCT_FUNCTION_LINES)
        for f in ("triggers", "orchestrators", "activities", "shared")
    ),
    *(Budget(f, SIMULATOR_FILE_LINES, None) for f in ("azsim", "devhost")),
)


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    what: str
    size: int
    limit: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what} ({self.size} > {self.limit})"


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def check_file(path: Path, shown: str, budget: Budget) -> list[Violation]:
    """The violations in one file; ``shown`` is the path as the report prints it."""
    text = path.read_text(encoding="utf-8")
    found: list[Violation] = []
    lines = len(text.splitlines())
    if lines > budget.max_file_lines:
        found.append(Violation(shown, 1, "file has too many lines", lines, budget.max_file_lines))
    if budget.max_function_lines is None:
        return found
    for fn in _functions(ast.parse(text, filename=shown)):
        # ``lineno`` is the ``def`` line (decorators sit above it); ``end_lineno`` the body's last line.
        length = (fn.end_lineno or fn.lineno) - fn.lineno + 1
        if length > budget.max_function_lines:
            found.append(
                Violation(
                    shown, fn.lineno, f"function {fn.name} is too long", length, budget.max_function_lines
                )
            )
    return found


def check_tree(root: Path, budgets: Sequence[Budget] = BUDGETS) -> list[Violation]:
    """Every violation under ``root``, in path order (folders that do not exist are skipped)."""
    found: list[Violation] = []
    for budget in budgets:
        for path in sorted((root / budget.folder).rglob("*.py")):
            found.extend(check_file(path, path.relative_to(root).as_posix(), budget))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    root = Path(args[0]) if args else Path.cwd()
    violations = check_tree(root)
    for violation in violations:
        print(violation)
    return 1 if violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
