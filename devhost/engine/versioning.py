"""Orchestration versioning, as the Durable Task extension applies it (docs/deploying-changes.md).

host.json ``extensions.durableTask``:
- ``defaultVersion``: the version every new instance gets at creation (``ExecutionStarted.Version``, which
  the SDK shows as ``context.version``), unless the start names one (``?version=`` of the start URL, or a
  sub-orchestration action's ``version``). A sub-orchestration started without one gets the worker's
  ``defaultVersion``, not its parent's version; continue-as-new keeps the instance's version.
- ``versionMatchStrategy``: which instances this worker runs: ``None`` (all), ``Strict`` (only its
  ``defaultVersion``), ``CurrentOrOlder`` (the default: its ``defaultVersion`` and older).
- ``versionFailureStrategy`` for the others: ``Reject`` (the default: the work is left for a compatible
  worker and the instance stays as it is) or ``Fail`` (the instance fails).

Without a ``defaultVersion`` devhost checks nothing (a worker that never configured versioning runs every
instance, as before the feature; our reading, unverified).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MATCH_STRATEGIES = ("None", "Strict", "CurrentOrOlder")
FAILURE_STRATEGIES = ("Reject", "Fail")
# System.Version: two to four dot-separated non-negative integers.
_DOTNET_VERSION = re.compile(r"^\d+(\.\d+){1,3}$")


@dataclass(frozen=True)
class Versioning:
    default_version: str | None = None
    match_strategy: str = "CurrentOrOlder"
    failure_strategy: str = "Reject"

    @property
    def new_version(self) -> str:
        """The ``Version`` of an instance created without one ("" when no defaultVersion is set)."""
        return self.default_version or ""

    def mismatch(self, instance_id: str, version: str | None) -> str | None:
        """Why this worker may not run an instance of ``version`` (None when it may)."""
        if not self.default_version or self.match_strategy == "None":
            return None
        order = compare_versions(version, self.default_version)
        if order == 0 or (order < 0 and self.match_strategy == "CurrentOrOlder"):
            return None
        shown = repr(version) if version else "no version"
        return (
            f"The orchestration instance '{instance_id}' has {shown}; this worker's defaultVersion is "
            f"'{self.default_version}' with versionMatchStrategy {self.match_strategy} "
            "(host.json extensions.durableTask)."
        )


def compare_versions(a: str | None, b: str | None) -> int:
    """-1, 0 or 1, by the documented rules: empty/null versions are equal and older than any other;
    two System.Version strings (``1.0``, ``2.1.0``) compare by their numbers; otherwise the strings compare
    ignoring case. Two plain integers (``"2"``, ``"10"``) compare as numbers (documented "compared as
    numbers"; System.Version itself needs two parts)."""
    if not a or not b:
        return (bool(a) > bool(b)) - (bool(a) < bool(b))
    if (_DOTNET_VERSION.match(a) and _DOTNET_VERSION.match(b)) or (a.isdigit() and b.isdigit()):
        x = [int(p) for p in a.split(".")]
        y = [int(p) for p in b.split(".")]
        return (x > y) - (x < y)
    la, lb = a.lower(), b.lower()
    return (la > lb) - (la < lb)


def started_version(played: list[str], new_event: dict[str, Any]) -> str | None:
    """The ``Version`` of the execution's ``ExecutionStarted``: the new event, or the recorded one."""
    if new_event.get("EventType") == 0:
        return _version_of(new_event)
    for text in played[:3]:  # OrchestratorStarted, then ExecutionStarted
        ev = json.loads(text)
        if ev.get("EventType") == 0:
            return _version_of(ev)
    return None


def _version_of(ev: dict[str, Any]) -> str | None:
    value = ev.get("Version")
    return str(value) if value is not None else None


def parse_versioning(dt: dict[str, Any], where: str) -> Versioning:
    """``Versioning`` from host.json's ``durableTask`` object (enum names compare ignoring case, as .NET binds them)."""
    default = dt.get("defaultVersion")
    if default is not None and not isinstance(default, str):
        raise ValueError(f"{where}.defaultVersion: expected a string or null, got {default!r}")

    def choice(key: str, allowed: tuple[str, ...], fallback: str) -> str:
        value = dt.get(key)
        if value is None:
            return fallback
        match = next(
            (v for v in allowed if isinstance(value, str) and v.lower() == value.strip().lower()), None
        )
        if match is None:
            raise ValueError(f"{where}.{key}: expected one of {', '.join(allowed)}, got {value!r}")
        return match

    return Versioning(
        default_version=default or None,
        match_strategy=choice("versionMatchStrategy", MATCH_STRATEGIES, "CurrentOrOlder"),
        failure_strategy=choice("versionFailureStrategy", FAILURE_STRATEGIES, "Reject"),
    )


__all__ = ["Versioning", "compare_versions", "parse_versioning", "started_version"]
