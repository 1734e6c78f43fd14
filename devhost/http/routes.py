"""HTTP trigger route templates, matched the way ASP.NET Core routing does for the Functions host.

Supported: literal segments (case-insensitive), ``{name}``, ``{name?}`` (optional, trailing only),
``{name:constraint}`` with constraints ``int long bool alpha guid float double decimal datetime
minlength(n) maxlength(n) length(n) min(n) max(n) range(a,b) regex(expr)``, chained with ``:``,
and ``{*rest}`` catch-all as the last segment. Among several matching routes the most specific wins
(literal > constrained parameter > parameter > optional > catch-all), as in ASP.NET's route precedence.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote


class RouteError(ValueError):
    """A route template cannot be parsed."""


def _is_int(v: str, lo: int, hi: int) -> bool:
    if not re.fullmatch(r"[+-]?\d+", v):
        return False
    return lo <= int(v) <= hi


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return v.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity")


def _is_guid(v: str) -> bool:
    try:
        uuid.UUID(v)
    except ValueError:
        return False
    return True


def _is_datetime(v: str) -> bool:
    try:
        datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


_SIMPLE: dict[str, Callable[[str], bool]] = {
    "int": lambda v: _is_int(v, -(2**31), 2**31 - 1),
    "long": lambda v: _is_int(v, -(2**63), 2**63 - 1),
    "bool": lambda v: v.lower() in ("true", "false"),
    "alpha": lambda v: bool(re.fullmatch(r"[A-Za-z]+", v)),
    "guid": _is_guid,
    "float": _is_float,
    "double": _is_float,
    "decimal": _is_float,
    "datetime": _is_datetime,
}


def _constraint(spec: str, template: str) -> Callable[[str], bool]:
    m = re.fullmatch(r"(\w+)(?:\((.*)\))?", spec, re.S)
    if not m:
        raise RouteError(f"route '{template}': cannot parse constraint '{spec}'")
    name, arg = m.group(1).lower(), m.group(2)
    if arg is None and name in _SIMPLE:
        return _SIMPLE[name]
    try:
        if name == "minlength" and arg is not None:
            n = int(arg)
            return lambda v: len(v) >= n
        if name == "maxlength" and arg is not None:
            n = int(arg)
            return lambda v: len(v) <= n
        if name == "length" and arg is not None:
            parts = [int(p) for p in arg.split(",")]
            if len(parts) == 1:
                return lambda v: len(v) == parts[0]
            return lambda v: parts[0] <= len(v) <= parts[1]
        if name == "min" and arg is not None:
            lo = int(arg)
            return lambda v: _is_int(v, lo, 2**63)
        if name == "max" and arg is not None:
            hi = int(arg)
            return lambda v: _is_int(v, -(2**63), hi)
        if name == "range" and arg is not None:
            lo, hi = (int(p) for p in arg.split(","))
            return lambda v: _is_int(v, lo, hi)
        if name == "regex" and arg is not None:
            rx = re.compile(arg, re.IGNORECASE)
            return lambda v: rx.search(v) is not None
    except (ValueError, re.error) as exc:
        raise RouteError(f"route '{template}': bad argument in constraint '{spec}': {exc}") from exc
    raise RouteError(
        f"route '{template}': unknown constraint '{spec}' (supported: {', '.join(sorted(_SIMPLE))}, "
        "minlength, maxlength, length, min, max, range, regex)"
    )


@dataclass
class _Segment:
    literal: str | None = None
    name: str | None = None
    optional: bool = False
    catch_all: bool = False
    checks: list[Callable[[str], bool]] = field(default_factory=list)

    @property
    def rank(self) -> int:
        # lower sorts first: more specific
        if self.literal is not None:
            return 0
        if self.catch_all:
            return 4
        if self.optional:
            return 3
        return 1 if self.checks else 2


_NAME = re.compile(r"^(?P<star>\*{1,2})?(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<rest>:.*)?$", re.S)


def _parse_param(part: str) -> re.Match[str] | None:
    """``{name[:constraint...][?]}``; braces inside constraints are escaped as ``{{``/``}}`` as in ASP.NET."""
    if not (part.startswith("{") and part.endswith("}")) or part.startswith("{{"):
        return None
    inner = part[1:-1]
    unescaped = inner.replace("{{", "").replace("}}", "")
    if "{" in unescaped or "}" in unescaped:
        return None
    return _NAME.match(inner[:-1] if inner.endswith("?") else inner)


@dataclass
class RouteTemplate:
    template: str
    segments: list[_Segment]

    @classmethod
    def parse(cls, template: str) -> RouteTemplate:
        text = template.strip().strip("/")
        segments: list[_Segment] = []
        parts = text.split("/") if text else []
        for i, part in enumerate(parts):
            if not part:
                raise RouteError(f"route '{template}': empty segment")
            if "{" not in part and "}" not in part:
                segments.append(_Segment(literal=part))
                continue
            m = _parse_param(part)
            if not m:
                raise RouteError(
                    f"route '{template}': segment '{part}' must be a literal or a whole '{{name[:constraint][?]}}' "
                    "parameter (devhost does not support mixed literal/parameter segments)"
                )
            rest = m.group("rest") or ""
            specs = (
                [c.replace("{{", "{").replace("}}", "}") for c in _split_constraints(rest[1:])]
                if rest
                else []
            )
            seg = _Segment(
                name=m.group("name"),
                optional=part.endswith("?}"),
                catch_all=bool(m.group("star")),
                checks=[_constraint(s, template) for s in specs],
            )
            if seg.catch_all and i != len(parts) - 1:
                raise RouteError(f"route '{template}': a catch-all parameter must be the last segment")
            segments.append(seg)
        seen_optional = False
        for seg in segments:
            if seg.optional:
                seen_optional = True
            elif seen_optional and not seg.catch_all:
                raise RouteError(f"route '{template}': only trailing parameters can be optional")
        names = [s.name for s in segments if s.name]
        if len(names) != len(set(n.lower() for n in names)):
            raise RouteError(f"route '{template}': a parameter name is used twice")
        return cls(template=template, segments=segments)

    @property
    def precedence(self) -> tuple[int, ...]:
        return (*[s.rank for s in self.segments], 9)

    def match(self, path: str) -> dict[str, str] | None:
        """Route parameters when ``path`` (without the route prefix, no leading slash) matches."""
        raw_parts = path.strip("/").split("/") if path.strip("/") else []
        params: dict[str, str] = {}
        for i, seg in enumerate(self.segments):
            if seg.catch_all:
                # catch-all parameters match zero or more segments
                rest = "/".join(unquote(p) for p in raw_parts[i:])
                if rest:
                    params[seg.name or ""] = rest
                return params
            if i >= len(raw_parts):
                if seg.optional:
                    continue
                return None
            value = unquote(raw_parts[i])
            if seg.literal is not None:
                if value.lower() != seg.literal.lower():
                    return None
                continue
            if not value or not all(check(value) for check in seg.checks):
                return None
            params[seg.name or ""] = value
        if len(raw_parts) > len(self.segments):
            return None
        return params


def _split_constraints(text: str) -> list[str]:
    """Split ``int:min(1):regex(a:b)`` on colons outside parentheses."""
    out: list[str] = []
    depth = 0
    cur = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == ":" and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out
