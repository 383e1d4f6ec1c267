"""The stall conditions, timed across checks: pure logic, time passed in."""

from __future__ import annotations

from triage.core.records import Partition
from triage.core.runtime.stalls import Offsets, StallWatch

TP = Partition("scores", 2)


def test_a_position_that_stops_short_of_committed_records_is_an_unread_stall():
    watch = StallWatch(after_s=15)
    assert watch.observe(0, {TP: Offsets(position=10, stable=40, end=40)}) == []
    assert watch.observe(14_000, {TP: Offsets(10, 55, 55)}) == []
    (stall,) = watch.observe(16_000, {TP: Offsets(10, 60, 60)})
    assert (stall.reason, stall.offset, stall.seconds) == ("unread", 10, 16.0)
    assert stall.describe() == ("scores[2] stalled 16s: committed records wait unread at offset 10")


def test_a_position_that_moves_is_no_stall_however_far_behind():
    watch = StallWatch(after_s=15)
    for second in range(0, 120, 5):
        stalls = watch.observe(second * 1000, {TP: Offsets(second * 10, 10_000, 10_000)})
        assert stalls == []


def test_a_last_stable_offset_that_stays_behind_the_end_is_a_held_stall():
    watch = StallWatch(after_s=15)
    watch.observe(0, {TP: Offsets(position=7, stable=7, end=9)})
    # Records keep arriving behind the open transaction: the end moves, the stable offset not.
    (stall,) = watch.observe(20_000, {TP: Offsets(7, 7, 30)})
    assert (stall.reason, stall.offset, stall.seconds) == ("held", 7, 20.0)
    assert "an open transaction holds the partition at offset 7" in stall.describe()
    # Aborted: the stable offset jumps to the end, the service reads on.
    assert watch.observe(25_000, {TP: Offsets(7, 30, 30)}) == []
    assert watch.observe(26_000, {TP: Offsets(30, 30, 30)}) == []


def test_transactions_that_commit_between_checks_are_no_stall():
    watch = StallWatch(after_s=15)
    for second in range(0, 60, 5):
        # A busy upstream: always a transaction open, but the stable offset moves every check.
        offsets = {TP: Offsets(second * 100, second * 100, second * 100 + 50)}
        assert watch.observe(second * 1000, offsets) == []


def test_an_idle_partition_is_no_stall():
    watch = StallWatch(after_s=1)
    for second in range(10):
        assert watch.observe(second * 1000, {TP: Offsets(5, 5, 5)}) == []
    assert watch.observe(0, {TP: Offsets(None, 0, 0)}) == []


def test_a_commit_in_flight_is_timed_from_its_start():
    watch = StallWatch(after_s=15)
    offsets = {TP: Offsets(120, 120, 120)}
    assert watch.observe(10_000, offsets, {TP: 100}, committing_since_ms=0) == []
    (stall,) = watch.observe(21_000, offsets, {TP: 100}, committing_since_ms=0)
    assert (stall.reason, stall.offset, stall.seconds) == ("commit", 100, 21.0)
    assert watch.observe(22_000, offsets) == []


def test_stalls_are_timed_at_the_time_asked():
    watch = StallWatch(after_s=15)
    other = Partition("scores", 0)
    watch.observe(0, {TP: Offsets(1, 5, 5), other: Offsets(3, 3, 8)})
    stalls = watch.stalls(30_000)
    assert [(s.partition, s.reason, s.seconds) for s in stalls] == [
        (0, "held", 30.0),
        (2, "unread", 30.0),
    ]
    assert watch.stalls(10_000) == []


def test_a_reset_starts_the_timing_afresh():
    watch = StallWatch(after_s=15)
    watch.observe(0, {TP: Offsets(1, 5, 5)})
    assert watch.stalls(20_000)
    watch.reset()
    assert watch.observe(21_000, {TP: Offsets(1, 5, 5)}) == []
    assert [s.seconds for s in watch.observe(36_000, {TP: Offsets(1, 5, 5)})] == [15.0]
