"""Reading and writing the classifier registry, a compacted topic keyed by class name.

Classifiers announce themselves (class, version, mode, since when they serve) and repeat the
announcement as a heartbeat; the aggregator reads the whole topic, from the start, with a
group-less consumer so every aggregator instance sees every entry.
"""

from __future__ import annotations

import logging
import time

from kafka import KafkaConsumer, TopicPartition

from aggregator.registry import RegistryView
from schemas.codec import Rejected, decode_announcement
from triage import kafka_clients
from triage.settings import CommonSettings

log = logging.getLogger(__name__)


class RegistryReader:
    """Follows the registry topic and applies every record to a `RegistryView`."""

    def __init__(self, settings: CommonSettings, view: RegistryView | None = None) -> None:
        self.view = view or RegistryView()
        self._consumer: KafkaConsumer = kafka_clients.consumer(settings, group_id=None)
        partitions = self._consumer.partitions_for_topic(settings.registry) or {0}
        self._partitions = [TopicPartition(settings.registry, p) for p in sorted(partitions)]
        self._consumer.assign(self._partitions)
        self._consumer.seek_to_beginning(*self._partitions)

    def poll(self, timeout_ms: int = 0) -> int:
        """Apply what arrived since the last call; returns the number of records read."""
        batches = self._consumer.poll(timeout_ms=timeout_ms)
        count = 0
        for records in batches.values():
            for record in records:
                self._apply(record.key, record.value)
                count += 1
        return count

    def catch_up(self, timeout_s: float = 10.0) -> None:
        """Read until every partition's end as of now, so the view is at least that fresh."""
        ends = self._consumer.end_offsets(self._partitions)
        deadline = time.monotonic() + timeout_s
        while any(self._consumer.position(tp) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                log.warning("registry catch-up timed out after %.0fs", timeout_s)
                return
            self.poll(timeout_ms=100)

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        label = key.decode("utf-8", "replace")
        if value is None:
            self.view.apply(label, None)
            log.info("registry: %s retired", label)
            return
        announcement = decode_announcement(value)
        if isinstance(announcement, Rejected):
            log.warning("registry: ignoring bad entry for %s: %s", label, announcement.detail)
            return
        self.view.apply(label, announcement)

    def close(self) -> None:
        self._consumer.close()


def wait_for_classifiers(settings: CommonSettings, labels: set[str], timeout_s: float) -> None:
    """Block until every class in `labels` has announced itself; TimeoutError names the absent."""
    reader = RegistryReader(settings)
    deadline = time.monotonic() + timeout_s
    try:
        while not labels <= reader.view.entries().keys():
            if time.monotonic() > deadline:
                absent = sorted(labels - reader.view.entries().keys())
                raise TimeoutError(f"classifiers not announced after {timeout_s:.0f}s: {absent}")
            reader.poll(timeout_ms=300)
    finally:
        reader.close()
