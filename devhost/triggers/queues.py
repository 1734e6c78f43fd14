"""Storage-queue triggers: poll the queues the app's ``queueTrigger`` bindings name, like the host's listener.

Per poller (one per function):
- get up to ``batchSize`` messages with a lease (visibility timeout), renewed while the function runs;
- back off from a short interval to ``maxPollingInterval`` while the queue is empty, reset on messages;
- decode the body (base64 unless ``messageEncoding`` is ``none``; undecodable messages go straight to
  the poison queue), build ``func.QueueMessage`` with the trigger metadata, invoke the function;
- success: write output bindings, delete the message;
- failure: make the message visible again after ``visibilityTimeout``; once its dequeue count has
  reached ``maxDequeueCount`` copy it to ``<queue>-poison`` and delete it. A message seen with a dequeue
  count above the maximum (e.g. after crashes) is poisoned before running.
Logs name the function, queue and message id, never the message body.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions import meta
from azure.storage.queue import QueueClient
from azure.storage.queue import QueueMessage as StorageMessage

from devhost.functions import FunctionInfo
from devhost.settings import QueueOptions, resolve_binding_value
from devhost.triggers import storage
from devhost.triggers.bindings import Invoker, QueueWrite

log = logging.getLogger("devhost.queues")

LEASE_SECONDS = 30  # the host leases for 10 min and renews; a short lease makes crash recovery quick locally
RENEW_BEFORE = 12


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def build_queue_message(msg: StorageMessage, body: bytes) -> Any:
    """``func.QueueMessage`` through the worker's converter, with the metadata the host sends."""
    text: str | bytes
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body
    md: dict[str, meta.Datum] = {
        "Id": meta.Datum(msg.id, "string"),
        "DequeueCount": meta.Datum(int(msg.dequeue_count or 0), "int"),
        "PopReceipt": meta.Datum(msg.pop_receipt, "string"),
    }
    for key, value in (
        ("InsertionTime", msg.inserted_on),
        ("ExpirationTime", msg.expires_on),
        ("NextVisibleTime", msg.next_visible_on),
    ):
        if value is not None:
            md[key] = meta.Datum(_iso(value), "string")
    converter = meta.get_binding_registry().get("queueTrigger")
    datum = meta.Datum(text, "string" if isinstance(text, str) else "bytes")
    return converter.decode(datum, trigger_metadata=md)


def write_queue_outputs(writes: list[QueueWrite], encoding: str) -> None:
    for w in writes:
        qc = storage.queue_client(w.connection, w.queue_name)
        text = storage.encode_body(w.body, encoding)
        try:
            qc.send_message(text)
        except ResourceNotFoundError:
            # the host creates an output queue on first use
            try:
                qc.create_queue()
            except ResourceExistsError:
                pass
            qc.send_message(text)


@dataclass
class _InFlight:
    msg: StorageMessage
    pop_receipt: str
    leased_until: float
    lock: threading.Lock


class QueuePoller:
    """Polls one queue for one function until ``stop()``."""

    def __init__(
        self,
        info: FunctionInfo,
        invoker: Invoker,
        options: QueueOptions,
        pool: ThreadPoolExecutor,
        *,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.info = info
        self.invoker = invoker
        self.options = options
        self.pool = pool
        self.connection = str(info.trigger_binding.get("connection") or "AzureWebJobsStorage")
        raw = str(info.trigger_binding.get("queueName", ""))
        self.queue_name = resolve_binding_value(raw, function_name=info.name, field_name="queueName").lower()
        if not self.queue_name:
            raise ValueError(f"function '{info.name}': queueTrigger binding has an empty queueName")
        self.poison_name = f"{self.queue_name}-poison"
        self._stop = threading.Event()
        self._inflight: dict[str, _InFlight] = {}
        self._inflight_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._on_error = on_error
        self._client: QueueClient | None = None

    @property
    def client(self) -> QueueClient:
        if self._client is None:
            self._client = storage.queue_client(self.connection, self.queue_name)
        return self._client

    def start(self) -> None:
        # resolve the connection now so a misconfiguration fails the start, not silently later
        _ = self.client
        for target, name in ((self._poll_loop, "poll"), (self._renew_loop, "renew")):
            t = threading.Thread(target=target, name=f"devhost-queue-{name}-{self.info.name}", daemon=True)
            t.start()
            self._threads.append(t)
        log.info(
            "queue trigger %s: polling queue '%s' on %s",
            self.info.name,
            self.queue_name,
            storage.describe_connection(self.connection),
        )

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout)

    # -- polling -------------------------------------------------------------------------------

    def _threshold(self) -> int:
        nbt = self.options.new_batch_threshold
        return nbt if nbt is not None else max(1, self.options.batch_size // 2)

    def _poll_loop(self) -> None:
        delay = self.options.min_polling_interval
        failures = 0
        while not self._stop.is_set():
            with self._inflight_lock:
                busy = len(self._inflight)
            if busy >= self._threshold():
                self._stop.wait(0.05)
                continue
            try:
                msgs = list(
                    self.client.receive_messages(
                        max_messages=self.options.batch_size,
                        messages_per_page=self.options.batch_size,
                        visibility_timeout=LEASE_SECONDS,
                    )
                )
                failures = 0
            except ResourceNotFoundError:
                msgs = []
            except Exception as exc:
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning(
                        "queue trigger %s: cannot read queue '%s' (%s: %s); retrying",
                        self.info.name,
                        self.queue_name,
                        type(exc).__name__,
                        str(exc).splitlines()[0] if str(exc) else "",
                    )
                msgs = []
            if msgs:
                delay = self.options.min_polling_interval
                for msg in msgs:
                    entry = _InFlight(
                        msg, msg.pop_receipt or "", time.monotonic() + LEASE_SECONDS, threading.Lock()
                    )
                    with self._inflight_lock:
                        self._inflight[msg.id] = entry
                    fut: Future[None] = self.pool.submit(self._process, entry)
                    fut.add_done_callback(self._done_callback(msg.id))
                continue
            self._stop.wait(delay)
            delay = min(delay * 2, self.options.max_polling_interval)

    def _done_callback(self, message_id: str) -> Callable[[Future[None]], None]:
        def done(_f: Future[None]) -> None:
            with self._inflight_lock:
                self._inflight.pop(message_id, None)

        return done

    def _renew_loop(self) -> None:
        while not self._stop.wait(2.0):
            now = time.monotonic()
            with self._inflight_lock:
                entries = list(self._inflight.values())
            for e in entries:
                if e.leased_until - now > RENEW_BEFORE:
                    continue
                with e.lock:
                    try:
                        updated = self.client.update_message(
                            e.msg.id, e.pop_receipt, visibility_timeout=LEASE_SECONDS
                        )
                        e.pop_receipt = updated.pop_receipt or e.pop_receipt
                        e.leased_until = time.monotonic() + LEASE_SECONDS
                    except Exception as exc:
                        log.warning(
                            "queue trigger %s: could not renew the lease of message %s (%s)",
                            self.info.name,
                            e.msg.id,
                            type(exc).__name__,
                        )

    # -- processing ----------------------------------------------------------------------------

    def _process(self, e: _InFlight) -> None:
        msg = e.msg
        dequeue = int(msg.dequeue_count or 0)
        max_count = self.options.max_dequeue_count
        if dequeue > max_count:
            self._poison(e, f"dequeue count {dequeue} is above maxDequeueCount {max_count}")
            return
        try:
            body = storage.decode_body(str(msg.content or ""), self.options.message_encoding)
        except ValueError as exc:
            log.warning(
                "queue trigger %s: message %s cannot be decoded (messageEncoding=%s: %s)",
                self.info.name,
                msg.id,
                self.options.message_encoding,
                exc,
            )
            self._poison(e, "message decoding failed")
            return
        log.info(
            "queue trigger %s: message %s from '%s' (dequeue %d/%d)",
            self.info.name,
            msg.id,
            self.queue_name,
            dequeue,
            max_count,
        )
        try:
            trigger = build_queue_message(msg, body)
            result = self.invoker.invoke(self.info, trigger)
            write_queue_outputs(result.queue_writes, self.options.message_encoding)
        except Exception as exc:
            log.error(
                "queue trigger %s: function failed for message %s (dequeue %d/%d): %s: %s",
                self.info.name,
                msg.id,
                dequeue,
                max_count,
                type(exc).__name__,
                exc,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            if self._on_error:
                self._on_error(self.info.name)
            if dequeue >= max_count:
                self._poison(e, f"failed {dequeue} times")
            else:
                self._release(e)
            return
        with e.lock:
            try:
                self.client.delete_message(msg.id, e.pop_receipt)
            except ResourceNotFoundError:
                log.warning(
                    "queue trigger %s: message %s was already gone when deleting (lease lost?)",
                    self.info.name,
                    msg.id,
                )

    def _release(self, e: _InFlight) -> None:
        with e.lock:
            try:
                self.client.update_message(
                    e.msg.id, e.pop_receipt, visibility_timeout=int(self.options.visibility_timeout)
                )
            except Exception as exc:
                log.warning(
                    "queue trigger %s: could not release message %s (%s); it reappears when its lease ends",
                    self.info.name,
                    e.msg.id,
                    type(exc).__name__,
                )

    def _poison(self, e: _InFlight, why: str) -> None:
        poison = storage.queue_client(self.connection, self.poison_name)
        try:
            poison.create_queue()
        except ResourceExistsError:
            pass
        # the stored text is copied unchanged, so the poison message decodes like the original
        poison.send_message(e.msg.content)
        with e.lock:
            try:
                self.client.delete_message(e.msg.id, e.pop_receipt)
            except ResourceNotFoundError:
                pass
        log.warning(
            "queue trigger %s: message %s moved to '%s' (%s)", self.info.name, e.msg.id, self.poison_name, why
        )
