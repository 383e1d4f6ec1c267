"""Reading committed results from the `labels` topic, for `triage results` and the demo.

A group-less consumer with `read_committed` reads every partition from the beginning: only
results of committed aggregator transactions are ever seen.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from kafka import TopicPartition

from schemas.codec import Rejected, decode_label
from schemas.models import DeadLetter, LabelRecord
from triage import kafka_clients
from triage.settings import CommonSettings


def read_topic(
    settings: CommonSettings, topic: str, follow: bool = False, idle_timeout_s: float | None = None
) -> Iterator[tuple[bytes | None, bytes | None]]:
    """(key, value) of every committed record; stops at the end unless `follow`."""
    consumer = kafka_clients.consumer(settings, group_id=None, allow_auto_create_topics=False)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            kafka_clients.raise_if_unauthorized(consumer, topic)
            return  # the topic does not exist yet: nothing was ever written there
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        last_record = time.monotonic()
        while True:
            batches = consumer.poll(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    yield record.key, record.value
                    last_record = time.monotonic()
            if not follow and all(consumer.position(tp) >= end for tp, end in ends.items()):
                return
            if idle_timeout_s is not None and time.monotonic() - last_record > idle_timeout_s:
                return
    finally:
        consumer.close()


def read_labels(settings: CommonSettings, follow: bool = False) -> Iterator[LabelRecord]:
    for _, value in read_topic(settings, settings.labels, follow):
        label = decode_label(value)
        if not isinstance(label, Rejected):
            yield label


def read_dead_letters(settings: CommonSettings) -> Iterator[DeadLetter]:
    for _, value in read_topic(settings, settings.dead_letters):
        if value:
            yield DeadLetter.model_validate_json(value)
