"""Microsoft's ARM spec extracts as a yardstick for azsim: load them, find an operation, validate a
JSON body against a definition (a small JSON-schema-ish checker over the swagger definitions) and
read the spec's own examples.

The extracts live outside the repository (Microsoft's files, not copied into the project): the folder
is ``$AZSIM_ARM_SPECS`` or the first ``shared/reference/arm-specs`` found above the repository.
Checked: property names (unknown ones are errors), JSON types, ``required``, ``enum`` values,
``date-time``/``int32``/``uri`` formats, ``additionalProperties``, following ``$ref`` and ``allOf``
across the files. ``readOnly`` is not checked (responses may carry read-only values). Definitions
marked ``x-extract-stub`` accept any value.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

SPEC_FILES = (
    "compute-2026-04-01.json",
    "disk-2026-03-02.json",
    "gallery-2026-03-03.json",
    "subscriptions-2022-12-01.json",
)
_INT32 = (-(2**31), 2**31 - 1)


def spec_dir() -> Path | None:
    env = os.environ.get("AZSIM_ARM_SPECS")
    if env:
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "reference" / "arm-specs"
        if (candidate / "README.md").is_file():
            return candidate
    return None


@dataclass(frozen=True)
class Operation:
    id: str
    file: str
    method: str
    path: str
    responses: dict[str, str | None]  # status -> definition name (None: no body)
    headers: dict[str, list[str]]
    final_state_via: str | None
    examples: list[str]

    def path_regex(self) -> re.Pattern[str]:
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(self.path))
        return re.compile(f"^{pattern}$", re.IGNORECASE)


class Spec:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: dict[str, dict[str, Any]] = {}
        for name in (*SPEC_FILES, "types.json", "common.json"):
            self.files[name] = json.loads((folder / name).read_text())
        self.operations: dict[str, Operation] = {}
        for name in SPEC_FILES:
            for op_id, op in self.files[name]["operations"].items():
                self.operations[op_id] = Operation(
                    op_id,
                    name,
                    op["method"].upper(),
                    op["path"],
                    dict(op["responses"]),
                    {k: list(v) for k, v in (op.get("headers") or {}).items()},
                    (op.get("lro") or {}).get("final-state-via"),
                    list(op.get("examples") or []),
                )

    def readme_operations(self) -> set[str]:
        """Operation ids the README's example table names (the operations the yardstick covers)."""
        text = (self.folder / "README.md").read_text()
        return {
            op
            for op in re.findall(r"\| ([A-Za-z]+_[A-Za-z]+) \|$", text, re.MULTILINE)
            if op in self.operations
        }

    def operation_for(self, method: str, path: str) -> Operation | None:
        for op in self.operations.values():
            if op.method == method and op.path_regex().match(path):
                return op
        return None

    def example(self, family: str, name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.folder / "examples" / family / name).read_text())
        return data

    # ------------------------------------------------------------------ validation

    def validate(self, file: str, definition: str, value: Any) -> list[str]:
        errors: list[str] = []
        self._check(file, {"$ref": f"#/definitions/{definition}"}, value, "$", errors)
        return errors

    def _resolve(self, file: str, ref: str) -> tuple[str, dict[str, Any]]:
        target, _, pointer = ref.partition("#")
        target = target or file
        name = pointer.rsplit("/", 1)[-1]
        return target, self.files[target]["definitions"][name]

    def _flatten(self, file: str, schema: dict[str, Any]) -> tuple[dict[str, Any], set[str], bool]:
        """Properties (with their defining file), required names and whether any part is a stub."""
        props: dict[str, Any] = {k: (file, v) for k, v in (schema.get("properties") or {}).items()}
        required = set(schema.get("required") or [])
        stub = bool(schema.get("x-extract-stub"))
        for part in schema.get("allOf") or []:
            part_file, part_schema = (file, part)
            if "$ref" in part:
                part_file, part_schema = self._resolve(file, part["$ref"])
            p, r, s = self._flatten(part_file, part_schema)
            props.update(p)
            required |= r
            stub = stub or s
        return props, required, stub

    def _check(self, file: str, schema: dict[str, Any], value: Any, where: str, errors: list[str]) -> None:
        if "$ref" in schema:
            file, schema = self._resolve(file, schema["$ref"])
        if schema.get("x-extract-stub"):
            return
        kind = schema.get("type") or ("object" if "properties" in schema or "allOf" in schema else None)
        if not _type_ok(kind, value):
            errors.append(f"{where}: expected {kind}, got {type(value).__name__} {value!r:.60}")
            return
        if "enum" in schema and value not in schema["enum"]:
            errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
        _check_format(schema.get("format"), value, where, errors)
        if kind == "array":
            for i, item in enumerate(value):
                self._check(file, schema.get("items") or {}, item, f"{where}[{i}]", errors)
        elif kind == "object":
            self._check_object(file, schema, value, where, errors)

    def _check_object(
        self, file: str, schema: dict[str, Any], value: dict[str, Any], where: str, errors: list[str]
    ) -> None:
        props, required, stub = self._flatten(file, schema)
        if stub:
            return
        for name in sorted(required - value.keys()):
            errors.append(f"{where}: required property {name!r} missing")
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            if name in props:
                prop_file, prop_schema = props[name]
                self._check(prop_file, prop_schema, item, f"{where}.{name}", errors)
            elif isinstance(extra, dict):
                self._check(file, extra, item, f"{where}.{name}", errors)
            elif props or extra is False:
                errors.append(f"{where}: property {name!r} is not in the spec")


def _type_ok(kind: str | None, value: Any) -> bool:
    checks: dict[str, Any] = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    }
    return kind is None or bool(checks[kind](value))


def _check_format(fmt: str | None, value: Any, where: str, errors: list[str]) -> None:
    if fmt == "date-time" and isinstance(value, str):
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            errors.append(f"{where}: {value!r} is not a date-time")
    elif fmt == "int32" and isinstance(value, int) and not _INT32[0] <= value <= _INT32[1]:
        errors.append(f"{where}: {value} is out of the int32 range")
    elif fmt == "uri" and isinstance(value, str) and not re.match(r"^[a-z][a-z0-9+.-]*://", value, re.I):
        errors.append(f"{where}: {value!r} is not a URI")


@cache
def load_spec() -> Spec | None:
    folder = spec_dir()
    return Spec(folder) if folder is not None else None
