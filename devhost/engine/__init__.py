"""devhost's durable engine: what the Durable Task extension does around the Python SDK.

``Engine`` implements ``devhost.api.EngineAPI``: it stores instances, histories, pending work and
timers in SQLite under a work dir, runs orchestrator episodes through the SDK's handle, runs
activities in parallel up to a limit, performs host-side retries and fires timers on a real or
virtual clock. (Stub: the implementation lands in the following commits.)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from devhost.api import InstanceQuery, InstanceRecord
from devhost.functions import AppIndex


class Engine:
    def __init__(
        self,
        index: AppIndex,
        workdir: Path,
        *,
        virtual_clock: bool = False,
        max_concurrent_activities: int = 10,
        max_concurrent_orchestrations: int = 10,
        log: logging.Logger | None = None,
    ) -> None:
        self.index = index
        self.workdir = Path(workdir)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def run_until_idle(self, timeout: float = 30.0) -> None:
        raise NotImplementedError

    def wait_for(self, instance_id: str, timeout: float = 30.0) -> InstanceRecord:
        raise NotImplementedError

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def now(self) -> str:
        raise NotImplementedError

    # EngineAPI
    def start_new(self, orchestrator_name: str, instance_id: str | None, input_json: str | None) -> str:
        raise NotImplementedError

    def get_instance(self, instance_id: str, *, with_history: bool = False) -> InstanceRecord | None:
        raise NotImplementedError

    def query(self, query: InstanceQuery) -> list[InstanceRecord]:
        raise NotImplementedError

    def raise_event(self, instance_id: str, event_name: str, data_json: str | None) -> None:
        raise NotImplementedError

    def terminate(self, instance_id: str, reason: str | None) -> None:
        raise NotImplementedError

    def purge(self, instance_id: str) -> int:
        raise NotImplementedError

    def purge_many(self, query: InstanceQuery) -> int:
        raise NotImplementedError


__all__ = ["Engine"]
