"""`triage classifier`: consume texts, score them, publish scores, exactly once.

One process hosts one or more classifiers as one unit: one consumer group, one transaction
per polled batch, one score record per text carrying every hosted class and its version. A
unit of a single class uses the group `triage-classifier-<class>`, so every class reads every
text on its own; started with `--shadow` it uses `triage-classifier-<class>-v<version>`, so a
new version reads every text beside the current one, and with `--backfill`, that name plus
`-backfill`, from the earliest retained text. The process does not decide whether its scores
vote: the registry's class records do (`aggregator/registry.py`). At start it announces every
hosted version (`<label>@<version>`) and, when started in voting mode for a class that has no
class record or another voter, and not merely restarted, makes its version the voter from
`switch_delay_s` on (a new class, or a roll without shadow). A version demoted by a promote
keeps running as a shadow across restarts until it is stopped. Bad input is not an exception
here: a text that cannot be decoded becomes a score record with a `refusal`, which the
aggregator turns into exactly one dead-letter record (every classifier reads the same bad
record; only the first refusal counts).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time

from kafka import KafkaConsumer, KafkaProducer

from aggregator.registry import RegistryView
from consumers.artifacts import LoadedModel
from consumers.scoring import Scorer
from schemas.codec import Rejected, b64, decode_text, encode
from schemas.models import Announcement, ClassifierMode, Refusal, ScoreRecord
from triage import kafka_clients, metrics
from triage.registry import (
    announcement_key,
    claim_votes,
    class_output,
    now_ms,
    read_registry,
    voter_records,
    when,
)
from triage.settings import ClassifierSettings, ConfigError
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


def unit_name(labels: list[str]) -> str:
    if len(labels) == 1:
        return labels[0]
    digest = hashlib.sha1(",".join(sorted(labels)).encode()).hexdigest()[:10]
    return f"colocated-{digest}"


def default_group(models: list[LoadedModel], mode: ClassifierMode, backfill: bool) -> str:
    """`triage-classifier-<unit>`; a shadow unit's name includes its versions, so it never
    shares a group (and its texts) with the version that votes."""
    if mode is ClassifierMode.VOTING:
        return f"triage-classifier-{unit_name([m.label for m in models])}"
    if len(models) == 1:
        name = f"{models[0].label}-v{models[0].version}"
    else:
        name = unit_name([f"{m.label}@{m.version}" for m in models])
    return f"triage-classifier-{name}" + ("-backfill" if backfill else "")


class ClassifierUnit:
    def __init__(
        self,
        settings: ClassifierSettings,
        models: list[LoadedModel],
        mode: ClassifierMode = ClassifierMode.VOTING,
        group: str | None = None,
        backfill: bool = False,
    ) -> None:
        self.settings = settings
        self.scorer = Scorer(models)
        self.models = models
        self.mode = ClassifierMode.SHADOW if backfill else mode
        self.group_id = settings.group(group or default_group(models, self.mode, backfill))
        self.versions = {m.label: m.version for m in models}
        self.since: dict[str, int] = {}
        self._last_heartbeat = 0.0
        self._positions = PositionWatch()
        for model in models:
            metrics.MODEL_INFO.labels(model.label, model.version).set(1)

    @property
    def labels(self) -> list[str]:
        return [m.label for m in self.models]

    def run(self, stop: threading.Event) -> None:
        metrics.serve(self.settings)
        kafka_clients.ensure_topics(self.settings)
        run_sessions(
            f"classifier {self.group_id}",
            self._session,
            stop,
            stall_limit_s=self.settings.stall_timeout_s,
        )

    def _session(self, stop: threading.Event) -> None:
        s = self.settings
        producer = kafka_clients.transactional_producer(
            s,
            f"{self.group_id}.{s.instance_id}",
            transaction_timeout_ms=10_000,
            linger_ms=2,
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
            kafka_clients.know_topics(producer, s.scores)
            self._announce(producer)
            kafka_clients.subscribe(consumer, s.texts)
            log.info(
                "classifier %s (%s) consuming %s", self.group_id, ", ".join(self.labels), s.texts
            )
            while not stop.is_set():
                self._step(consumer, producer)
        finally:
            kafka_clients.close_quietly(consumer, producer)

    def _step(self, consumer: KafkaConsumer, producer: KafkaProducer) -> None:
        beat()
        batches = consumer.poll(timeout_ms=self.settings.poll_timeout_ms)
        if not batches:
            self._positions.check(consumer)
        outputs = [out for tp, records in batches.items() for out in self._score(tp, records)]
        if time.monotonic() - self._last_heartbeat > self.settings.heartbeat_s:
            outputs += self._announcements()
        offsets = next_offsets(batches)
        if outputs or offsets:
            commit_batch(producer, consumer, outputs, offsets)
            metrics.count_batch("classifier", batches, outputs)

    # -- scoring -----------------------------------------------------------------------------
    def _score(self, tp, records) -> list[Output]:
        limits = self.settings.limits
        decoded = [(r, decode_text(r.key, r.value, limits)) for r in records]
        good = [(r, d) for r, d in decoded if not isinstance(d, Rejected)]
        with metrics.SCORING_SECONDS.time():
            probabilities = self.scorer.score([d.text for _, d in good])
        columns = {label: p.tolist() for label, p in probabilities.items()}
        outputs = [
            self._score_output(text.id, record, {k: col[i] for k, col in columns.items()})
            for i, (record, text) in enumerate(good)
        ]
        for record, rejected in decoded:
            if isinstance(rejected, Rejected):
                outputs.append(self._refusal_output(tp, record, rejected))
        return outputs

    def _score_output(self, message_id: str, record, scores: dict[str, float]) -> Output:
        # Our own freshly computed values: constructed without re-validation (hot path).
        score = ScoreRecord.model_construct(
            schema_version=1,
            id=message_id,
            text_timestamp_ms=record.timestamp,
            scores=scores,
            versions=self.versions,
            refusal=None,
            instance=self.settings.instance_id,
        )
        return Output(self.settings.scores, message_id.encode(), encode(score))

    def _refusal_output(self, tp, record, rejected: Rejected) -> Output:
        # Records without a usable id get one from their coordinates, the same in every
        # classifier, so the aggregator still sees one message and emits one dead letter.
        message_id = rejected.id or f"{tp.topic}:{tp.partition}:{record.offset}"
        refusal = Refusal(
            reason=rejected.reason,
            detail=rejected.detail,
            source_topic=tp.topic,
            source_partition=tp.partition,
            source_offset=record.offset,
            original_key_b64=b64(record.key),
            original_value_b64=b64(record.value) or "",
        )
        score = ScoreRecord(
            id=message_id,
            text_timestamp_ms=record.timestamp,
            refusal=refusal,
            instance=self.settings.instance_id,
        )
        return Output(self.settings.scores, message_id.encode(), encode(score))

    # -- registry ----------------------------------------------------------------------------
    def _announce(self, producer: KafkaProducer) -> None:
        """Announce every hosted version, keeping `since` when this version already served, and
        claim the vote where this start (not a restart) asks for it."""
        s = self.settings
        view = read_registry(s)
        self._refuse_shared_group(view)
        now = now_ms()
        claims = {}
        for model in self.models:
            known = view.announcement(model.label, model.version)
            self.since[model.label] = known.since_ms if known else now
            # A restart of a version that was voting must not take the vote back from a
            # version promoted meanwhile; a first start, or one out of shadow, claims it.
            restarted = known is not None and known.mode is ClassifierMode.VOTING
            unclaimed = view.class_record(model.label) is None
            if self.mode is ClassifierMode.VOTING and (unclaimed or not restarted):
                claims[model.label] = model.version
        records = voter_records(view, claims, now + int(s.switch_delay_s * 1000))
        classes = [class_output(s, record, label) for label, record in records.items()]
        commit_batch(producer, None, self._announcements() + classes, {})
        for label, record in records.items():
            span = record.voting[-1]
            log.info("%s@%s votes on texts from %s", label, span.version, when(span.since_ms))
        claim_votes(
            s, records, lambda outputs: commit_batch(producer, None, outputs, {}), s.switch_delay_s
        )
        log.info("announced %s as %s", ", ".join(self.labels), self.mode.value)

    def _refuse_shared_group(self, view: RegistryView) -> None:
        """Two versions of a class in one group would each score only part of the texts."""
        others = [
            a
            for (label, version), a in view.announcements().items()
            if a.group_id == self.group_id
            and self.versions.get(label, version) != version
            and not view.retired(label, version)
        ]
        if others and kafka_clients.group_has_members(self.settings, self.group_id):
            a = others[0]
            raise ConfigError(
                f"{a.label}@{a.version} is running in consumer group {a.group_id} "
                f"(instance {a.instance}); stop it first, or start this version with "
                "--shadow (a group of its own) or --group"
            )

    def _announcements(self) -> list[Output]:
        self._last_heartbeat = time.monotonic()
        now = now_ms()
        return [
            Output(
                self.settings.registry,
                announcement_key(model.label, model.version),
                encode(
                    Announcement(
                        label=model.label,
                        version=model.version,
                        mode=self.mode,
                        since_ms=self.since[model.label],
                        heartbeat_ms=now,
                        reads=model.manifest.reads,
                        group_id=self.group_id,
                        instance=self.settings.instance_id,
                    )
                ),
            )
            for model in self.models
        ]
