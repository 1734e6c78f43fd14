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
