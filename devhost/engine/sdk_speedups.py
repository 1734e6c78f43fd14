"""Memoize the SDK's history timestamp parser.

Every episode hands the SDK the whole history again, and the SDK parses each event's
``Timestamp`` with ``dateutil.parser.parse`` (about 25-50 µs each): for long-running polling
orchestrations that dominates devhost's time. Past timestamps never change, so the same
strings are parsed over and over. ``dateutil``'s parse is a pure function of the string and
returns immutable ``datetime`` objects, so caching its results changes nothing the SDK or the
app can observe (same values, same ``tzutc`` tzinfo) while removing the repeated work. The
SDK's files are not modified; only the module attribute it calls is wrapped.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

_MODULE = "azure.durable_functions.models.history.HistoryEvent"
_applied = False


def apply() -> None:
    global _applied
    if _applied:
        return
    module: Any = importlib.import_module(_MODULE)
    original: Callable[[str], datetime] = module.dt_parse

    @functools.lru_cache(maxsize=1 << 16)
    def cached_parse(text: str) -> datetime:
        return original(text)

    def dt_parse(text: Any, *args: Any, **kwargs: Any) -> datetime:
        if args or kwargs or not isinstance(text, str):
            return original(text, *args, **kwargs)
        return cached_parse(text)

    module.dt_parse = dt_parse
    _applied = True
