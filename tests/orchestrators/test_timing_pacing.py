"""Progress-paced polling, first polls at an operation's usual duration, and the SAS lifetime (orchestrators.timing)."""

from __future__ import annotations

import itertools
import math

import pytest

from azsim.core.latency import LatencyProfile
from orchestrators.timing import (
    DEALLOCATE_FIRST_POLL_FACTOR,
    LAG_FRACTION,
    LONG_POLL_FACTOR,
    MAX_COPY_RESTARTS,
    SAS_MAX_SECONDS,
    first_poll_delay,
    long_poll_max,
    poll_delay,
    progress_poll_delay,
    restart_sas_duration_seconds,
    sas_duration_seconds,
)
from shared.contracts import CapturePolicy

POLICY = CapturePolicy()  # the production defaults: poll 15-300 s, 60 MB/s expected, 3600 s SAS margin
GIB = 1024**3


def test_without_progress_the_wait_grows_geometrically_like_poll_delay():
    assert [progress_poll_delay(POLICY, n, 0.0, 100.0) for n in range(4)] == [
        poll_delay(POLICY, n) for n in range(4)
    ]
    assert progress_poll_delay(POLICY, 30, 0.0, 9999.0) == POLICY.poll_max_seconds


def test_with_progress_the_wait_is_a_quarter_of_the_extrapolated_remaining_time():
    # 10 % done after 1000 s: 9000 s to go at that rate -> poll in 2250 s, capped at 6 x poll_max (30 min).
    assert long_poll_max(POLICY) == POLICY.poll_max_seconds * LONG_POLL_FACTOR == 1800
    assert progress_poll_delay(POLICY, 0, 0.10, 1000.0) == 1800
    # 50 % after 400 s: 400 s to go -> 100 s.
    assert progress_poll_delay(POLICY, 0, 0.50, 400.0) == 100
    # Nearly done: never below poll_min.
    assert progress_poll_delay(POLICY, 0, 0.999, 400.0) == POLICY.poll_min_seconds
    assert progress_poll_delay(POLICY, 0, 1.0, 400.0) == POLICY.poll_min_seconds
    # An explicit cap (a copy: a third of the stall window) wins over the long cap.
    assert progress_poll_delay(POLICY, 0, 0.10, 1000.0, cap_seconds=600) == 600


def test_waits_shrink_as_the_end_approaches():
    # A 7-hour operation progressing evenly, seen at every whole percent.
    delays = [progress_poll_delay(POLICY, 0, f / 100, 7 * 36.0 * f) for f in range(1, 100)]
    assert all(b <= a for a, b in itertools.pairwise(delays))
    assert delays[0] == 1800
    assert delays[-1] == round(0.25 * 7 * 36.0, 3)  # 99 %: a quarter of the last 1 % (252 s)
    # ... down to the lag floor: 0.2 % of the time run so far (50 s after 7 h), never below poll_min.
    assert progress_poll_delay(POLICY, 0, 0.999, 7 * 3600.0) == round(LAG_FRACTION * 7 * 3600, 3)
    assert progress_poll_delay(POLICY, 0, 0.99, 60.0) == POLICY.poll_min_seconds


def _replicate(total_regions: int, full_s: float, source_fraction: float) -> tuple[int, float, float]:
    """Poll a replication modelled like azsim's: source region first (``source_fraction`` of a full
    replication), then the other regions in parallel; progress in whole percent, 99 at most until
    Completed. Returns (polls, seconds from completion to the poll that saw it, completion time)."""
    source_s = source_fraction * full_s
    end = source_s + (full_s if total_regions > 1 else 0.0)

    def progress(t: float) -> list[int]:
        def pct(start: float, dur: float) -> int:
            if t >= start + dur:
                return 100
            return 0 if t < start else min(99, int((t - start) / dur * 100))

        return [pct(0.0, source_s)] + [pct(source_s, full_s) for _ in range(total_regions - 1)]

    t, polls = 0.0, 0
    while True:
        rows = progress(t)
        if all(p == 100 for p in rows):
            return polls, t - end, end
        t += progress_poll_delay(POLICY, polls, sum(rows) / (100.0 * len(rows)), t)
        polls += 1


def test_s1_replication_needs_few_polls_and_is_seen_soon_after_it_completes():
    profile = LatencyProfile()
    full = profile.replication_s(640 * GIB)  # S1: 128 + 2 x 256 GiB, 3 regions: 7.2 h end to end
    polls, lag, end = _replicate(3, full, profile.source_region_fraction)
    assert 7 * 3600 < end < 7.5 * 3600
    assert polls <= 35  # was ~90 at the 300 s cap
    assert 0 <= lag <= LAG_FRACTION * end  # under 0.2 % of the makespan, ~1 min (was up to 300 s)


@pytest.mark.parametrize("hours", [0.5, 2, 24, 72])
def test_replications_of_any_length_stay_cheap_and_are_noticed_quickly(hours: float):
    polls, lag, end = _replicate(2, hours * 3600 / 1.5, 0.5)
    assert polls <= 25 + hours * 3600 / long_poll_max(POLICY)  # the cap sets the pace of very long ones
    assert lag <= max(POLICY.poll_min_seconds, LAG_FRACTION * end), (polls, lag)


def test_first_poll_comes_at_the_usual_duration_and_scales_with_the_policy():
    assert first_poll_delay(POLICY, DEALLOCATE_FIRST_POLL_FACTOR) == 90
    fast = CapturePolicy(poll_min_seconds=0.2, poll_max_seconds=1)
    assert first_poll_delay(fast, DEALLOCATE_FIRST_POLL_FACTOR) == 1  # never beyond poll_max
    assert first_poll_delay(POLICY, 0.1) == POLICY.poll_min_seconds  # never below poll_min


def test_sas_outlives_a_day_long_copy_of_a_256_gib_disk_with_the_defaults():
    # The bench's long copy: 256 GiB at 3.18 MB/s takes 24 h; the old 3 x (size / 60 MB/s) + 1 h gave 4.8 h.
    copy_s = 256 * GIB / 3.18e6
    assert copy_s > 23.9 * 3600
    assert sas_duration_seconds(POLICY, 256 * GIB) > copy_s + 3600
    # A 2 MB/s floor: 38 h + the margin; small disks still get at least the margin.
    assert sas_duration_seconds(POLICY, 256 * GIB) == math.floor(256 * GIB / 2e6 + 3600) + 1
    assert sas_duration_seconds(POLICY, 0) == 3601
    assert sas_duration_seconds(POLICY, 10**18) == SAS_MAX_SECONDS  # int32 in the grant-access API


def test_a_restarted_copy_gets_at_least_twice_the_access_and_enough_for_its_measured_rate():
    # Failed without moving a byte: doubled.
    assert restart_sas_duration_seconds(POLICY, 5000, 100 * GIB, 0, 5000.0) == 10001
    # Moved 10 % in 5000 s: the whole copy needs 50,000 s at that rate -> 2 x that + margin.
    assert restart_sas_duration_seconds(POLICY, 5000, 100 * GIB, 10 * GIB, 5000.0) == 100000 + 3600 + 1
    durations = [5000]
    for _ in range(MAX_COPY_RESTARTS):
        durations.append(restart_sas_duration_seconds(POLICY, durations[-1], GIB, 0, 1.0))
    assert durations == [5000, 10001, 20003, 40007]
