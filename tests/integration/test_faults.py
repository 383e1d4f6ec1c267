"""Fault injection: exactly one committed result per text through crashes and broker failures.

Each test runs the real services as subprocesses (three classifier units, each its own
consumer group, and the aggregator), streams texts while it breaks something, and then checks
with a `read_committed` consumer that every id has exactly one result and none has two.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter

import pytest
from conftest import Processes, Streamer, stream, wait_for_registry, wait_until
from kafka import TopicPartition

from triage.core.kafka import clients as kafka_clients
from triage.core.model.artifacts import available_labels, load_models
from triage.core.model.decision import decide
from triage.core.model.scoring import Scorer
from triage.core.settings import CommonSettings
from triage.local import cluster as kafka_local
from triage.producer.publisher import Publisher
from triage.tools.results import read_dead_letters, read_labels

pytestmark = [pytest.mark.integration, pytest.mark.fault]


def units(models) -> dict[str, list[str]]:
    labels = available_labels(models)
    return {"unit-a": labels[:4], "unit-b": labels[4:7], "unit-c": labels[7:]}


def start_unit(procs: Processes, name: str, models, labels: list[str]) -> None:
    args = ["classifier", "--models", str(models), "--instance-id", name]
    for label in labels:
        args += ["--label", label]
    procs.start(name, *args)


# Long enough that every classifier is back from a broker failover before a text waiting for it
# is decided without it: a JVM restart takes up to ~30s on a busy 2-core machine, and a service
# stuck in the Kafka client restarts itself after TRIAGE_STALL_TIMEOUT_S (60s). These tests check
# that nothing is lost or doubled and that labels match offline, not how fast they recover.
FAULT_JOIN_TIMEOUT = "180"


def start_pipeline(
    procs: Processes, models, join_timeout: str = FAULT_JOIN_TIMEOUT
) -> dict[str, list[str]]:
    plan = units(models)
    for name, labels in plan.items():
        start_unit(procs, name, models, labels)
    procs.start("aggregator", "aggregate", "--join-timeout-s", join_timeout)
    wait_for_registry(set(available_labels(models)), timeout_s=120)
    return plan


def check_exactly_once(records, models, timeout_s: float = 300, all_complete: bool = True):
    ids = {r.id for r in records}

    def all_there():
        found = [r for r in read_labels(CommonSettings()) if r.id in ids]
        return found if {r.id for r in found} == ids else None

    results = wait_until(all_there, timeout_s, "a result for every text", interval=2)
    time.sleep(3)  # give a would-be duplicate time to show up
    results = [r for r in read_labels(CommonSettings()) if r.id in ids]
    counts = Counter(r.id for r in results)
    duplicates = [i for i, c in counts.items() if c > 1]
    letters = [d for d in read_dead_letters(CommonSettings()) if d.id in ids]
    assert not duplicates, f"{len(duplicates)} texts got two results, e.g. " + "; ".join(
        repr([(r.label, r.complete, r.decided_at_ms, r.versions) for r in results if r.id == i])
        for i in duplicates[:3]
    )
    assert not letters, f"good texts dead-lettered: {letters[:3]}"
    assert len(counts) == len(ids)
    if all_complete:
        offline = Scorer(load_models(models)).score([r.text for r in records])
        expected = {
            r.id: decide({k: float(v[i]) for k, v in offline.items()}).label
            for i, r in enumerate(records)
        }
        assert all(r.complete for r in results)
        assert sum(r.label != expected[r.id] for r in results) == 0
    return results


def test_kill_minus_nine_services_mid_stream(procs, demo_models):
    plan = start_pipeline(procs, demo_models)
    records = stream(5000)
    streamer = Streamer(records, rate=250)
    streamer.start()
    rng = random.Random(7)
    kills = Counter()
    while streamer.is_alive() or sum(kills.values()) < 10:
        time.sleep(rng.uniform(0.5, 2.0))
        victim = rng.choice([*plan, "aggregator"])
        procs.stop(victim, signal.SIGKILL)
        kills[victim] += 1
        if victim == "aggregator":
            procs.start("aggregator", "aggregate", "--join-timeout-s", FAULT_JOIN_TIMEOUT)
        else:
            start_unit(procs, victim, demo_models, plan[victim])
    streamer.join()
    assert streamer.error is None, streamer.error
    results = check_exactly_once(records, demo_models)
    print(f"\nkill -9: {len(records)} texts, {len(results)} results, kills {dict(kills)}")
    assert sum(kills.values()) >= 10


def test_classifier_down_longer_than_join_timeout(procs, demo_models):
    plan = start_pipeline(procs, demo_models, join_timeout="3")
    assert procs.stop("unit-b") == 0
    records = stream(100)
    with Publisher() as publisher:
        publisher.publish(records)
    results = check_exactly_once(records, demo_models, all_complete=False)
    assert all(not r.complete and r.missing == sorted(plan["unit-b"]) for r in results)
    start_unit(procs, "unit-b", demo_models, plan["unit-b"])
    settings = CommonSettings()
    group = settings.group("triage-classifier-" + _unit_group(plan["unit-b"]))
    wait_until(lambda: _caught_up(settings, group), 60, "unit-b to catch up")
    time.sleep(3)
    again = check_exactly_once(records, demo_models, all_complete=False)
    assert all(not r.complete for r in again)


def _unit_group(labels: list[str]) -> str:
    from triage.consumers.service import unit_name

    return unit_name(labels)


def _caught_up(settings: CommonSettings, group: str) -> bool:
    admin = kafka_clients.admin(settings)
    consumer = kafka_clients.consumer(settings, group_id=None)
    try:
        committed = admin.list_group_offsets({group: None}).get(group, {})
        tps = [
            TopicPartition(settings.topics.texts, p)
            for p in consumer.partitions_for_topic(settings.topics.texts)
        ]
        ends = consumer.end_offsets(tps)
        return all(tp in committed and committed[tp].offset >= end for tp, end in ends.items())
    finally:
        admin.close()
        consumer.close()


def test_broker_restart_mid_stream(own_cluster, own_procs, demo_models):
    start_pipeline(own_procs, demo_models)
    records = stream(2000)
    streamer = Streamer(records, rate=200)
    streamer.start()
    time.sleep(3)
    kafka_local.kill_node(own_cluster, 1, signal.SIGTERM)
    time.sleep(2)
    kafka_local.start_node(own_cluster, 1)
    streamer.join()
    assert streamer.error is None, streamer.error
    check_exactly_once(records, demo_models)


# Seen in CI: after the second leader kill, all three classifier units' consumers stayed out of
# their groups (kafka-python 3.0.12 never completed the join). The runtime ends such a session
# after 60 s and starts a new one; the check waits long enough for that recovery to show.
@pytest.mark.timeout(1000)
@pytest.mark.parametrize("own_cluster", [3], indirect=True)
def test_partition_leaders_killed_on_three_nodes(own_cluster, own_procs, demo_models):
    # Seen in CI twice: after the second kill some texts' scores from one unit came more than
    # 180 s late, while every unit had rejoined its group. That unit's log showed a KIP-360
    # epoch bump mid-transaction, now made fatal (core/kafka/clients.py); not shown
    # to be the cause. This test is about nothing lost, doubled or mislabelled, so the join
    # waits 420 s for them.
    start_pipeline(own_procs, demo_models, join_timeout="420")
    settings = CommonSettings()
    records = stream(2000)
    streamer = Streamer(records, rate=200)
    streamer.start()
    time.sleep(3)
    bootstrap = settings.connection.bootstrap_servers
    victim = kafka_local.leader_of(bootstrap, settings.topics.texts, 0)
    kafka_local.kill_node(own_cluster, victim)
    time.sleep(3)
    second = kafka_local.leader_of(bootstrap, settings.topics.scores, 0)
    kafka_local.start_node(own_cluster, victim)
    if second not in (victim, -1):
        time.sleep(2)
        kafka_local.kill_node(own_cluster, second)
        time.sleep(3)
        kafka_local.start_node(own_cluster, second)
    streamer.join()
    assert streamer.error is None, streamer.error
    check_exactly_once(records, demo_models, timeout_s=720)
