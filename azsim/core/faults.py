"""Fault injection from a JSON file: which requests fail, how, how often; deterministic under a seed.

Format (documented with examples in docs/azsim-arm.md)::

    {"rules": [
      {"name": "snapshot-503", "match": {"action": "Microsoft.Compute/snapshots/write"},
       "effect": {"type": "status", "status": 503}, "count": 2},
      {"match": {"method": "GET", "path": "/virtualMachines/vm-web$"}, "effect": {"type": "connectionReset"},
       "probability": 0.5},
      {"match": {"action": "Microsoft.Compute/virtualMachines/deallocate/action"},
       "effect": {"type": "lroFailure", "code": "InternalExecutionError", "message": "boom"}},
      {"match": {"action": "Microsoft.Compute/galleries/images/versions/write"},
       "effect": {"type": "replicationFailure", "region": "eastus"}},
      {"match": {"action": "Microsoft.Compute/virtualMachines/write"},
       "effect": {"type": "vmCreateFailure", "reason": "allocationFailed"}, "count": 2},
      {"match": {"copy": {"account": "stexports", "blob": "\\.vhd$"}}, "effect": {"type": "copy", "outcome": "fail"}}
    ]}

A rule fires when every given matcher matches, after skipping its first ``after`` matches, at most
``count`` times, each time with ``probability`` (drawn from a per-rule RNG seeded by ``seed`` and the
rule's index, so the sequence is reproducible and independent of other rules).
"""

from __future__ import annotations

import json
import random
import re
import threading
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel


class FaultFileError(ValueError):
    """The fault file is unreadable or invalid; the message names file, field and expectation."""


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class CopyMatch(_Model):
    # Regexes (search) on the copy destination; omitted = any.
    account: str | None = None
    container: str | None = None
    blob: str | None = None


class Match(_Model):
    # ARM action string, '*' wildcards allowed (e.g. "Microsoft.Compute/snapshots/*").
    action: str | None = None
    method: str | None = None
    # Regex searched in the request path (no query string).
    path: str | None = None
    # For copy rules: the destination of a blob copy (asked by the blob front through copy_fault).
    copy_: Annotated[CopyMatch | None, Field(alias="copy")] = None

    @field_validator("path")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"expected a regular expression: {exc}") from None
        return value


class StatusEffect(_Model):
    type: Literal["status"]
    status: Annotated[int, Field(ge=400, le=599)]
    code: str | None = None
    message: str | None = None
    # Seconds for Retry-After (omitted: 1 for 429/503, none otherwise).
    retry_after: Annotated[float, Field(ge=0)] | None = None


class ResetEffect(_Model):
    type: Literal["connectionReset"]


class LroFailureEffect(_Model):
    type: Literal["lroFailure"]
    code: str = "InternalExecutionError"
    message: str = "An internal execution error occurred. Please retry later."
    status: Literal["Failed", "Canceled"] = "Failed"


class ReplicationFailureEffect(_Model):
    type: Literal["replicationFailure"]
    region: str
    message: str = "Replication failed in this region."


class VmCreateFailureEffect(_Model):
    """A VM create (PUT of a new VM) fails as Azure fails it, with Azure's code and text:
    ``allocationFailed`` ends the create operation Failed (retryable; the VM stays, Failed),
    ``skuNotAvailable`` and ``quotaExceeded`` refuse the PUT with 409 (terminal)."""

    type: Literal["vmCreateFailure"]
    reason: Literal["allocationFailed", "skuNotAvailable", "quotaExceeded"]
    # For quotaExceeded: the regional vCPU limit the message reports.
    cores_limit: Annotated[int, Field(ge=0)] = 10


class CopyEffect(_Model):
    type: Literal["copy"]
    outcome: Literal["fail", "stall", "abort"]


Effect = Annotated[
    StatusEffect
    | ResetEffect
    | LroFailureEffect
    | ReplicationFailureEffect
    | VmCreateFailureEffect
    | CopyEffect,
    Field(discriminator="type"),
]


class FaultRule(_Model):
    name: str | None = None
    match: Match
    effect: Effect
    probability: Annotated[float, Field(ge=0, le=1)] = 1.0
    count: Annotated[int, Field(ge=1)] | None = None
    after: Annotated[int, Field(ge=0)] = 0


class FaultRules(_Model):
    rules: list[FaultRule] = Field(default_factory=list)


def _json_path(loc: tuple[int | str, ...]) -> str:
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def parse_faults(data: Any, *, source: str = "<memory>") -> FaultRules:
    try:
        rules = FaultRules.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:10]:
            detail = err["msg"]
            if err["type"] == "extra_forbidden":
                detail = "unknown field (check spelling; fields are camelCase)"
            elif err["type"] == "union_tag_invalid":
                detail = (
                    "expected effect type one of status, connectionReset, lroFailure, replicationFailure, "
                    "vmCreateFailure, copy"
                )
            problems.append(f"{source}: {_json_path(tuple(err['loc']))}: {detail}")
        raise FaultFileError("invalid fault file:\n  " + "\n  ".join(problems)) from None
    for i, rule in enumerate(rules.rules):
        is_copy_effect = isinstance(rule.effect, CopyEffect)
        if is_copy_effect != (rule.match.copy_ is not None):
            raise FaultFileError(
                f"{source}: $.rules[{i}].match: a 'copy' effect needs a 'copy' matcher and a 'copy' matcher "
                "needs a 'copy' effect"
            )
        if not is_copy_effect and not (rule.match.action or rule.match.method or rule.match.path):
            raise FaultFileError(
                f"{source}: $.rules[{i}].match: expected at least one of action, method, path"
            )
    return rules


def load_faults(path: str | Path) -> FaultRules:
    """Read and validate a fault file; raise ``FaultFileError`` naming file, field and expectation."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FaultFileError(f"{p}: cannot read fault file ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise FaultFileError(
            f"{p}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    return parse_faults(data, source=str(p))


class FaultEngine:
    """Decides, per request or copy, whether a rule fires. Thread-safe; ``reset()`` rewinds it."""

    def __init__(self, rules: FaultRules | None, seed: int = 0) -> None:
        self.rules = rules or FaultRules()
        self.seed = seed
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._seen = [0] * len(self.rules.rules)
            self._fired = [0] * len(self.rules.rules)
            self._rngs = [random.Random(self.seed * 1_000_003 + i) for i in range(len(self.rules.rules))]

    def _fire(self, i: int, rule: FaultRule) -> bool:
        self._seen[i] += 1
        if self._seen[i] <= rule.after:
            return False
        if rule.count is not None and self._fired[i] >= rule.count:
            return False
        if rule.probability < 1.0 and self._rngs[i].random() >= rule.probability:
            return False
        self._fired[i] += 1
        return True

    def for_request(self, action: str, method: str, path: str, *, kinds: tuple[str, ...]) -> list[Any]:
        """Effects of the given ``kinds`` (effect type names) that fire for this request."""
        fired: list[Any] = []
        with self._lock:
            for i, rule in enumerate(self.rules.rules):
                if rule.effect.type not in kinds or rule.match.copy_ is not None:
                    continue
                m = rule.match
                if m.action and not fnmatchcase(action.lower(), m.action.lower()):
                    continue
                if m.method and m.method.upper() != method.upper():
                    continue
                if m.path and not re.search(m.path, path):
                    continue
                if self._fire(i, rule):
                    fired.append(rule.effect)
        return fired

    def for_copy(self, account: str, container: str, blob: str) -> Literal["fail", "stall", "abort"] | None:
        with self._lock:
            for i, rule in enumerate(self.rules.rules):
                c = rule.match.copy_
                if c is None or not isinstance(rule.effect, CopyEffect):
                    continue
                if c.account and not re.search(c.account, account):
                    continue
                if c.container and not re.search(c.container, container):
                    continue
                if c.blob and not re.search(c.blob, blob):
                    continue
                if self._fire(i, rule):
                    return rule.effect.outcome
        return None

    def counts(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"name": r.name or f"rule{i}", "matched": self._seen[i], "fired": self._fired[i]}
                for i, r in enumerate(self.rules.rules)
            ]
