"""``poll()``: the one waiting loop of the orchestrators, on durable timers, with a typed verdict.

Every wait for Azure (the guest stopping the VM, a deallocation, snapshots, replication, a copy, a
deletion) is the same loop::

    probe -> done? -> next wait? -> deadline? -> poll budget? -> durable timer (a cancel safe point) -> probe

``delay(polls, value)`` says how long the next wait is (from ``orchestrators.timing``'s pure pacing
maths, counted in waits so far), or ``None`` to probe again at once without a wait: that is how a
probe that starts an operation again (a snapshot, an image version, a copy) is run — it owns its
own back-off and is not held against the deadline or the budget. The loop ends with ``Done`` (the
``done`` value), ``TimedOut`` (``timeout`` seconds passed since ``started``) or ``OutOfPolls``
(``max_polls`` waits spent: the count a deletion gets, or one execution's share before
continue-as-new). A received ``cancel`` raises ``Canceled`` at the wait, like every safe point, so it
unwinds to the orchestration's compensation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar, cast

import azure.durable_functions as df

from orchestrators.cancellation import CancelWatch
from orchestrators.retrying import Gen, sleep

T = TypeVar("T")


@dataclass(frozen=True)
class Done(Generic[T]):
    value: T


@dataclass(frozen=True)
class TimedOut(Generic[T]):
    last: T | None  # the last value seen (None: a resumed wait that timed out before its first probe)
    waited: float  # seconds since ``started``
    polls: int  # waits made


@dataclass(frozen=True)
class OutOfPolls(Generic[T]):
    last: T | None
    waited: float
    polls: int


Verdict = Done[T] | TimedOut[T] | OutOfPolls[T]


def poll(
    context: df.DurableOrchestrationContext,
    probe: Callable[[], Gen[T]],
    done: Callable[[T], bool],
    delay: Callable[[int, T | None], float | None],
    *,
    started: datetime | Callable[[], datetime] | None = None,
    timeout: float | None = None,
    max_polls: int | None = None,
    watch: CancelWatch | None = None,
    first: T | None = None,
    first_delay: float | None = None,
    resume: bool = False,
) -> Gen[Verdict[T]]:
    """Probe until ``done``; see the module doc.

    ``first`` is a value already in hand (no first probe); otherwise the first probe comes after
    ``first_delay`` (if any). ``resume`` (an execution continued as new) starts with the wait its
    predecessor would have made: deadline, budget and ``delay(0, None)`` first, then the probe.
    ``started`` defaults to now and may be a function, for a deadline that moves (a copy's last progress).
    """
    begun = context.current_utc_datetime
    value = first
    if value is None and not resume:
        if first_delay:
            yield from sleep(context, first_delay, watch)
        value = yield from probe()
    polls = 0
    while resume or not done(cast(T, value)):
        resume = False
        wait = delay(polls, value)
        if wait is not None:
            since = started() if callable(started) else started or begun
            waited = _seconds(since, context.current_utc_datetime)
            if timeout is not None and waited >= timeout:
                return TimedOut(value, waited, polls)
            if max_polls is not None and polls >= max_polls:
                return OutOfPolls(value, waited, polls)
            yield from sleep(context, wait, watch)
            polls += 1
        value = yield from probe()
    return Done(cast(T, value))


def _seconds(start: datetime, now: datetime) -> float:
    # A start parsed from stored ISO text is aware; the context's clock may be naive (both are UTC).
    if (start.tzinfo is None) != (now.tzinfo is None):
        start = start.replace(tzinfo=now.tzinfo)
    return (now - start).total_seconds()
