"""The orchestrator's retry owner for transient failures that outlasted the SDK's own HTTP retries.

An activity raises a ``CaptureError``; the Durable host hands the orchestrator only its text, in
which ``shared.errors`` embeds an envelope. ``parse_failure`` recovers it: a *transient* error is
retried here after a durable-timer backoff (``timing.retry_delay``), up to
``policy.transient_retry_attempts`` times; anything else — and a transient error that keeps
failing — becomes ``StepFailed``, which carries the step, Azure's code and message to the
capture's status. No ``call_activity_with_retry``: that would retry terminal errors too.

The helpers are sub-generators: use them with ``yield from`` inside an orchestrator.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from orchestrators.cancellation import CancelWatch
from orchestrators.timing import retry_delay
from shared.contracts import CapturePolicy
from shared.errors import CaptureError, ErrorInfo, parse_failure
from shared.redaction import redact

Gen = Generator[Any, Any, Any]


class StepFailed(CaptureError):
    """A step of the capture failed for good; ``str()`` carries the envelope so a parent can parse it."""

    def __init__(self, info: ErrorInfo) -> None:
        self.kind = info.kind  # instance attribute read by CaptureError.__init__
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
    return ErrorInfo(
        kind="terminal",
        step=step,
        code="UnexpectedFailure",
        message=f"{step} failed unexpectedly: {text[0] if text else type(exc).__name__}"[:1000],
    )


def call(
    context: df.DurableOrchestrationContext,
    name: str,
    payload: dict[str, Any],
    *,
    step: str,
    policy: CapturePolicy,
) -> Gen:
    """Call one activity; retry transient failures with a durable-timer backoff; return its result."""
    attempt = 0
    while True:
        try:
            return (yield context.call_activity(name, payload))
        except Exception as exc:  # the SDK raises plain Exception for a failed activity
            info = failure_info(exc, step=step)
            if info.kind != "transient" or attempt >= policy.transient_retry_attempts:
                raise StepFailed(info) from None
        yield context.create_timer(
            context.current_utc_datetime + timedelta(seconds=retry_delay(policy, attempt))
        )
        attempt += 1


def call_all(
    context: df.DurableOrchestrationContext,
    calls: list[tuple[str, dict[str, Any]]],
    *,
    step: str,
    policy: CapturePolicy,
) -> Gen:
    """Run idempotent activities in parallel; on a transient failure wait and re-run the whole batch.

    ``task_all`` fails as soon as one child fails, so the batch is the unit of retry; every
    activity used here is idempotent (reads, or starts that find their own earlier work).
    """
    if not calls:
        return []
    attempt = 0
    while True:
        try:
            return (yield context.task_all([context.call_activity(n, p) for n, p in calls]))
        except Exception as exc:
            info = failure_info(exc, step=step)
            if info.kind != "transient" or attempt >= policy.transient_retry_attempts:
                raise StepFailed(info) from None
        yield context.create_timer(
            context.current_utc_datetime + timedelta(seconds=retry_delay(policy, attempt))
        )
        attempt += 1


def sleep(context: df.DurableOrchestrationContext, seconds: float, watch: CancelWatch | None = None) -> Gen:
    """Wait on a durable timer; with ``watch``, a safe point: raises ``Canceled`` when ``cancel`` arrives."""
    if watch is not None:
        yield from watch.sleep(seconds)
        return
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=max(seconds, 0.0)))
