"""The registered orchestrator ``migrate_images``: the migration of a scope's managed images.

Its first execution lists the images (``list_managed_images``), plans them (``plan.plan_images``) and
continues as new with the plan in its input, so the second execution — which runs the batches — never
replays the listing and ``GET /api/migrations/{id}`` reads the plan from the input. The second
execution runs the batches (``migrate_batch``, ``BATCH_SIZE`` images each) with ``max_parallel``
captures at once in all: the first batches share it, and a batch that ends hands its share to the next.
It ends when every batch ended: succeeded (every image completed), completedWithFailures, failed (the
listing failed) or canceled. A failed image never fails the migration instance itself.
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskState

from orchestrators import names
from orchestrators.blueprint import bp
from orchestrators.calls import Calls
from orchestrators.cancellation import Canceled, CancelWatch
from orchestrators.migration.plan import batches, plan_images, shares, too_large
from orchestrators.retrying import Gen, StepFailed, failure_info
from orchestrators.timing import iso
from orchestrators.versioning import refuse_unreplayable
from shared.activity_types import LIST_MANAGED_IMAGES
from shared.errors import ErrorInfo
from shared.migration_status import (
    BatchInput,
    BatchProgress,
    ImageEntry,
    ImageScope,
    MigrationInput,
    MigrationProgress,
    count,
    final_state,
    merge_entries,
)
from shared.migrations import batch_instance_id


def _list(context: df.DurableOrchestrationContext, inp: MigrationInput, watch: CancelWatch) -> Gen[None]:
    """First execution: list and plan, then continue as new with the plan (or the listing's error)."""
    calls = Calls(context, inp.policy, "list")
    update: dict[str, Any] = {"planned": True}
    try:
        listed = yield from calls.run(LIST_MANAGED_IMAGES, ImageScope(scope=inp.request.scope))
        error = too_large(len(listed.images), inp.request.scope)
        if error is not None:
            update["error"] = error
        else:
            update["plan"] = plan_images(inp, listed.images)
    except StepFailed as exc:
        update["error"] = exc.info
    watch.check()  # a cancel received while listing ends the migration here (not carried over)
    context.continue_as_new(inp.model_copy(update=update).to_wire())


class Root:
    def __init__(self, context: df.DurableOrchestrationContext, inp: MigrationInput) -> None:
        self.context, self.inp = context, inp
        self.watch = CancelWatch(context)
        self.progress = MigrationProgress(
            migration_id=inp.migration_id,
            run_id=inp.run_id,
            scope=inp.request.scope,
            total=len(inp.plan),
            started=iso(context.current_utc_datetime),
        )
        self.reported: list[ImageEntry] = []

    def publish(self) -> None:
        self.context.set_custom_status(self.progress.to_wire())

    def batch_input(self, k: int, entries: list[ImageEntry], parallel: int, offset: float) -> dict[str, Any]:
        inp = self.inp
        return BatchInput(
            spacing_seconds=inp.start_spacing_seconds * max(1, min(len(batches(inp.plan)), inp.max_parallel)),
            offset_seconds=offset,
            migration_id=inp.migration_id,
            run_id=inp.run_id,
            index=k,
            request=inp.request,
            policy=inp.policy,
            parallel=parallel,
            entries=entries,
        ).to_wire()

    def ended(self, k: int, task: Any, entries: list[ImageEntry]) -> None:
        if task.state == TaskState.FAILED:  # the batch itself broke (not one of its captures)
            info = ErrorInfo.from_info(failure_info(task.result, step="migrate"))
            self.reported += [e.model_copy(update={"state": "failed", "error": info}) for e in entries]
            return
        self.reported += BatchProgress.from_wire(task.result).entries

    def cancel_pending(self, pending: list[tuple[int, list[ImageEntry]]]) -> None:
        if not self.progress.cancel_requested:
            self.progress.cancel_requested = True
            self.progress.cancel_reason = self.watch.error().reason
        for _, entries in pending:
            for e in entries:
                error = ErrorInfo.canceled(
                    "cancel", "Not started: the migration was canceled.", resource=e.image_id
                )
                self.reported.append(e.model_copy(update={"state": "canceled", "error": error}))
        pending.clear()

    def run_batches(self) -> Gen[None]:
        todo = list(enumerate(batches(self.inp.plan)))
        caps = shares(self.inp.max_parallel, [len(b) for _, b in todo])
        running: dict[Any, tuple[int, list[ImageEntry], int]] = {}
        free = list(caps)
        first = True
        while todo or running:
            while todo and free and not self.watch.requested:
                (k, entries), cap = todo.pop(0), free.pop(0)
                cap = max(1, min(cap, len(entries)))
                task = self.context.call_sub_orchestrator(
                    names.MIGRATE_BATCH,
                    # The first batches start their captures interleaved, start_spacing apart in all.
                    self.batch_input(k, entries, cap, k * self.inp.start_spacing_seconds if first else 0.0),
                    instance_id=batch_instance_id(self.inp.migration_id, k),
                )
                running[task] = (k, entries, cap)
                self.progress.batches.append(batch_instance_id(self.inp.migration_id, k))
            first = False
            if self.watch.requested:
                self.cancel_pending(todo)
            self.publish()
            if not running:
                return
            waiting = list(running) if self.watch.requested else [*running, self.watch.task]
            winner = yield self.context.task_any(waiting)
            if winner is self.watch.task:
                continue
            k, entries, cap = running.pop(winner)
            self.ended(k, winner, entries)
            free.append(cap)

    def finish(self) -> dict[str, Any]:
        entries = merge_entries(self.inp.plan, self.reported)
        self.progress.state = final_state(entries, self.progress.cancel_requested)
        self.progress.ended = iso(self.context.current_utc_datetime)
        self.publish()
        return {
            **self.progress.to_wire(),
            "counts": count(entries).to_wire(),
            "images": [e.to_wire() for e in entries],
        }


@bp.orchestration_trigger(context_name="context", orchestration=names.MIGRATE_IMAGES)
def migrate_images(context: df.DurableOrchestrationContext) -> Gen[Any]:
    refuse_unreplayable(context)
    inp = MigrationInput.from_wire(context.get_input())
    root = Root(context, inp)
    if not inp.planned:
        root.publish()
        yield from root.watch.arm()
        try:
            yield from _list(context, inp, root.watch)
        except Canceled:  # canceled while listing: nothing was started
            root.progress.cancel_requested = True
            root.progress.state, root.progress.ended = "canceled", iso(context.current_utc_datetime)
            root.publish()
            return root.progress.to_wire()
        return None
    root.progress.state = "running"
    if inp.error is not None:
        root.progress.state, root.progress.error = "failed", ErrorInfo.from_info(inp.error)
        root.progress.ended = iso(context.current_utc_datetime)
        root.publish()
        return root.progress.to_wire()
    root.publish()
    yield from root.watch.arm()
    yield from root.run_batches()
    return root.finish()
