"""Pure timing policy: how long to wait between polls and between retries of a transient failure.

Kept free of Durable types so it can be unit-tested and reasoned about on its own.
"""

from __future__ import annotations

from datetime import datetime

from shared.contracts import CapturePolicy

# Each poll waits this much longer than the previous one (until poll_max_seconds).
GROWTH = 1.5
# While an operation is expected to run for another T seconds, polling more often than T/4 only
# spends requests: we poll at least every poll_max_seconds for progress, but not much more often.
EXPECTED_FRACTION = 0.25
BYTES_PER_MB = 1_000_000


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def poll_delay(policy: CapturePolicy, polls: int, expected_remaining_seconds: float = 0.0) -> float:
    """Seconds to wait before poll number ``polls + 1``.

    Grows geometrically from ``poll_min_seconds`` so a fast operation is noticed quickly and a
    slow one costs few requests, is never shorter than a quarter of the time the operation is
    still expected to take, and is clamped into [poll_min_seconds, poll_max_seconds].
    """
    geometric = policy.poll_min_seconds * (GROWTH ** max(polls, 0))
    by_expectation = EXPECTED_FRACTION * max(expected_remaining_seconds, 0.0)
    return round(clamp(max(geometric, by_expectation), policy.poll_min_seconds, policy.poll_max_seconds), 3)


def expected_copy_seconds(policy: CapturePolicy, bytes_remaining: int) -> float:
    """How long a server-side copy of ``bytes_remaining`` bytes should still take at the expected rate."""
    rate = max(policy.expected_copy_mbps, 0.001) * BYTES_PER_MB
    return max(bytes_remaining, 0) / rate


def retry_delay(policy: CapturePolicy, attempt: int) -> float:
    """Wait before re-trying a transient failure for the ``attempt``-th time (0-based): doubling, capped."""
    first = max(policy.transient_retry_first_seconds, 0.0)
    return round(min(first * (2 ** max(attempt, 0)), max(first * 16, policy.poll_max_seconds)), 3)


def iso(dt: datetime) -> str:
    """UTC ISO-8601 with a trailing Z (the form the Durable status API uses)."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def elapsed_seconds(start_iso: str, now: datetime) -> float:
    start = parse_iso(start_iso)
    if now.tzinfo is None and start.tzinfo is not None:
        start = start.replace(tzinfo=None)
    elif now.tzinfo is not None and start.tzinfo is None:
        start = start.replace(tzinfo=now.tzinfo)
    return (now - start).total_seconds()
