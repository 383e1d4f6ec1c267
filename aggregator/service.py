"""`triage aggregate`: join scores by message id and publish one labelled result per text.

Kafka at the edges of `JoinTable`. The service consumes the scores topic in a consumer group,
so aggregators scale out by partitions. Each scores partition has its own join table, backed by
the same-numbered partition of a compacted changelog topic that is written in the same
transaction as the results and the input offsets. When a partition is assigned (start, restart
after a crash, or rebalance), its table is rebuilt by replaying its changelog partition with
`read_committed`, so pending joins come back with their timeout clocks and decided messages
keep their markers: nothing is decided twice and nothing waits forever.
"""

from __future__ import annotations

import logging
import threading
import time

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaTimeoutError

from aggregator.join import JoinTable, Outcome, Refused
from aggregator.registry import RegistryView
from schemas.codec import Reason, Rejected, b64, decode_score, encode
from schemas.models import DeadLetter, JoinState, LabelRecord, ScoreRecord
from triage import kafka_clients, metrics
from triage.registry import RegistryReader, now_ms
from triage.settings import AggregatorSettings
from triage.streaming import (
    Output,
    PositionWatch,
    beat,
    commit_batch,
    next_offsets,
    release_stale_offsets,
    run_sessions,
)

log = logging.getLogger(__name__)

# A changelog partition that stops delivering records this long before its end ends the session
# (and so the restore is retried from scratch): deciding with part of the state could double.
RESTORE_STALL_S = 30.0


class Aggregator:
    def __init__(self, settings: AggregatorSettings) -> None:
        self.settings = settings
        self.instance_id = settings.instance_id
        self.group_id = settings.group(settings.group_id)
        self.tables: dict[int, JoinTable] = {}
        self.view = RegistryView()
        # What the current batch decided, counted in the metrics once its transaction commits.
        self._results: list[LabelRecord] = []
        self._dead_reasons: list[str] = []
        self._positions = PositionWatch()
        metrics.start_aggregator_series()

    def run(self, stop: threading.Event) -> None:
        metrics.serve(self.settings)
        kafka_clients.ensure_topics(self.settings)
        run_sessions("aggregator", self._session, stop, stall_limit_s=self.settings.stall_timeout_s)

    # -- one session: clients live and die together ---------------------------------------
    def _session(self, stop: threading.Event) -> None:
        s = self.settings
        registry = RegistryReader(s, self.view)
        registry.catch_up()
        producer = kafka_clients.transactional_producer(
            s, f"{self.group_id}.{self.instance_id}", transaction_timeout_ms=10_000
        )
        consumer = kafka_clients.consumer(
            s,
            group_id=self.group_id,
            max_poll_records=s.max_batch,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
        )
        self._positions = PositionWatch()
        try:
            release_stale_offsets(producer, self.group_id)
            kafka_clients.know_topics(producer, s.labels, s.aggregator_state, s.dead_letters)
            kafka_clients.subscribe(consumer, s.scores, _Rebalance(self))
            log.info("aggregator %s joined group %s", self.instance_id, self.group_id)
            while not stop.is_set():
                self._step(consumer, producer, registry)
        finally:
            kafka_clients.close_quietly(consumer, producer, registry)
            self.tables.clear()

    def _step(self, consumer: KafkaConsumer, producer, registry: RegistryReader) -> None:
        beat()
        revision = self.view.revision
        self._results, self._dead_reasons = [], []
        registry.poll()
        batches = consumer.poll(timeout_ms=self.settings.poll_timeout_ms)
        if not batches:
            self._positions.check(consumer)
        decoded = {tp: [(r, decode_score(r.value)) for r in rs] for tp, rs in batches.items()}
        if self._has_unknown_classifiers(decoded):
            registry.catch_up()  # an announcement may have landed after our last read
        now = now_ms()
        outputs: list[Output] = []
        if self.view.revision != revision:
            log.info("registry changed: re-checking pending joins")
            for table in self.tables.values():
                outputs += self._outputs(table.recheck(now))
        for tp, pairs in decoded.items():
            owned = self.tables.get(tp.partition)
            if owned is None:
                continue  # revoked during this poll; the next owner replays it
            for record, score in pairs:
                outputs += self._consume(owned, tp, record, score, now)
        for table in self.tables.values():
            outputs += self._outputs(table.expire(now))
        outputs += self._changelog()
        offsets = next_offsets(batches)
        if outputs or offsets:
            commit_batch(producer, consumer, outputs, offsets)
            self._count(batches, outputs)
        metrics.PENDING_JOINS.set(sum(len(t.pending) for t in self.tables.values()))

    def _count(self, batches: dict, outputs: list[Output]) -> None:
        metrics.count_batch("aggregator", batches, outputs)
        metrics.count_results(self._results)
        metrics.count_shadow(self._results, self.settings.threshold)
        metrics.count_dead_letters(self._dead_reasons)
        for table in self.tables.values():
            metrics.count_join_events(table.counts)
            table.counts.clear()

    def _consume(
        self, table: JoinTable, tp: TopicPartition, record, score, now: int
    ) -> list[Output]:
        if isinstance(score, Rejected):
            return [self._dead_letter(score.id, score.reason, score.detail, tp, record)]
        if score.scores and not any(self.view.knows(k) for k in score.scores):
            detail = f"no registered classifier among {sorted(score.scores)}"
            return [self._dead_letter(score.id, Reason.UNKNOWN_CLASSIFIER, detail, tp, record)]
        return self._outputs(table.add(score, now))

    def _has_unknown_classifiers(self, decoded: dict) -> bool:
        return any(
            isinstance(score, ScoreRecord) and any(not self.view.knows(k) for k in score.scores)
            for pairs in decoded.values()
            for _, score in pairs
        )

    # -- outputs ---------------------------------------------------------------------------
    def _outputs(self, outcomes: list[Outcome]) -> list[Output]:
        outputs = []
        for outcome in outcomes:
            if isinstance(outcome, Refused):
                outputs.append(self._refusal(outcome))
            else:
                self._results.append(outcome)
                key = outcome.id.encode()
                outputs.append(Output(self.settings.labels, key, encode(outcome)))
        return outputs

    def _refusal(self, refused: Refused) -> Output:
        r = refused.refusal
        self._dead_reasons.append(r.reason)
        letter = DeadLetter(
            id=refused.id,
            reason=r.reason,
            detail=r.detail,
            source_topic=r.source_topic,
            source_partition=r.source_partition,
            source_offset=r.source_offset,
            original_key_b64=r.original_key_b64,
            original_value_b64=r.original_value_b64,
            refused_by="classifier",
            refused_at_ms=now_ms(),
        )
        return Output(self.settings.dead_letters, refused.id.encode(), encode(letter))

    def _dead_letter(self, message_id, reason, detail, tp, record) -> Output:
        self._dead_reasons.append(reason)
        letter = DeadLetter(
            id=message_id,
            reason=reason,
            detail=detail,
            source_topic=tp.topic,
            source_partition=tp.partition,
            source_offset=record.offset,
            original_key_b64=b64(record.key),
            original_value_b64=b64(record.value) or "",
            refused_by=f"aggregator:{self.instance_id}",
            refused_at_ms=now_ms(),
        )
        return Output(self.settings.dead_letters, record.key, encode(letter))

    def _changelog(self) -> list[Output]:
        topic = self.settings.aggregator_state
        outputs = []
        for partition, table in self.tables.items():
            for message_id, state in table.take_changes().items():
                value = None if state is None else encode(state)
                outputs.append(Output(topic, message_id.encode(), value, partition))
        return outputs

    # -- partition ownership -----------------------------------------------------------------
    def assign(self, partitions: list[TopicPartition]) -> None:
        s = self.settings
        for tp in partitions:
            table = JoinTable(
                self.view,
                timeout_ms=int(s.join_timeout_s * 1000),
                horizon_ms=int(s.dedupe_horizon_s * 1000),
                threshold=s.threshold,
            )
            restored = self._restore(table, tp.partition)
            self.tables[tp.partition] = table
            log.info(
                "partition %d assigned: restored %d pending, %d decided from %d changelog records",
                tp.partition,
                len(table.pending),
                len(table.decided),
                restored,
            )

    def revoke(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.tables.pop(tp.partition, None)

    def _restore(self, table: JoinTable, partition: int) -> int:
        tp = TopicPartition(self.settings.aggregator_state, partition)
        reader = kafka_clients.consumer(self.settings, group_id=None)
        try:
            reader.assign([tp])
            reader.seek_to_beginning(tp)
            end = reader.end_offsets([tp])[tp]
            count = 0
            stalled_since = time.monotonic()
            while reader.position(tp) < end:
                batches = reader.poll(timeout_ms=200)
                if batches:
                    beat()  # a long restore is progress, not a stall
                    stalled_since = time.monotonic()
                elif time.monotonic() - stalled_since > RESTORE_STALL_S:
                    raise KafkaTimeoutError(
                        f"restoring {tp.topic}[{partition}]: no records for {RESTORE_STALL_S:.0f}s"
                        f" at offset {reader.position(tp)} of {end}"
                    )
                for records in batches.values():
                    for record in records:
                        table.restore(record.key.decode(), _state(record.value))
                        count += 1
            return count
        finally:
            reader.close()


def _state(value: bytes | None) -> JoinState | None:
    return None if value is None else JoinState.model_validate_json(value)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, aggregator: Aggregator) -> None:
        self.aggregator = aggregator

    def on_partitions_revoked(self, revoked):
        self.aggregator.revoke(list(revoked))

    def on_partitions_assigned(self, assigned):
        self.aggregator.assign(list(assigned))
