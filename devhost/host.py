"""Composition of a running devhost: settings → environment → app index → engine → servers → pollers.

``Host.start()`` brings everything up in the order the Functions host does (app settings are in the
environment before the app is imported); ``Host.stop()`` takes it down in reverse. The CLI
(``python -m devhost start``) and in-process tests use this class.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devhost.engine import Engine
from devhost.functions import AppIndex, close_async_loop, load_app
from devhost.http.admin import AdminApi
from devhost.http.durable import DurableApi, DurableUrls
from devhost.http.server import HttpServer, build_routes
from devhost.keys import DURABLE_SYSTEM_KEY, KeyStore
from devhost.settings import (
    AppSettings,
    HostConfig,
    apply_app_settings,
    load_host_config,
    resolve_app_settings,
)
from devhost.triggers.bindings import Invoker, unsupported_bindings
from devhost.triggers.queues import QueuePoller, write_queue_outputs
from devhost.triggers.timers import TimerTriggers

log = logging.getLogger("devhost")

HANDLED_TRIGGERS = {
    "httpTrigger",
    "queueTrigger",
    "eventGridTrigger",
    "orchestrationTrigger",
    "activityTrigger",
    "timerTrigger",
}


@dataclass
class HostOptions:
    app_dir: Path = field(default_factory=lambda: Path("."))
    workdir: Path = field(default_factory=lambda: Path(".devhost"))
    port: int = 7071
    rpc_port: int = 0
    virtual_clock: bool = False
    clock_url: str | None = None  # a clock owner's URL (azsim's AZSIM_CLOCK_URL); implies virtual_clock
    require_keys: bool = False
    settings_file: Path | None = None
    env_file: Path | None = None


class Host:
    def __init__(self, options: HostOptions) -> None:
        self.options = options
        self.app_dir = options.app_dir.resolve()
        wd = options.workdir
        self.workdir = (wd if wd.is_absolute() else self.app_dir / wd).resolve()
        self.config: HostConfig | None = None
        self.app_settings: AppSettings | None = None
        self.index: AppIndex | None = None
        self.engine: Engine | None = None
        self.server: HttpServer | None = None
        self.keys: KeyStore | None = None
        self.pollers: list[QueuePoller] = []
        self.timers: TimerTriggers | None = None
        self.pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="devhost-invoke")
        self._urls: DurableUrls | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        o = self.options
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = load_host_config(self.app_dir)
        self.app_settings = resolve_app_settings(
            self.app_dir, settings_file=o.settings_file, env_file=o.env_file, environ=os.environ
        )
        for key in self.app_settings.skipped_from_file:
            log.info("skipping '%s' from local settings: already set in the environment", key)
        apply_app_settings(self.app_settings)
        self.keys = KeyStore.load_or_create(self.workdir) if o.require_keys else None
        self.index = load_app(self.app_dir)
        self._check_functions(self.index)
        cfg = self.config
        self.engine = Engine(
            self.index,
            self.workdir,
            virtual_clock=o.virtual_clock or bool(o.clock_url),
            clock_url=o.clock_url,
            max_concurrent_activities=cfg.max_concurrent_activities,
            max_concurrent_orchestrations=cfg.max_concurrent_orchestrations,
            versioning=cfg.versioning,
        )
        invoker = Invoker(self._client_json, str(self.app_dir))
        self.server = HttpServer(
            routes=build_routes(self.index.by_trigger("httpTrigger")),
            route_prefix=cfg.route_prefix,
            invoker=invoker,
            keys=self.keys,
            eventgrid_functions={f.name: f for f in self.index.by_trigger("eventGridTrigger")},
            pool=self.pool,
            port=o.port,
            rpc_port=o.rpc_port,
        )
        self.server.queue_encoding = cfg.queues.message_encoding
        self.server.start()
        self._urls = DurableUrls(
            base_url=self.server.base_url,
            rpc_base_url=self.server.rpc_base_url,
            hub_name=cfg.hub_name,
            system_key=self.keys.system_keys[DURABLE_SYSTEM_KEY] if self.keys else None,
        )
        orchestrators = set(self.index.orchestrators)
        self.server.durable = DurableApi(
            self.engine, self._urls, self.server.run_blocking, lambda: orchestrators
        )
        self.server.durable.any_state_overridable = cfg.any_state_overridable
        self.engine.start()
        self._start_timers(invoker)
        for info in self.index.by_trigger("queueTrigger"):
            try:
                poller = QueuePoller(info, invoker, cfg.queues, self.pool)
                poller.start()
            except Exception as exc:
                # like the host: a listener that cannot start disables that function, not the whole app
                log.error("the listener for function '%s' was unable to start: %s", info.name, exc)
                continue
            self.pollers.append(poller)
        log.info(
            "devhost: %d functions from %s; work dir %s; hub %s%s",
            len(self.index.functions),
            self.app_dir,
            self.workdir,
            cfg.hub_name,
            f"; virtual clock of {o.clock_url}"
            if o.clock_url
            else "; virtual clock"
            if o.virtual_clock
            else "",
        )
        for route in self.server.routes:
            log.info(
                "  %s: [%s] %s/%s/%s",
                route.info.name,
                ",".join(sorted(route.methods)) if len(route.methods) < 8 else "ALL",
                self.server.base_url,
                cfg.route_prefix,
                route.template.template.strip("/"),
            )

    def _start_timers(self, invoker: Invoker) -> None:
        assert self.index is not None and self.engine is not None and self.server is not None
        encoding = self.server.queue_encoding
        engine = self.engine
        self.timers = TimerTriggers(
            self.index.by_trigger("timerTrigger"),
            invoker,
            self.pool,
            engine.now,
            after_invoke=lambda result: write_queue_outputs(result.queue_writes, encoding),
        )
        self.server.admin = AdminApi(self.index.functions, self.timers, invoker, self.pool, encoding)
        self.timers.start()

    def _check_functions(self, index: AppIndex) -> None:
        for info in index.functions.values():
            if info.trigger_type not in HANDLED_TRIGGERS:
                log.warning(
                    "function '%s' has a %s trigger, which devhost does not run; it stays idle",
                    info.name,
                    info.trigger_type or "missing",
                )
            elif info.trigger_type in ("httpTrigger", "queueTrigger", "eventGridTrigger", "timerTrigger"):
                problems = unsupported_bindings(info)
                if problems:
                    log.warning(
                        "function '%s': %s are not supported; invocations will fail", info.name, problems
                    )

    def stop(self) -> None:
        if self.timers is not None:
            self.timers.stop()
        for poller in self.pollers:
            poller.stop()
        self.pollers.clear()
        if self.server is not None:
            self.server.stop()
        if self.engine is not None:
            try:
                self.engine.stop()
            except Exception:
                log.exception("engine stop failed")
        self.pool.shutdown(wait=False, cancel_futures=True)
        close_async_loop()

    # -- helpers -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return self.server.base_url

    def _client_json(self, task_hub: Any) -> str:
        assert self._urls is not None
        return self._urls.client_binding_json(str(task_hub) if task_hub else None)
