"""The registered orchestrator ``migrate_batch``: one batch of a migration's images, a few at a time.

It starts one ``capture_image`` sub-orchestration per image, at most ``parallel`` at once, and starts
the next as soon as one ends. Each ending is folded into the image's entry (``children.record``); with
``deleteSourceAfter: "verified"`` the source image of a verified version is deleted (the delete is
started at once and confirmed when every capture of the batch ended). The entries are its custom
status (texts cut short) and its output (in full).

On ``cancel`` (raised by ``POST /api/migrations/{id}/cancel`` to the batch and to its running
captures) no capture is started any more and no source deleted; the batch waits for the running
captures to end (they clean up after themselves) and reports the images not started as canceled.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from orchestrators import names
from orchestrators.blueprint import bp
from orchestrators.calls import Calls
from orchestrators.cancellation import CancelWatch
from orchestrators.migration.children import child_input, record, why_kept
from orchestrators.retrying import Gen, StepFailed, sleep
from orchestrators.versioning import refuse_unreplayable
from shared.activity_types import DELETE_MANAGED_IMAGE
from shared.errors import ErrorInfo
from shared.migration_status import BatchInput, BatchProgress, ImageEntry, ManagedImageRef

# How often the batch checks that the sources it deletes are gone (poll_min_seconds apart).
DELETE_CHECKS = 20


class Batch:
    """One execution of a batch: its entries, the captures running, the deletions started."""

    def __init__(self, context: df.DurableOrchestrationContext, inp: BatchInput) -> None:
        self.context, self.inp = context, inp
        self.entries: list[ImageEntry] = list(inp.entries)
        self.progress = BatchProgress(migration_id=inp.migration_id, index=inp.index, entries=[])
        self.watch = CancelWatch(context)
        self.calls = Calls(context, inp.policy, "delete source")
        self.deleting: dict[int, str | None] = {}  # entry index -> the delete's operation URL

    def publish(self) -> None:
        self.progress.entries = [e.short() for e in self.entries]
        self.context.set_custom_status(self.progress.to_wire())

    def start(self, i: int) -> Any:
        e = self.entries[i]
        self.entries[i] = e.model_copy(update={"state": "running"})
        return self.context.call_sub_orchestrator(
            names.CAPTURE_IMAGE, child_input(self.inp, e), instance_id=e.capture_id
        )

    def pause(self, seconds: float, running: list[Any]) -> Gen[None]:
        """Wait ``seconds`` on a durable timer, or until ``cancel`` arrives (then return at once).

        The captures started so far are yielded with the timer: the SDK schedules a task only when it
        is yielded, so they start now, not when the pacing is over.
        """
        if seconds <= 0 or self.watch.requested:
            return
        timer = self.context.create_timer(self.context.current_utc_datetime + timedelta(seconds=seconds))
        yield self.context.task_any([timer, self.watch.task, *running])
        if not timer.is_completed:
            timer.cancel()

    def cancel_pending(self, queue: list[int]) -> None:
        self.progress.cancel_requested = True
        for i in queue:
            error = ErrorInfo.canceled(
                "cancel", "Not started: the migration was canceled.", resource=self.entries[i].image_id
            )
            self.entries[i] = self.entries[i].model_copy(update={"state": "canceled", "error": error})
        queue.clear()

    def ended(self, i: int, task: Any) -> Gen[None]:
        """Fold a capture's ending into its entry; start deleting a verified source when asked."""
        entry = record(self.entries[i], task)
        if entry.state == "completed" and self.inp.request.delete_source_after == "verified":
            kept = why_kept(entry, self.inp.request)
            if kept is None and self.watch.requested:
                kept = "source kept: the migration was canceled"
            if kept is None:
                entry = yield from self._start_delete(i, entry)
            else:
                entry = entry.model_copy(update={"source_note": kept})
        self.entries[i] = entry

    def _start_delete(self, i: int, entry: ImageEntry) -> Gen[ImageEntry]:
        try:
            answer = yield from self.calls.run(DELETE_MANAGED_IMAGE, ManagedImageRef(image_id=entry.image_id))
        except StepFailed as exc:
            return entry.model_copy(
                update={"source_note": f"source kept: its deletion failed: {exc.info.message}"}
            )
        if answer.gone:
            return entry.model_copy(update={"source_deleted": True, "source_note": _DELETED})
        self.deleting[i] = answer.operation_url
        return entry.model_copy(update={"source_note": "source deletion started"})

    def confirm_deletions(self) -> Gen[None]:
        """Wait until every source whose delete was started is gone (or say why not)."""
        for _ in range(DELETE_CHECKS):
            if not self.deleting:
                return
            yield from sleep(self.context, self.inp.policy.poll_min_seconds)
            for i, url in list(self.deleting.items()):
                entry = self.entries[i]
                ref = ManagedImageRef(image_id=entry.image_id, operation_url=url)
                try:
                    answer = yield from self.calls.run(DELETE_MANAGED_IMAGE, ref)
                except StepFailed as exc:
                    note = f"source kept: its deletion failed: {exc.info.message}"
                    self.entries[i] = entry.model_copy(update={"source_note": note})
                    del self.deleting[i]
                    continue
                if answer.gone:
                    self.entries[i] = entry.model_copy(
                        update={"source_deleted": True, "source_note": _DELETED}
                    )
                    del self.deleting[i]
                else:
                    self.deleting[i] = answer.operation_url
            self.publish()
        for i in self.deleting:
            note = f"source deletion started but not confirmed after {DELETE_CHECKS} checks"
            self.entries[i] = self.entries[i].model_copy(update={"source_note": note})


_DELETED = "source deleted: its version is Completed in every target region"


@bp.orchestration_trigger(context_name="context", orchestration=names.MIGRATE_BATCH)
def migrate_batch(context: df.DurableOrchestrationContext) -> Gen[dict[str, Any]]:
    refuse_unreplayable(context)
    b = Batch(context, BatchInput.from_wire(context.get_input()))
    b.publish()
    yield from b.watch.arm()
    queue = [i for i, e in enumerate(b.entries) if e.state == "pending"]
    running: dict[Any, int] = {}
    total = len(queue)
    yield from b.pause(b.inp.offset_seconds, [])
    while queue or running:
        while queue and len(running) < max(1, b.inp.parallel) and not b.watch.requested:
            if running and len(queue) + len(running) == total:  # the first wave starts spaced out
                b.publish()
                yield from b.pause(b.inp.spacing_seconds, list(running))
                if b.watch.requested:
                    break
            i = queue.pop(0)
            running[b.start(i)] = i
        if b.watch.requested:
            b.cancel_pending(queue)
        b.publish()
        if not running:
            break
        waiting = list(running) if b.watch.requested else [*running, b.watch.task]
        winner = yield context.task_any(waiting)
        if winner is b.watch.task:
            continue
        yield from b.ended(running.pop(winner), winner)
    yield from b.confirm_deletions()
    b.progress.state = "done"
    b.publish()
    return b.progress.model_copy(update={"entries": b.entries}).to_wire()
