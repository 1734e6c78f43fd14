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

# Operations that report progress (replication %, bytes copied) are polled by the remaining time
# their own progress rate predicts: the next poll comes after PROGRESS_FRACTION of it. The reported
# progress is rounded down (whole percent), which can overstate the remaining time up to ~2x; polling
# at a quarter of it therefore never lands after the real end, and the lag at the end shrinks with
# the remaining time (poll_min_seconds at worst).
PROGRESS_FRACTION = 0.25
# ... but not more often than every LAG_FRACTION of the time the operation has run so far: noticing
# the end of a 7-hour replication within a minute (0.2 %) is soon enough, and it saves the ~8 polls
# it would take to close in on the end at poll_min_seconds.
LAG_FRACTION = 0.002
# A long, progress-paced operation is still looked at every LONG_POLL_FACTOR x poll_max_seconds
# (30 min with the default 300 s): a replication of hours needs no status every 5 minutes, but its
# state (and a failed region) should not go unseen for hours either.
LONG_POLL_FACTOR = 6.0
# The first status poll of a deallocation comes at the operation's usual duration, in units of
# poll_min_seconds so it scales with the policy: 6 x 15 s = 90 s (no published figure: see docs/pipeline.md,
# "Pacing"). Polling earlier only spends Compute's per-VM read budget.
DEALLOCATE_FIRST_POLL_FACTOR = 6.0
# A snapshot of a deallocated disk is usually ready within seconds to a few tens of seconds (docs/pipeline.md,
# "Pacing"): first poll at 1.5 x poll_min_seconds (22.5 s).
SNAPSHOT_FIRST_POLL_FACTOR = 1.5

# The snapshot's read access (SAS) is sized for a copy SAS_PESSIMISM times slower than
# expected_copy_mbps (2 MB/s with the default 60 MB/s; copies are observed at 30-45 MB/s), plus
# sas_margin_seconds. A SAS that still expires before its copy ends (the copy then fails with 403
# CannotVerifyCopySource) is granted again for longer and the copy restarted, at most
# MAX_COPY_RESTARTS times per disk; each restart's SAS lasts at least SAS_RESTART_GROWTH x the
# previous one, and long enough for the whole copy at the rate the failed copy achieved.
SAS_PESSIMISM = 30.0
SAS_RESTART_GROWTH = 2.0
MAX_COPY_RESTARTS = 3
# durationInSeconds is an int32 in the grant-access API.
SAS_MAX_SECONDS = 2**31 - 1


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


def long_poll_max(policy: CapturePolicy) -> float:
    """The longest wait between two polls of a progress-paced operation (replication)."""
    return max(policy.poll_max_seconds * LONG_POLL_FACTOR, policy.poll_min_seconds)


def progress_poll_delay(
    policy: CapturePolicy,
    polls: int,
    done_fraction: float,
    elapsed_seconds: float,
    cap_seconds: float | None = None,
) -> float:
    """Seconds to wait before the next status poll of an operation that reports its progress.

    ``done_fraction`` (0..1) was reached ``elapsed_seconds`` after the operation started. While
    nothing is reported yet the wait grows geometrically like ``poll_delay``; once progress is
    seen, the remaining time is extrapolated from the average rate so far and the next poll
    comes after ``PROGRESS_FRACTION`` of it, clamped into [max(poll_min_seconds, ``LAG_FRACTION`` x
    elapsed), ``cap_seconds``] (default ``long_poll_max``). Near the end the waits therefore shrink,
    down to that floor.
    """
    cap = max(long_poll_max(policy) if cap_seconds is None else cap_seconds, policy.poll_min_seconds)
    if done_fraction <= 0.0 or elapsed_seconds <= 0.0:
        return round(min(poll_delay(policy, polls), cap), 3)
    if done_fraction >= 1.0:
        return round(policy.poll_min_seconds, 3)
    remaining = elapsed_seconds * (1.0 - done_fraction) / done_fraction
    floor = min(max(policy.poll_min_seconds, LAG_FRACTION * elapsed_seconds), cap)
    return round(clamp(PROGRESS_FRACTION * remaining, floor, cap), 3)


def first_poll_delay(policy: CapturePolicy, factor: float) -> float:
    """The wait before the first status poll of an operation usually done after ``factor`` x poll_min."""
    return round(clamp(policy.poll_min_seconds * factor, policy.poll_min_seconds, policy.poll_max_seconds), 3)


def sas_duration_seconds(policy: CapturePolicy, size_bytes: int) -> int:
    """How long to grant read access on a snapshot of ``size_bytes`` for its VHD copy (see SAS_PESSIMISM)."""
    pessimistic = max(policy.expected_copy_mbps / SAS_PESSIMISM, 0.001) * BYTES_PER_MB
    return min(int(max(size_bytes, 0) / pessimistic + max(policy.sas_margin_seconds, 0)) + 1, SAS_MAX_SECONDS)


def restart_sas_duration_seconds(
    policy: CapturePolicy, previous_seconds: int, bytes_total: int, bytes_copied: int, copy_seconds: float
) -> int:
    """The SAS lifetime for a copy restarted because its source SAS expired after ``copy_seconds``.

    At least ``SAS_RESTART_GROWTH`` x the previous lifetime; if the failed copy moved bytes, also
    long enough for the whole copy at half the rate it achieved, plus the margin.
    """
    grown = previous_seconds * SAS_RESTART_GROWTH
    if bytes_copied > 0 and copy_seconds > 0:
        needed = 2.0 * copy_seconds * max(bytes_total, bytes_copied) / bytes_copied
        grown = max(grown, needed + max(policy.sas_margin_seconds, 0))
    return min(int(grown) + 1, SAS_MAX_SECONDS)


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
