"""`triage monitor`: join results with corrections by id, and keep live quality per class version.

A step on the runtime around the pure `CorrectionJoin`, consuming the labels and corrections
topics in one consumer group. Both are keyed by message id and created with the same partition
count, and the group's range assignor hands partition p of both to the same member, so a result
and its correction meet in partition p's join. Each partition's join is the runtime's partition
state, backed by the same partition of a compacted changelog written in the batch's
transaction with the dead letters and the quality summaries: after a kill -9 the monitor
resumes from its last committed batch, and nothing is counted twice or lost. The summaries
(`QualityCounts` per class version and partition) also go to the compacted quality topic,
which `triage quality` reads from any machine.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from triage.core.model.quality import NONE_LABEL, Reference, add, in_window, owner_team
from triage.core.records import Batch, Output, Record
from triage.core.registry.store import RegistryReader
from triage.core.registry.view import RegistryView
from triage.core.runtime.app import Service, Session
from triage.core.runtime.clock import now_ms as wall_ms
from triage.core.runtime.metrics import count_dead_letters
from triage.core.runtime.state import ChangeloggedState
from triage.monitor import metrics
from triage.monitor.join import (
    COUNTS,
    CorrectionJoin,
    CorrectionOutcome,
    Counted,
    Held,
    RefusedCorrection,
)
from triage.monitor.settings import MonitorSettings
from triage.schemas.codec import (
    Reason,
    Rejected,
    b64,
    decode_correction,
    decode_key,
    decode_label,
    encode,
)
from triage.schemas.models import DeadLetter, QualityCounts, Refusal
from triage.schemas.source import UNKNOWN_SOURCE, SourceRef

log = logging.getLogger(__name__)

# The quality gauges are recomputed from every class version's counts at most this often, and
# only after counts changed: freezing 77 classes' counts on every idle poll (10 a second) would
# cost a good part of a core.
GAUGES_EVERY_MS = 1000


class Monitor(Service):
    name = "monitor"
    static_member = True  # a restart under the same instance id gets its partitions at once

    def __init__(
        self, settings: MonitorSettings, references: Mapping[tuple[str, str], Reference]
    ) -> None:
        self.settings = settings
        self.topics = self.settings.topics  # resolved once: names go with every record
        self.references = dict(references)
        self.instance_id = settings.instance_id
        self.group_id = settings.group(settings.group_id)
        self.inputs = (settings.topics.labels, settings.topics.corrections)
        self.outputs = (settings.topics.dead_letters, settings.topics.quality)
        self.changelog = settings.topics.monitor_state
        self.max_batch = settings.max_batch
        self.poll_timeout_ms = settings.poll_timeout_ms
        self.commit_interval_ms = settings.commit_interval_ms
        # Nothing waits for the monitor: a fetch is answered once a second's results are there
        # (or the fetch wait is over) instead of once a result, as the answer's path needs.
        # At 50 texts/s that is one fetch a second for the broker to serve instead of 50.
        self.consumer_overrides = {"fetch_min_bytes": 1 << 20}
        self.joins: dict[int, CorrectionJoin] = {}
        self._states: dict[int, ChangeloggedState[CorrectionJoin]] = {}
        self.view = RegistryView()
        self.registry: RegistryReader | None = None
        self._outcomes: list[str] = []
        self._dead_reasons: list[str] = []
        self._gauges_stale, self._gauges_ms = True, 0
        self._exported: set[tuple[str, str]] = set()
        metrics.start_monitor_series(self.references)

    # -- the runtime's hooks ---------------------------------------------------------------
    def open(self, session: Session) -> None:
        self.registry = RegistryReader(session.reader(self.topics.registry), self.view)
        self.registry.catch_up()

    def close(self) -> None:
        self.registry = None

    def assign(self, partition: int) -> ChangeloggedState[CorrectionJoin]:
        self._gauges_stale = True  # its restored counts, once restored
        s = self.settings
        join = CorrectionJoin(
            partition,
            horizon_ms=int(s.correction_horizon_s * 1000),
            wait_ms=int(s.correction_wait_s * 1000),
            window_ms=int(s.quality_window_s * 1000),
        )
        self.joins[partition] = join
        state = ChangeloggedState(
            join, CorrectionJoin.restore, CorrectionJoin.take_changes, _describe
        )
        self._states[partition] = state
        return state

    def revoke(self, partition: int) -> None:
        self._gauges_stale = True  # its counts are another instance's to export now
        self.joins.pop(partition, None)
        self._states.pop(partition, None)

    def process(self, batch: Batch, now_ms: int) -> list[Output]:
        self._outcomes, self._dead_reasons = [], []
        if self.registry is not None:
            self.registry.poll()
        outputs: list[Output] = []
        for tp, records in batch.items():
            join = self.joins[tp.partition]
            for record in records:
                if tp.topic == self.topics.labels:
                    outputs += self._result(join, record, now_ms)
                else:
                    outputs += self._correction(join, record, now_ms)
        for partition, join in self.joins.items():
            outputs += self._outputs(join.expire(now_ms), None)
            outputs += self._take_changes(partition)
        return outputs

    def committed(self) -> None:
        metrics.count_corrections(self._outcomes)
        count_dead_letters(self._dead_reasons)
        self._outcomes, self._dead_reasons = [], []
        now = wall_ms()
        if self._gauges_stale and now - self._gauges_ms >= GAUGES_EVERY_MS:
            self._set_gauges(now)
            self._gauges_stale, self._gauges_ms = False, now

    def _set_gauges(self, now: int) -> None:
        by_version: dict[tuple[str, str], list[QualityCounts]] = {}
        for join in self.joins.values():
            for key, counts in join.book.counts.items():
                by_version.setdefault(key, []).append(counts)
        window_ms = int(self.settings.quality_window_s * 1000)
        for (label, version), parts in by_version.items():
            ref = self.references.get((label, version))
            owner = owner_team(self.view.announcement(label, version), ref)
            total = add(c.total for c in parts)
            recent = add(in_window(c, now, window_ms) for c in parts)
            metrics.set_quality(label, version, "version", total, ref, owner)
            metrics.set_quality(label, version, "window", recent, ref, owner)
        # Counts of partitions another instance owns now: their series go, or sums would
        # count them twice.
        for label, version in self._exported - by_version.keys():
            metrics.remove_quality(label, version)
        self._exported = set(by_version)

    # -- input -----------------------------------------------------------------------------
    def _result(self, join: CorrectionJoin, record: Record, now_ms: int) -> list[Output]:
        result = decode_label(record.value)
        if isinstance(result, Rejected):  # not ours to refuse: the aggregator wrote it
            log.warning("monitor: skipping an unreadable result: %s", result.detail)
            return []
        return self._outputs(join.add_result(result, now_ms), record)

    def _correction(self, join: CorrectionJoin, record: Record, now_ms: int) -> list[Output]:
        correction = decode_correction(record.value)
        key_id = decode_key(record.key)
        if isinstance(correction, Rejected):
            return [self._refuse(record, key_id, correction.reason, correction.detail)]
        if key_id != correction.id:
            detail = f"key {key_id!r} is not the message id {correction.id!r}: key by the id"
            return [self._refuse(record, correction.id, Reason.INVALID_ID, detail)]
        label = correction.label
        if label is not None and (label == NONE_LABEL or not self._known(label)):
            detail = f"{label!r} is not a class of the registry; null means none of our classes"
            return [self._refuse(record, correction.id, Reason.UNKNOWN_LABEL, detail)]
        source = SourceRef.of(record).format()
        return self._outputs(join.add_correction(correction, source, now_ms), record)

    def _known(self, label: str) -> bool:
        if not self.view.knows(label) and self.registry is not None:
            self.registry.catch_up()  # a class announced a moment ago
        return self.view.knows(label)

    # -- outputs ---------------------------------------------------------------------------
    def _outputs(self, outcomes: list[CorrectionOutcome], record: Record | None) -> list[Output]:
        outputs = []
        for outcome in outcomes:
            if isinstance(outcome, Counted):
                self._outcomes.append("counted")
            elif isinstance(outcome, Held):
                self._outcomes.append("held")
            elif isinstance(outcome, RefusedCorrection):
                outputs.append(self._refused(outcome, record))
        return outputs

    def _refused(self, refused: RefusedCorrection, record: Record | None) -> Output:
        if refused.held is None:
            assert record is not None  # refused at once: the record is at hand
            return self._refuse(record, refused.id, refused.reason, refused.detail)
        held = refused.held
        source = SourceRef.parse(held.source) if held.source else UNKNOWN_SOURCE
        refusal = Refusal(
            reason=refused.reason,
            detail=refused.detail,
            source_topic=source.topic,
            source_partition=source.partition,
            source_offset=source.offset,
            original_key_b64=b64(held.id.encode()),
            # the held correction as decoded (what was read, re-encoded)
            original_value_b64=b64(encode(held.correction)) or "" if held.correction else "",
        )
        return self._dead_letter(refused.id, refusal)

    def _refuse(self, record: Record, message_id: str | None, reason: str, detail: str) -> Output:
        return self._dead_letter(message_id, Refusal.of_record(record, reason, detail))

    def _dead_letter(self, message_id: str | None, refusal: Refusal) -> Output:
        self._dead_reasons.append(refusal.reason)
        outcome = refusal.reason if refusal.reason in metrics.OUTCOMES else "invalid"
        self._outcomes.append(outcome)
        letter = DeadLetter.from_refusal(
            refusal, message_id, f"monitor:{self.instance_id}", wall_ms()
        )
        key = None if message_id is None else message_id.encode()
        return Output(self.topics.dead_letters, key, encode(letter))

    def _take_changes(self, partition: int) -> list[Output]:
        """The batch's changes go to the changelog (the runtime asks the partition state for
        them next); its changed summaries also to the quality topic, keyed per partition."""
        changes = self._states[partition].take_changes()
        self._gauges_stale = self._gauges_stale or any(k.startswith(COUNTS) for k in changes)
        return [
            Output(self.topics.quality, key[len(COUNTS) :] + f"/{partition}".encode(), value)
            for key, value in changes.items()
            if key.startswith(COUNTS)
        ]


def _describe(join: CorrectionJoin) -> str:
    return (
        f"{len(join.results)} results kept for corrections, {len(join.waiting)} corrections"
        f" waiting, {len(join.book.counts)} class versions counted"
    )
