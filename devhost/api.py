"""The contract between devhost's durable engine and its front end (HTTP, triggers, CLI).

The engine (``devhost.engine``) owns instances, histories, timers and activity execution.
The front end (``devhost.http``, ``devhost.triggers``) turns the Functions host's HTTP
surface, queue polling and Event Grid webhooks into calls on this API. Nothing else
crosses between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class InstanceExists(Exception):
    """start_new was called with the id of an instance that is still running."""


class InstanceNotFound(Exception):
    """No instance has that id."""


class InstanceNotRunning(Exception):
    """The operation needs a running instance (raise event, terminate)."""


@dataclass
class InstanceRecord:
    """One orchestration instance as the Durable status API reports it.

    ``input``/``output``/``custom_status`` hold JSON text exactly as the SDK produced it
    (``None`` when absent). Times are ISO-8601 UTC strings ending in ``Z``.
    ``runtime_status`` is one of Pending, Running, Completed, Failed, Terminated,
    ContinuedAsNew, Suspended.
    """

    instance_id: str
    name: str
    runtime_status: str
    created_time: str
    last_updated_time: str
    input: str | None = None
    output: str | None = None
    custom_status: str | None = None
    history: list[dict[str, Any]] | None = field(default=None)


@dataclass
class InstanceQuery:
    runtime_status: list[str] | None = None
    created_time_from: str | None = None
    created_time_to: str | None = None
    instance_id_prefix: str | None = None
    top: int | None = None


class EngineAPI(Protocol):
    def start_new(
        self,
        orchestrator_name: str,
        instance_id: str | None,
        input_json: str | None,
        *,
        replace_active: bool = False,
        version: str | None = None,
    ) -> str:
        """Schedule a new instance; return its id. Raises InstanceExists if that id is running/pending,
        unless ``replace_active``: then a new execution replaces the running one."""
        ...

    def get_instance(self, instance_id: str, *, with_history: bool = False) -> InstanceRecord | None: ...

    def query(self, query: InstanceQuery) -> list[InstanceRecord]: ...

    def raise_event(self, instance_id: str, event_name: str, data_json: str | None) -> None: ...

    def terminate(self, instance_id: str, reason: str | None) -> None: ...

    def purge(self, instance_id: str) -> int:
        """Delete a finished instance and its history; return how many were deleted (0 or 1)."""
        ...

    def purge_many(self, query: InstanceQuery) -> int: ...
