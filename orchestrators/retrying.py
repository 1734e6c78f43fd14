"""The orchestrator's retry owner for transient failures that outlasted the SDK's own HTTP retries.

An activity raises a ``CaptureError``; the Durable host hands the orchestrator only its text, in
which ``shared.errors`` embeds an envelope. ``parse_failure`` recovers it: a *transient* error is
retried here after a durable-timer backoff (``timing.retry_delay``), up to
``policy.transient_retry_attempts`` times; anything else — and a transient error that keeps
failing — becomes ``StepFailed``, which carries the step, Azure's code and message to the
capture's status. No ``call_activity_with_retry``: that would retry terminal errors too.

After generalize the VM cannot go back, so giving up on a transient failure would leave a
destroyed VM without an image: steps after generalize call with ``patient=True`` and retry a
transient failure until ``patience_seconds(policy)`` (the replication timeout, 72 h by default)
has passed since its first failure, with the same capped backoff, instead of
``transient_retry_attempts`` times.

The helpers are sub-generators: use them with ``yield from`` inside an orchestrator. Orchestrators call
activities through ``orchestrators.calls``, which runs every call through ``retried``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import timedelta
from typing import Any, TypeAlias, TypeVar

import azure.durable_functions as df

from orchestrators.cancellation import CancelWatch
from orchestrators.timing import retry_delay
from shared.contracts import CapturePolicy
from shared.errors import CaptureError, ErrorInfo, parse_failure
from shared.redaction import redact

T = TypeVar("T")
# An orchestrator sub-generator that ends with a ``T`` (``x = yield from g`` gives the ``T``).
Gen: TypeAlias = Generator[Any, Any, T]


class StepFailed(CaptureError):
    """A step of the capture failed for good; ``str()`` carries the envelope so a parent can parse it."""

    def __init__(self, info: ErrorInfo) -> None:
        self.kind = info.kind or "terminal"  # instance attribute read by CaptureError.__init__
        super().__init__(
            info.message,
            step=info.step,
            code=info.code,
            resource=info.resource,
            advice=info.advice,
            azure_code=info.azure_code,
        )


def failure_info(exc: BaseException, *, step: str) -> ErrorInfo:
    """The ``ErrorInfo`` of a failed activity or sub-orchestration, or a terminal one naming ``step``."""
    if isinstance(exc, CaptureError):
        return exc.info
    info = parse_failure(str(exc))
    if info is not None:
        return info
    # Not one of ours (a bug or a host failure): keep the text, without anything that looks like a secret.
    text = redact(str(exc)).strip().splitlines()
    return ErrorInfo.terminal(
        step,
        "UnexpectedFailure",
        f"{step} failed unexpectedly: {text[0] if text else type(exc).__name__}"[:1000],
    )


def patience_seconds(policy: CapturePolicy) -> float:
    """How long a step after generalize keeps retrying a transient failure (see module doc)."""
    return max(policy.replication_timeout_seconds, policy.transient_retry_first_seconds)


class Budget:
    """Whether a transient failure may be retried once more: by count, or (patient) by deadline."""

    def __init__(self, context: df.DurableOrchestrationContext, policy: CapturePolicy, patient: bool) -> None:
        self.context, self.policy, self.patient = context, policy, patient
        self.attempt = 0
        self.first_failed: Any = None

    def allows(self, info: ErrorInfo) -> bool:
        if info.kind != "transient":
            return False
        now = self.context.current_utc_datetime
        if self.first_failed is None:
            self.first_failed = now
        if self.patient:
            return (now - self.first_failed).total_seconds() < patience_seconds(self.policy)
        return self.attempt < self.policy.transient_retry_attempts

    def wait(self) -> Any:
        delay = retry_delay(self.policy, self.attempt)
        self.attempt += 1
        return self.context.create_timer(self.context.current_utc_datetime + timedelta(seconds=delay))


def retried(
    context: df.DurableOrchestrationContext,
    task: Callable[[], Any],
    *,
    step: str,
    policy: CapturePolicy,
    patient: bool = False,
) -> Gen[Any]:
    """Yield a fresh ``task()`` until it succeeds; retry transient failures after a durable-timer backoff.

    The one retry loop: a single activity and a parallel batch (``task_all`` fails as soon as one child
    fails, so the batch is the unit of retry; every activity run in a batch is idempotent) both go
    through it (``orchestrators.calls``).
    """
    budget = Budget(context, policy, patient)
    while True:
        try:
            return (yield task())
        except Exception as exc:  # the SDK raises plain Exception for a failed activity
            info = failure_info(exc, step=step)
            if not budget.allows(info):
                raise StepFailed(info) from None
        yield budget.wait()


def sleep(
    context: df.DurableOrchestrationContext, seconds: float, watch: CancelWatch | None = None
) -> Gen[None]:
    """Wait on a durable timer; with ``watch``, a safe point: raises ``Canceled`` when ``cancel`` arrives."""
    if watch is not None:
        yield from watch.sleep(seconds)
        return
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=max(seconds, 0.0)))
