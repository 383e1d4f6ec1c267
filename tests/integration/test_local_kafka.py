"""Integration tests of triage.local.cluster: real Kafka 4.3.1 clusters on loopback.

Each test starts its own cluster in a temporary state dir (the jar cache is shared through
``default_libs_dir()``), talks to it with kafka-python and stops it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from triage.local import cluster as kafka_local
from triage.local.cluster import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """A state dir whose cluster is stopped even when the test fails."""
    path = tmp_path / "kafka"
    yield path
    kafka_local.stop(path, timeout_s=10)


def start_cluster(state_dir: Path, nodes: int) -> LocalCluster:
    return kafka_local.start(state_dir, libs_dir=kafka_local.default_libs_dir(), nodes=nodes)


def create_topic(bootstrap: str, name: str, partitions: int, replication: int) -> None:
    with KafkaAdminClient(bootstrap_servers=bootstrap) as admin:
        admin.create_topics([NewTopic(name, partitions, replication)])
        admin.wait_for_topics([name], timeout_ms=30_000)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.5)


def isr_of(bootstrap: str, topic: str, partition: int) -> set[int]:
    with KafkaAdminClient(bootstrap_servers=bootstrap) as admin:
        (info,) = admin.describe_topics([topic])
    # A broker that has not caught up with the controller yet answers with no partitions
    # (seen once in CI right after create_topics): that is "not yet", not an error.
    parts = [p for p in info["partitions"] if p["partition_index"] == partition]
    return set(parts[0]["isr_nodes"]) if parts else set()


def test_single_node_cluster_round_trip(state_dir: Path) -> None:
    cluster = start_cluster(state_dir, nodes=1)

    (node,) = cluster.nodes
    assert node.alive and node.node_id == 1
    assert cluster.bootstrap == f"127.0.0.1:{node.port}"
    assert kafka_local.status(state_dir) == cluster
    assert kafka_local.read_bootstrap(state_dir) == cluster.bootstrap
    assert kafka_local.start(state_dir) == cluster, "a second start returns the running cluster"

    create_topic(cluster.bootstrap, "roundtrip", partitions=1, replication=1)
    with KafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all") as producer:
        producer.send("roundtrip", key=b"k", value=b"hello").get(timeout=30)
    consumer = KafkaConsumer(
        bootstrap_servers=cluster.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=30_000,
    )
    try:
        consumer.assign([TopicPartition("roundtrip", 0)])
        consumer.seek_to_beginning()
        record = next(iter(consumer))
    finally:
        consumer.close()
    assert (record.key, record.value) == (b"k", b"hello")

    assert kafka_local.stop(state_dir) is True
    assert kafka_local.status(state_dir) is None
    assert kafka_local.read_bootstrap(state_dir) is None
    assert not node.log_dir.exists(), "stop deletes the data"
    assert kafka_local.stop(state_dir) is False


@pytest.mark.fault
def test_three_node_cluster_survives_leader_kill(state_dir: Path) -> None:
    cluster = start_cluster(state_dir, nodes=3)
    assert [n.node_id for n in cluster.nodes] == [1, 2, 3]
    assert all(n.alive for n in cluster.nodes)
    create_topic(cluster.bootstrap, "durable", partitions=1, replication=3)
    wait_for(lambda: isr_of(cluster.bootstrap, "durable", 0) == {1, 2, 3}, 60, "a full ISR")

    old_leader = kafka_local.leader_of(cluster.bootstrap, "durable", 0)
    kafka_local.kill_node(state_dir, old_leader)
    running = kafka_local.status(state_dir)
    assert running is not None
    assert {n.node_id: n.alive for n in running.nodes}[old_leader] is False

    # acks=all with min.insync.replicas=2: two live replicas must still accept the write.
    with KafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all") as producer:
        producer.send("durable", value=b"after the crash", partition=0).get(timeout=120)
    new_leader = kafka_local.leader_of(cluster.bootstrap, "durable", 0)
    assert new_leader not in (old_leader, -1)

    kafka_local.start_node(state_dir, old_leader)
    restarted = kafka_local.status(state_dir)
    assert restarted is not None and all(n.alive for n in restarted.nodes)
    assert restarted.bootstrap == cluster.bootstrap, "a restarted node keeps its ports"
    wait_for(lambda: old_leader in isr_of(cluster.bootstrap, "durable", 0), 90, "the ISR rejoin")

    assert kafka_local.stop(state_dir) is True
    assert kafka_local.status(state_dir) is None
