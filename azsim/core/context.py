"""What a handler gets about the request beyond its parameters, and what it returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-serialisable, or None for an empty body
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RequestContext:
    principal: str  # object id
    api_version: str
    base_url: str  # https://host:port as the client addressed us
    # Raise ArmError 403 if the principal lacks ``action`` on ``scope`` (linked checks, e.g. a version's source).
    authorize_linked: Callable[[str, str], None]
    # Whether the principal holds ``action`` on ``scope`` (for lists ARM filters by RBAC).
    allowed: Callable[[str, str], bool] = lambda _action, _scope: True
    # Fault effects that fired for this request and that the handler applies (e.g. replication failures).
    effects: list[Any] = field(default_factory=list)
    query: dict[str, str] = field(default_factory=dict)
