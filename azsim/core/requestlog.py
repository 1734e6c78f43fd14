"""Record of every request the simulator answered, and counters per ARM action (for benchmarks).

Only the path and safe query parameters are kept: never a token, a SAS signature or a body.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode

from azsim.core.clock import utc_iso

_SAFE_QUERY = {"api-version", "$expand", "monitor", "$filter", "statusOnly", "forceDeallocate", "hibernate"}


def safe_query(query: dict[str, str]) -> str:
    kept = {k: v for k, v in query.items() if k in _SAFE_QUERY}
    return urlencode(kept)


@dataclass
class RequestRecord:
    time: str
    principal: str | None
    method: str
    path: str
    query: str
    action: str | None
    status: int
    error_code: str | None = None
    throttled: bool = False
    fault: str | None = None
    duration_ms: float = 0.0


class RequestLog:
    def __init__(self, max_records: int = 20000) -> None:
        self._records: list[RequestRecord] = []
        self._counters: Counter[tuple[str, int]] = Counter()
        self._max = max_records
        self._lock = threading.Lock()

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)
            if len(self._records) > self._max:
                del self._records[: len(self._records) - self._max]
            self._counters[(record.action or f"{record.method} (no action)", record.status)] += 1

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(r) for r in self._records]

    def counters(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for (action, status), n in sorted(self._counters.items()):
                entry = out.setdefault(action, {"total": 0})
                entry["total"] += n
                entry[str(status)] = entry.get(str(status), 0) + n
        return out

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._counters.clear()


def now_iso() -> str:
    return utc_iso()


@dataclass
class _Grant:
    count: int
    first: str
    last: str


class AuthorizationLog:
    """Every RBAC decision azsim made: (principal, action or data action, scope, allowed), counted.

    The ARM pipeline and the blob front share one log, so ``/_sim/authorizations`` shows what a
    principal was authorised for on both planes. Repeats of one decision are counted, not listed again,
    so the log stays small however long a capture polls.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, str, bool, bool, bool], _Grant] = {}
        self._lock = threading.Lock()

    def add(
        self,
        principal: str,
        action: str,
        scope: str,
        *,
        data_action: bool,
        allowed: bool,
        implicit: bool = False,
    ) -> None:
        """One decision; ``implicit``: granted without a role (a subscription member reading its locations)."""
        key = (principal.lower(), action, scope, data_action, allowed, implicit)
        stamp = utc_iso()
        with self._lock:
            seen = self._seen.get(key)
            if seen is None:
                self._seen[key] = _Grant(1, stamp, stamp)
            else:
                seen.count += 1
                seen.last = stamp

    def report(self, principal: str | None = None) -> dict[str, Any]:
        """The decisions (for one principal, or all); the distinct actions and data actions its roles
        granted (``actions``, ``dataActions``), those granted without a role, and those refused."""
        with self._lock:
            items = sorted(self._seen.items())
        rows: list[dict[str, Any]] = [
            {
                "principal": p,
                "action": action,
                "dataAction": data,
                "scope": scope,
                "allowed": allowed,
                "implicit": implicit,
                "count": grant.count,
                "first": grant.first,
                "last": grant.last,
            }
            for (p, action, scope, data, allowed, implicit), grant in items
            if principal is None or p == principal.lower()
        ]

        def distinct(data: bool, allowed: bool, implicit: bool = False) -> list[str]:
            return sorted(
                {
                    str(r["action"])
                    for r in rows
                    if r["dataAction"] is data and r["allowed"] is allowed and r["implicit"] is implicit
                }
            )

        return {
            "value": rows,
            "actions": distinct(False, True),
            "dataActions": distinct(True, True),
            "implicitActions": distinct(False, True, implicit=True),
            "deniedActions": distinct(False, False),
            "deniedDataActions": distinct(True, False),
        }

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()
