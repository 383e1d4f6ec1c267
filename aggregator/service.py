"""`triage aggregate`: join scores by message id and publish one labelled result per text.

A step on the runtime around the pure `JoinTable`. The service consumes the scores topic in a
consumer group, so aggregators scale out by partitions. Each scores partition has its own join
table, the runtime's partition state: backed by the same-numbered partition of a compacted
changelog topic that is written in the same transaction as the results and the input offsets.
When a partition is assigned (start, restart after a crash, or rebalance), the runtime rebuilds
its table by replaying its changelog partition with `read_committed`, so pending joins come back
with their timeout clocks and decided messages keep their markers: nothing is decided twice and
nothing waits forever.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from triage.aggregator import metrics
from triage.aggregator.join import Conflict, JoinOutcome, JoinTable, RefusedByClassifier
from triage.aggregator.retry_window import BLOCK_PREFIX
from triage.aggregator.settings import AggregatorSettings
from triage.core.records import Batch, Output, Record
from triage.core.registry.store import RegistryReader
from triage.core.registry.view import RegistryView
from triage.core.runtime.app import Service, Session
from triage.core.runtime.clock import now_ms as wall_ms
from triage.core.runtime.state import ChangeloggedState
from triage.schemas.codec import Reason, Rejected, decode_score, encode
from triage.schemas.models import (
    DeadLetter,
    DecidedBlock,
    JoinState,
    LabelRecord,
    Refusal,
    ScoreRecord,
)

log = logging.getLogger(__name__)


class Aggregator(Service):
    name = "aggregator"
    # Measured (bench-state, 40,000 texts): kill -9 → first new result 9.2 s, 5 s of it waiting
    # for the killed member's session to expire before the restarted one got its partitions.
    static_member = True

    def __init__(self, settings: AggregatorSettings) -> None:
        self.settings = settings
        self.topics = self.settings.topics  # resolved once: names go with every record
        self.instance_id = settings.instance_id
        self.group_id = settings.group(settings.group_id)
        self.inputs = (settings.topics.scores,)
        self.outputs = (settings.topics.labels, settings.topics.dead_letters)
        self.changelog = settings.topics.aggregator_state
        self.max_batch = settings.max_batch
        self.poll_timeout_ms = settings.poll_timeout_ms
        self.commit_interval_ms = settings.commit_interval_ms
        self.tables: dict[int, JoinTable] = {}
        self.view = RegistryView()
        self.registry: RegistryReader | None = None
        # What the current batch decided, counted in the metrics once its transaction commits.
        self._results: list[LabelRecord] = []
        self._dead_reasons: list[str] = []
        metrics.start_aggregator_series()

    # -- the runtime's hooks ---------------------------------------------------------------
    def open(self, session: Session) -> None:
        self.registry = RegistryReader(session.reader(self.topics.registry), self.view)
        self.registry.catch_up()

    def close(self) -> None:
        self.registry = None  # its reader closed with the session

    def assign(self, partition: int) -> ChangeloggedState[JoinTable]:
        s = self.settings
        table = JoinTable(
            self.view,
            timeout_ms=int(s.join_timeout_s * 1000),
            horizon_ms=int(s.dedupe_horizon_s * 1000),
            threshold=s.threshold,
            retry_window_ms=int(s.retry_window_s * 1000),
        )
        self.tables[partition] = table
        return ChangeloggedState(table, _restore, _take_changes, _describe)

    def revoke(self, partition: int) -> None:
        self.tables.pop(partition, None)

    def process(self, batch: Batch, now_ms: int) -> list[Output]:
        """Join a batch of score records; decide what completed, timed out or was refused."""
        revision = self.view.revision
        self._results, self._dead_reasons = [], []
        if self.registry is not None:
            self.registry.poll()
        decoded = {tp: [(r, decode_score(r.value)) for r in rs] for tp, rs in batch.items()}
        if self.registry is not None and self._has_unknown_classifiers(decoded):
            self.registry.catch_up()  # an announcement may have landed after our last read
        outputs: list[Output] = []
        if self.view.revision != revision:
            log.info("registry changed: re-checking pending joins")
            for table in self.tables.values():
                outputs += self._outputs(table.recheck(now_ms))
        for tp, pairs in decoded.items():
            table = self.tables[tp.partition]
            for record, score in pairs:
                outputs += self._consume(table, record, score, now_ms)
        for table in self.tables.values():
            outputs += self._outputs(table.expire(now_ms))
        return outputs

    def committed(self) -> None:
        metrics.count_results(self._results)
        metrics.count_shadow(self._results, self.settings.threshold)
        metrics.count_dead_letters(self._dead_reasons)
        for table in self.tables.values():
            metrics.count_join_events(table.counts)
            table.counts.clear()
        tables = self.tables.values()
        metrics.PENDING_JOINS.set(sum(len(t.pending) for t in tables))
        metrics.DECIDED_KEPT.labels("awaiting_late_scores").set(sum(len(t.decided) for t in tables))
        metrics.DECIDED_KEPT.labels("retry_window").set(sum(len(t.done) for t in tables))
        self._results, self._dead_reasons = [], []

    # -- joining ---------------------------------------------------------------------------
    def _consume(
        self, table: JoinTable, record: Record, score: ScoreRecord | Rejected, now_ms: int
    ) -> list[Output]:
        if isinstance(score, Rejected):
            refusal = Refusal.of_record(record, score.reason, score.detail)
            return [self._dead_letter(score.id, refusal, record.key)]
        if score.scores and not any(self.view.knows(k) for k in score.scores):
            detail = f"no registered classifier among {sorted(score.scores)}"
            refusal = Refusal.of_record(record, Reason.UNKNOWN_CLASSIFIER, detail)
            return [self._dead_letter(score.id, refusal, record.key)]
        return self._outputs(table.add(score, now_ms, record.timestamp), record)

    def _has_unknown_classifiers(self, decoded: dict) -> bool:
        return any(
            isinstance(score, ScoreRecord) and any(not self.view.knows(k) for k in score.scores)
            for pairs in decoded.values()
            for _, score in pairs
        )

    # -- outputs ---------------------------------------------------------------------------
    def _outputs(
        self, outcomes: Sequence[JoinOutcome], record: Record | None = None
    ) -> list[Output]:
        outputs = []
        for outcome in outcomes:
            if isinstance(outcome, Conflict):  # only ever the outcome of a consumed record
                assert record is not None
                refusal = Refusal.of_record(record, outcome.reason, outcome.detail)
                outputs.append(self._dead_letter(outcome.id, refusal, record.key))
            elif isinstance(outcome, RefusedByClassifier):
                key = outcome.id.encode()
                outputs.append(self._dead_letter(outcome.id, outcome.refusal, key, "classifier"))
            else:
                self._results.append(outcome)
                key = outcome.id.encode()
                outputs.append(Output(self.topics.labels, key, encode(outcome)))
        return outputs

    def _dead_letter(
        self,
        message_id: str | None,
        refusal: Refusal,
        key: bytes | None,
        refused_by: str | None = None,
    ) -> Output:
        self._dead_reasons.append(refusal.reason)
        by = refused_by or f"aggregator:{self.instance_id}"
        letter = DeadLetter.from_refusal(refusal, message_id, by, wall_ms())
        return Output(self.topics.dead_letters, key, encode(letter))


def _restore(table: JoinTable, key: bytes, value: bytes | None) -> None:
    if key.startswith(BLOCK_PREFIX):
        block = None if value is None else DecidedBlock.model_validate_json(value)
        table.restore_block(key, block)
        return
    state = None if value is None else JoinState.model_validate_json(value)
    table.restore(key.decode(), state)


def _take_changes(table: JoinTable) -> dict[bytes, bytes | None]:
    return {
        (key if isinstance(key, bytes) else key.encode()): None if new is None else encode(new)
        for key, new in table.take_changes().items()
    }


def _describe(table: JoinTable) -> str:
    return (
        f"{len(table.pending)} pending, {len(table.decided)} awaiting late scores,"
        f" {len(table.done)} in the retry window"
    )
