"""What ``publish_version`` and ``export_disk`` share: one execution of a long wait that may continue as new.

A branch runs in executions of at most ``max_polls_per_execution`` polls, each carrying its state
(``orchestrators.models``) into the next, so a day-long wait keeps a small history. ``BranchRun``
holds one execution: its input, the progress it reports (custom status and output), its cancel
watch and its patient calls; ``wait`` runs ``poll`` for it, resuming a continued execution with the
wait its predecessor would have made; ``carry_on`` continues as new; ``end`` reports the outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

import azure.durable_functions as df

from orchestrators.calls import Calls
from orchestrators.cancellation import CancelWatch
from orchestrators.polling import Verdict, poll
from orchestrators.retrying import Gen, failure_info
from orchestrators.timing import iso
from shared.contracts import CapturePolicy
from shared.errors import ErrorInfo
from shared.model_base import WireModel
from shared.trace_ids import TraceRef

I = TypeVar("I", bound=WireModel)  # noqa: E741 - the input, as in the activity declarations
P = TypeVar("P", bound=WireModel)
S = TypeVar("S", bound=WireModel)
T = TypeVar("T")


class BranchRun(Generic[I, P, S]):
    """One execution of a branch sub-orchestration (see the module doc): input, progress, carried state."""

    def __init__(
        self,
        context: df.DurableOrchestrationContext,
        inp: I,
        progress: P,
        *,
        policy: CapturePolicy,
        state: S | None,
        step: str,
    ) -> None:
        self.context, self.inp, self.progress, self.policy = context, inp, progress, policy
        self.state = state  # None until the first execution started the operation
        self.watch = CancelWatch(context)
        self.step = step
        run_id = getattr(inp, "run_id", None)  # the capture run's: its activities trace under its stage span
        trace = TraceRef(run_id=run_id, stage=step) if isinstance(run_id, str) else None
        self.calls = Calls(context, self.policy, step, patient=True, trace=trace)
        context.set_custom_status(progress.to_wire())

    @property
    def st(self) -> S:
        """The state carried across executions (set once the operation started)."""
        if self.state is None:
            raise RuntimeError("the branch's operation has not been started yet")
        return self.state

    def wait(
        self,
        probe: Callable[[], Gen[T]],
        done: Callable[[T], bool],
        delay: Callable[[int, T | None], float | None],
        *,
        started: datetime | Callable[[], datetime],
        timeout: float,
        first: T | None,
    ) -> Gen[Verdict[T]]:
        """Poll with this execution's budget; without ``first`` (a continued execution) start with a wait."""
        return (
            yield from poll(
                self.context,
                probe,
                done,
                delay,
                started=started,
                timeout=timeout,
                max_polls=self.policy.max_polls_per_execution,
                watch=self.watch,
                first=first,
                resume=first is None,
            )
        )

    def carry_on(self, **update: Any) -> None:
        """Continue as new with the state (and any other input fields to replace)."""
        self.watch.check()  # never carry a received cancel into the next execution
        state = self.st
        state.executions += 1  # type: ignore[attr-defined]
        self.context.continue_as_new(self.inp.model_copy(update={"state": state, **update}).to_wire())

    def fail(self, exc: BaseException) -> ErrorInfo:
        """Record a failure (``StepFailed`` or unexpected) in the progress; branches report, never raise."""
        info = failure_info(exc, step=self.step)
        self.progress.state = "failed"  # type: ignore[attr-defined]
        self.progress.error = ErrorInfo.from_info(info)  # type: ignore[attr-defined]
        return info

    def end(self) -> dict[str, Any]:
        """The branch's outcome: the progress, ended now, as custom status and as output."""
        self.progress.ended = iso(self.context.current_utc_datetime)  # type: ignore[attr-defined]
        self.context.set_custom_status(self.progress.to_wire())
        return self.progress.to_wire()
