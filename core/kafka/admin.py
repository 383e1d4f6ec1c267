"""Questions for the cluster's administration API, answered as plain data.

Consumer groups, their committed offsets and the partitions' end offsets, for the lag exporter
and for the classifier's check that a consumer group is free.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import OffsetSpec
from kafka.protocol.consumer.offsets import IsolationLevel

from triage.core.kafka.clients import admin, close_quietly, consumer
from triage.core.records import Partition
from triage.core.settings import CommonSettings

PROBE_TIMEOUT_S = 3.0


def group_has_members(settings: CommonSettings, group_id: str) -> bool:
    """Whether any consumer is currently a member of `group_id`."""
    client = admin(settings)
    try:
        return bool(client.describe_groups([group_id]).get(group_id, {}).get("members"))
    finally:
        client.close()


def group_assignment(settings: CommonSettings, group_id: str) -> dict[str, list[int]]:
    """Member (its static instance id, else member id) → the partitions it holds now."""
    client = admin(settings)
    try:
        group = client.describe_groups([group_id]).get(group_id, {})
    finally:
        client.close()
    held = {}
    for member in group.get("members") or []:
        assignment = member.get("member_assignment") or {}
        parts = assignment.get("assigned_partitions", []) if isinstance(assignment, dict) else []
        name = member.get("group_instance_id") or member["member_id"]
        held[name] = sorted(p for topic in parts for p in topic["partitions"])
    return held


def end_offsets(settings: CommonSettings, topic: str) -> dict[int, int]:
    """Partition → end offset of `topic` (how many offsets were ever written to it)."""
    client = consumer(settings, group_id=None)
    try:
        parts = [TopicPartition(topic, p) for p in client.partitions_for_topic(topic) or ()]
        return {tp.partition: offset for tp, offset in client.end_offsets(parts).items()}
    finally:
        close_quietly(client)


@dataclass(frozen=True, slots=True)
class GroupLag:
    group: str
    tp: Partition
    committed: int
    end: int
    age_s: float

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


class GroupLagReader:
    """Committed offsets, end offsets and the age of the oldest unconsumed record of every
    triage consumer group; `close` when done. Kafka errors propagate (the caller retries)."""

    def __init__(self, settings: CommonSettings) -> None:
        self.prefix = settings.topic_prefix
        self._admin = admin(settings)
        self._consumer = consumer(
            settings, group_id=None, max_partition_fetch_bytes=64 * 1024, fetch_max_wait_ms=50
        )

    def measure(self) -> list[GroupLag]:
        return [
            GroupLag(row.group, Partition(*row.tp), row.committed, row.end, row.age_s)
            for row in measure(self._admin, self._consumer, self.prefix)
        ]

    def close(self) -> None:
        close_quietly(self._admin, self._consumer)


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
