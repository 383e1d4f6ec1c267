"""PositionWatch ends a session whose consumer stays without a start position too long."""

from __future__ import annotations

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError

from triage.core.kafka import group_health
from triage.core.kafka.group_health import PositionWatch


class _Subscription:
    def __init__(self) -> None:
        self.missing: set[TopicPartition] = set()

    def missing_fetch_positions(self) -> set[TopicPartition]:
        return set(self.missing)


class _Consumer:
    """Only the part of KafkaConsumer's state the watch reads."""

    def __init__(self) -> None:
        self._subscription = _Subscription()


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(group_health.time, "monotonic", lambda: now[0])
    return now


def test_raises_only_after_the_limit_and_names_the_partitions(clock):
    consumer, watch = _Consumer(), PositionWatch(limit_s=60)
    consumer._subscription.missing = {TopicPartition("texts", 3)}
    watch.check(consumer)
    clock[0] += 59
    watch.check(consumer)
    clock[0] += 2
    with pytest.raises(KafkaTimeoutError, match=r"texts\[3\] after 60s"):
        watch.check(consumer)


def test_a_position_found_resets_the_clock(clock):
    consumer, watch = _Consumer(), PositionWatch(limit_s=60)
    consumer._subscription.missing = {TopicPartition("texts", 0)}
    watch.check(consumer)
    clock[0] += 50
    consumer._subscription.missing = set()
    watch.check(consumer)
    consumer._subscription.missing = {TopicPartition("texts", 0)}
    clock[0] += 50
    watch.check(consumer)  # missing again for 0s, not 100s
    clock[0] += 50
    watch.check(consumer)


def test_the_real_consumer_state_answers_the_question():
    # The watch reads kafka-python's private subscription state: fail loudly if it moves.
    from kafka.consumer.subscription_state import SubscriptionState

    state = SubscriptionState()
    state.assign_from_user([TopicPartition("texts", 0)])
    assert state.missing_fetch_positions() == {TopicPartition("texts", 0)}


class _Coordinator:
    def __init__(self, state, join_task, rejoin: bool) -> None:
        self.state, self._join_task, self._rejoin = state, join_task, rejoin
        self.config = {"group_id": "g"}
        self.asked = False

    def need_rejoin(self) -> bool:
        return self._rejoin

    def request_rejoin(self) -> None:
        self.asked = True


def test_a_join_the_client_left_uncollected_is_asked_again():
    from kafka.structs import MemberState

    stranded = _Consumer()
    stranded._coordinator = _Coordinator(MemberState.REBALANCING, object(), rejoin=False)
    assert group_health.finish_stranded_join(stranded) and stranded._coordinator.asked
    for state, task, rejoin in [
        (MemberState.STABLE, None, False),  # a member
        (MemberState.REBALANCING, object(), True),  # a join the next poll will await
        (MemberState.UNJOINED, None, True),  # not joined yet
    ]:
        consumer = _Consumer()
        consumer._coordinator = _Coordinator(state, task, rejoin)
        assert not group_health.finish_stranded_join(consumer) and not consumer._coordinator.asked
