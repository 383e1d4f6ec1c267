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

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from triage.core.kafka import KafkaError
from triage.core.kafka.admin import GroupLag, GroupLagReader
from triage.core.runtime import metrics
from triage.core.settings import CommonSettings

log = logging.getLogger(__name__)


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


def run(settings: CommonSettings, interval_s: float, stop: threading.Event) -> None:
    collector = LagCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    metrics.serve(settings, registry)
    reader: GroupLagReader | None = None
    while not stop.is_set():
        try:
            reader = reader or GroupLagReader(settings)
            collector.snapshot = reader.measure()
        except KafkaError as exc:
            log.warning("cannot read consumer-group lag, retrying: %r", exc)
            collector.snapshot = []
            if reader is not None:
                reader.close()
            reader = None
        stop.wait(interval_s)
    if reader is not None:
        reader.close()
