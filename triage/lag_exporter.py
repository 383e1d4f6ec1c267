"""`triage lag-exporter`: consumer-group lag of every triage group, as Prometheus metrics.

Every `interval_s` it lists the groups whose name starts with the topic prefix and contains
`triage-`, reads their committed offsets (admin API) and the partitions' end offsets, and
exports them under kafka_exporter's names, plus `kafka_consumergroup_lag_seconds`: the age of
the oldest record a group has not consumed, read at the committed offset by a consumer without
a group (0 when there is nothing to consume). Lag in records is `end - committed`, as
kafka_exporter counts it: after a transaction the commit marker keeps it at 1 per idle
partition, which is why alerts use the lag in seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import KafkaError
from kafka.protocol.consumer.offsets import IsolationLevel
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from triage import kafka_clients, metrics
from triage.settings import CommonSettings

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True)
class GroupLag:
    group: str
    tp: TopicPartition
    committed: int
    end: int
    age_s: float

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


class LagCollector:
    """Yields the last snapshot, so a scrape never waits for Kafka."""

    def __init__(self) -> None:
        self.snapshot: list[GroupLag] = []

    def collect(self):
        labels = ["consumergroup", "topic", "partition"]
        lag = GaugeMetricFamily(
            "kafka_consumergroup_lag", "Records not yet consumed", labels=labels
        )
        seconds = GaugeMetricFamily(
            "kafka_consumergroup_lag_seconds", "Age of the oldest unconsumed record", labels=labels
        )
        current = GaugeMetricFamily(
            "kafka_consumergroup_current_offset", "Committed offset", labels=labels
        )
        end = GaugeMetricFamily(
            "kafka_topic_partition_current_offset",
            "End offset of a partition",
            labels=["topic", "partition"],
        )
        ends = {}
        for row in self.snapshot:
            key = [row.group, row.tp.topic, str(row.tp.partition)]
            lag.add_metric(key, row.lag)
            seconds.add_metric(key, row.age_s)
            current.add_metric(key, row.committed)
            ends[row.tp] = row.end
        for tp, offset in ends.items():
            end.add_metric([tp.topic, str(tp.partition)], offset)
        yield from (lag, seconds, current, end)


def triage_groups(admin: KafkaAdminClient, prefix: str) -> list[str]:
    names = [g["group_id"] for g in admin.list_groups()]
    return sorted(n for n in names if n.startswith(prefix) and "triage-" in n[len(prefix) :])


def measure(admin: KafkaAdminClient, consumer: KafkaConsumer, prefix: str) -> list[GroupLag]:
    groups = triage_groups(admin, prefix)
    if not groups:
        return []
    committed = admin.list_group_offsets({group: None for group in groups})
    topics = set(admin.list_topics())  # a group may keep offsets of a deleted topic
    pairs = [
        (g, tp, meta.offset)
        for g, offsets in committed.items()
        for tp, meta in offsets.items()
        if meta.offset >= 0 and tp.topic in topics
    ]
    if not pairs:
        return []
    latest = {tp: OffsetSpec.LATEST for _, tp, _ in pairs}
    listed = admin.list_partition_offsets(latest, isolation_level=IsolationLevel.READ_COMMITTED)
    ends = {tp: listed[tp].offset for tp in latest}
    wanted = {(tp, offset) for _, tp, offset in pairs if offset < ends[tp]}
    timestamps = record_timestamps(consumer, wanted)
    now_ms = time.time() * 1000
    return [
        GroupLag(
            g,
            tp,
            offset,
            ends[tp],
            max(0.0, (now_ms - timestamps[tp, offset]) / 1000)
            if (tp, offset) in timestamps
            else 0.0,
        )
        for g, tp, offset in pairs
    ]


def record_timestamps(
    consumer: KafkaConsumer, wanted: set[tuple[TopicPartition, int]]
) -> dict[tuple[TopicPartition, int], int]:
    """Timestamp of the first readable record at or after each (partition, offset)."""
    found: dict[tuple[TopicPartition, int], int] = {}
    todo = sorted(wanted, key=lambda pair: pair[1])
    while todo:
        # One seek per partition at a time; partitions probe in parallel.
        round_: dict[TopicPartition, int] = {}
        for tp, offset in todo:
            round_.setdefault(tp, offset)
        consumer.assign(list(round_))
        for tp, offset in round_.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        left = set(round_)
        while left and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200).items():
                first = next((r for r in records if r.offset >= round_.get(tp, 0)), None)
                if tp in left and first is not None:
                    found[tp, round_[tp]] = first.timestamp
                    left.discard(tp)
                    consumer.pause(tp)
        consumer.resume(*round_)
        todo = [(tp, offset) for tp, offset in todo if round_.get(tp) != offset]
    return found


def run(settings: CommonSettings, interval_s: float, stop: threading.Event) -> None:
    collector = LagCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    metrics.serve(settings, registry)
    admin = consumer = None
    while not stop.is_set():
        try:
            if admin is None:
                admin = kafka_clients.admin(settings)
                consumer = kafka_clients.consumer(
                    settings,
                    group_id=None,
                    max_partition_fetch_bytes=64 * 1024,
                    fetch_max_wait_ms=50,
                )
            collector.snapshot = measure(admin, consumer, settings.topic_prefix)
        except KafkaError as exc:
            log.warning("cannot read consumer-group lag, retrying: %r", exc)
            collector.snapshot = []
            _close(admin, consumer)
            admin = consumer = None
        stop.wait(interval_s)
    _close(admin, consumer)


def _close(*clients) -> None:
    for client in clients:
        if client is not None:
            client.close()
