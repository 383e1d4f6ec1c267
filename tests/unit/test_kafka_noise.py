"""kafka-python's harmless alarms are dropped, the same lines that mean something are kept: the
slow-step warning comes from the client's own I/O loop here, timed by it."""

from __future__ import annotations

import logging
import time

import pytest
from kafka.errors import Cancelled, KafkaConnectionError
from kafka.net.selector import NetworkSelector

from triage.core.kafka.noise import quiet_harmless_noise


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    quiet_harmless_noise()
    quiet_harmless_noise()  # twice: still one filter
    assert len(logging.getLogger("kafka.cluster").filters) == 1
    caplog.set_level(logging.DEBUG, logger="kafka")
    return caplog


def slow_step(seconds: float) -> None:
    async def step() -> None:
        time.sleep(seconds)  # one step of the loop that holds it, as a starved process does

    NetworkSelector().run(step)


def test_a_short_slow_step_is_dropped_and_a_long_one_kept(logged):
    slow_step(0.15)
    assert not [r for r in logged.records if "blocking the event loop" in r.getMessage()]
    slow_step(1.05)
    kept = [r for r in logged.records if "blocking the event loop" in r.getMessage()]
    assert len(kept) == 1 and kept[0].levelno == logging.WARNING


def test_a_cancelled_metadata_refresh_is_dropped_and_a_real_failure_kept(logged):
    cluster = logging.getLogger("kafka.cluster")
    cluster.error("Metadata refresh: failed %s", Cancelled())  # as kafka/cluster.py logs it
    cluster.error("Metadata refresh: failed %s", KafkaConnectionError("refused"))
    assert [r.getMessage() for r in logged.records] == [
        "Metadata refresh: failed KafkaConnectionError: refused"
    ]
