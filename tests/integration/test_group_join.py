"""A consumer subscribed with `topics.subscribe` joins its fresh group in one rebalance. Counted
from kafka-python's own log: a JoinGroup round for the member id the broker hands out, then the
join; before `subscribe` fetched the metadata, every group rebalanced once more at its start."""

from __future__ import annotations

import logging
import time
import uuid

import pytest

from triage.core.kafka import topics
from triage.core.kafka.clients import consumer
from triage.core.settings import CommonSettings

pytestmark = pytest.mark.integration


def test_a_fresh_group_joins_without_a_second_rebalance(env, caplog):
    caplog.set_level(logging.INFO, logger="kafka.coordinator")
    settings = CommonSettings()
    # The first group of a fresh broker also waits for its offsets topic (NotCoordinator
    # rounds): warm it up, count the groups after.
    groups = [f"g-{uuid.uuid4().hex[:8]}" for _ in range(4)]
    for group in groups:
        member = consumer(settings, group_id=group)
        try:
            topics.subscribe(member, [settings.topics.texts])
            until = time.monotonic() + 6  # joined in well under that; a second round would show
            while time.monotonic() < until:
                member.poll(timeout_ms=100)
            assert member.assignment(), f"{group} has no partitions"
        finally:
            member.close()
    joins = [r.getMessage() for r in caplog.records if "(Re-)joining group" in r.getMessage()]
    counted = groups[1:]
    assert {group: sum(group in j for j in joins) for group in counted} == dict.fromkeys(counted, 2)
