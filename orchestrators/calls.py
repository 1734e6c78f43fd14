"""Calling activities from an orchestrator: typed, retried, one line per call.

``Calls`` binds the orchestration context, the capture policy and the step a failure is reported
under. Its calls take an ``Activity`` declaration (``shared.activity_types``) and its typed input
and return the typed result::

    facts = yield from calls.run(GET_VM_FACTS, VmRef(vm_id=vm_id))
    snaps = yield from calls.patient.run_all(GET_SNAPSHOT, refs)

Every call goes through ``retrying.retried`` (transient failures retried on durable timers, by count,
or with ``patient`` until ``retrying.patience_seconds``; terminal ones raise ``StepFailed`` at
once). ``once`` is the exception: one attempt, for a call whose failure must not be retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import azure.durable_functions as df

from orchestrators.retrying import Gen, retried
from shared.activity_types import Activity, Call
from shared.contracts import CapturePolicy
from shared.model_base import WireModel
from shared.trace_ids import TraceRef

In = TypeVar("In", bound=WireModel)
Out = TypeVar("Out", bound=WireModel)


class Answers:
    """The results of ``Calls.gather``, read back by the call that produced each one."""

    def __init__(self, calls: Sequence[Call[Any, Any]], raw: Sequence[Any]) -> None:
        self._by_call = {id(c): c.activity.decode(r) for c, r in zip(calls, raw, strict=True)}

    def __getitem__(self, call: Call[In, Out]) -> Out:
        answer: Out = self._by_call[id(call)]
        return answer

    def get(self, call: Call[In, Out] | None) -> Out | None:
        return None if call is None else self[call]


class Calls:
    """Typed, retried activity calls of one orchestration, reported under ``step`` when they fail."""

    def __init__(
        self,
        context: df.DurableOrchestrationContext,
        policy: CapturePolicy,
        step: str,
        *,
        patient: bool = False,
        trace: TraceRef | None = None,
    ) -> None:
        self.context, self.policy, self.step, self.is_patient = context, policy, step, patient
        self.trace = trace  # handed to each activity (shared.trace_ids): the span its own span is under

    def at(self, step: str, *, patient: bool | None = None) -> Calls:
        """The same calls, reported under another step."""
        patient = self.is_patient if patient is None else patient
        return Calls(self.context, self.policy, step, patient=patient, trace=self.trace)

    @property
    def patient(self) -> Calls:
        """The same calls, retrying a transient failure until ``patience_seconds`` (steps after generalize)."""
        return self.at(self.step, patient=True)

    def run(self, activity: Activity[In, Out], inp: In) -> Gen[Out]:
        """Call one activity and return its result."""
        raw = yield from self._retried(lambda: self.context.call_activity(activity.name, self._payload(inp)))
        return activity.decode(raw)

    def run_all(self, activity: Activity[In, Out], inputs: Sequence[In]) -> Gen[list[Out]]:
        """Call one activity for every input, in parallel; the results in the inputs' order."""
        answers = yield from self._batch([activity.bind(i) for i in inputs])
        return [activity.decode(a) for a in answers]

    def gather(self, *calls: Call[Any, Any] | None) -> Gen[Answers]:
        """Run different activities in parallel (a ``None`` is skipped); read each result by its call."""
        given = [c for c in calls if c is not None]
        return Answers(given, (yield from self._batch(given)))

    def once(self, activity: Activity[In, Out], inp: In) -> Gen[Out]:
        """Call one activity once, without retry: its failure is the caller's to judge."""
        return activity.decode((yield self.context.call_activity(activity.name, self._payload(inp))))

    def _payload(self, inp: WireModel) -> dict[str, Any]:
        wire = inp.to_wire()
        return wire if self.trace is None else self.trace.with_payload(wire)

    def _batch(self, calls: Sequence[Call[Any, Any]]) -> Gen[list[Any]]:
        if not calls:
            return []
        ctx = self.context
        answers = yield from self._retried(
            lambda: ctx.task_all([ctx.call_activity(c.name, self._payload(c.inp)) for c in calls])
        )
        return list(answers)

    def _retried(self, task: Any) -> Gen[Any]:
        return (
            yield from retried(
                self.context, task, step=self.step, policy=self.policy, patient=self.is_patient
            )
        )
