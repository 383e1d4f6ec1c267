"""`Gathering`: at most one step with records an interval; records polled sooner wait for the
rest of it and share its transaction (pure: records and times passed in)."""

from __future__ import annotations

from triage.core.records import ConsumedRecord, Partition, batch_of
from triage.core.runtime.app import Gathering


def records(partition: int, *offsets: int) -> list[ConsumedRecord]:
    return [ConsumedRecord("in", partition, o, 0, b"k", b"v") for o in offsets]


def test_without_an_interval_every_poll_is_stepped_as_it_came():
    gathering = Gathering(0, limit=10)
    polled = batch_of(records(0, 1))
    assert gathering.add(polled, 0.0) is polled
    assert gathering.add({}, 0.0) == {}
    assert gathering.wait_ms(500, 0.0) == 500


def test_a_text_after_a_quiet_spell_goes_at_once_and_the_next_ones_wait_for_the_interval():
    gathering = Gathering(100, limit=10)
    assert gathering.add({}, 0.0) == {}  # nothing held: an empty step, as before (timers)
    assert gathering.add(batch_of(records(0, 1)), 1.000) == {Partition("in", 0): records(0, 1)}
    assert gathering.wait_ms(500, 1.010) == 500  # nothing held: a poll waits as long as it may
    assert gathering.add(batch_of(records(0, 2)), 1.030) is None
    assert gathering.wait_ms(500, 1.030) == 70  # no longer than the held records may
    assert gathering.add({}, 1.050) is None
    assert gathering.add(batch_of(records(0, 3) + records(1, 7)), 1.080) is None
    batch = gathering.add({}, 1.100)
    assert batch == {Partition("in", 0): records(0, 2, 3), Partition("in", 1): records(1, 7)}
    assert gathering.pending == {}
    # the interval now runs from this step
    assert gathering.add(batch_of(records(0, 4)), 1.150) is None
    assert gathering.add(batch_of(records(0, 5)), 1.200) == {Partition("in", 0): records(0, 4, 5)}
    assert gathering.add(batch_of(records(0, 6)), 1.400) == {Partition("in", 0): records(0, 6)}


def test_the_limit_steps_at_once():
    gathering = Gathering(1000, limit=3)
    gathering.add(batch_of(records(0, 0)), 0.0)
    assert gathering.add(batch_of(records(0, 1, 2)), 0.1) is None
    assert gathering.add(batch_of(records(0, 3)), 0.2) == {Partition("in", 0): records(0, 1, 2, 3)}


def test_revoked_partitions_are_dropped_and_read_again_by_their_next_owner():
    gathering = Gathering(100, limit=4)
    gathering.add(batch_of(records(0, 0)), 0.0)
    gathering.add(batch_of(records(0, 1) + records(1, 5, 6)), 0.01)
    gathering.drop([Partition("in", 1)])
    assert gathering.pending == {Partition("in", 0): records(0, 1)}
    # the dropped records no longer count towards the limit
    assert gathering.add(batch_of(records(0, 2, 3)), 0.02) is None
    assert gathering.take() == {Partition("in", 0): records(0, 1, 2, 3)}
    assert gathering.take() == {}
