"""`triage classifier`: consume texts, score them, publish scores, exactly once.

One process hosts one or more classifiers as one unit: one consumer group, one transaction
per polled batch, one score record per text carrying every hosted class and its version. A
unit of a single class uses the group `triage-classifier-<class>`, so every class reads every
text on its own; started with `--shadow` it uses `triage-classifier-<class>-v<version>`, so a
new version reads every text beside the current one, and with `--backfill`, that name plus
`-backfill`, from the earliest retained text. The process does not decide whether its scores
vote: the registry's class records do (`triage/registry/view.py`); at every session start it
announces what it hosts (`triage/registry/announce.py`). Bad input is not an exception
here: a text that cannot be decoded becomes a score record with a `refusal`, which the
aggregator turns into exactly one dead-letter record (every classifier reads the same bad
record; only the first refusal counts).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

from consumers import metrics
from consumers.artifacts import LoadedModel
from consumers.scoring import Scorer
from schemas.codec import Rejected, decode_text, encode, fingerprint
from schemas.models import ClassifierMode, Refusal, ScoreRecord, TextRecord
from triage.registry.announce import Announcer, Hosted
from triage.runtime.app import Service, Session
from triage.runtime.records import Batch, Output, Partition, Record
from triage.runtime.settings import ClassifierSettings

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


class ClassifierUnit(Service):
    producer_overrides = {"linger_ms": 2}

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
        self.name = f"classifier {self.group_id}"
        self.inputs = (settings.texts,)
        self.outputs = (settings.scores, settings.registry)
        self.max_batch = settings.max_batch
        self.poll_timeout_ms = settings.poll_timeout_ms
        self.versions = {m.label: m.version for m in models}
        self.registry = Announcer(
            settings,
            [Hosted(m.label, m.version, m.manifest.reads) for m in models],
            self.mode,
            self.group_id,
        )
        for model in models:
            metrics.MODEL_INFO.labels(model.label, model.version).set(1)

    @property
    def labels(self) -> list[str]:
        return [m.label for m in self.models]

    def open(self, session: Session) -> None:
        self.registry.announce(session.write)
        log.info("classifier %s serves %s", self.group_id, ", ".join(self.labels))

    def process(self, batch: Batch, now_ms: int) -> list[Output]:
        outputs = [out for tp, records in batch.items() for out in self.score(tp, records)]
        return outputs + self.registry.heartbeat()

    # -- scoring -----------------------------------------------------------------------------
    def score(self, tp: Partition, records: Sequence[Record]) -> list[Output]:
        """Score records of one partition: one score record a text, one refusal a bad one."""
        limits = self.settings.limits
        decoded = [(r, decode_text(r.key, r.value, limits)) for r in records]
        good = [(r, d) for r, d in decoded if not isinstance(d, Rejected)]
        with metrics.SCORING_SECONDS.time():
            probabilities = self.scorer.score([d.text for _, d in good])
        columns = {label: p.tolist() for label, p in probabilities.items()}
        outputs = [
            self._score_output(text, tp, record, {k: col[i] for k, col in columns.items()})
            for i, (record, text) in enumerate(good)
        ]
        for record, rejected in decoded:
            if isinstance(rejected, Rejected):
                outputs.append(self._refusal_output(tp, record, rejected))
        return outputs

    def _score_output(
        self, text: TextRecord, tp: Partition, record: Record, scores: dict[str, float]
    ) -> Output:
        # Our own freshly computed values: constructed without re-validation (hot path).
        score = ScoreRecord.model_construct(
            schema_version=1,
            id=text.id,
            text_timestamp_ms=record.timestamp,
            scores=scores,
            versions=self.versions,
            refusal=None,
            instance=self.settings.instance_id,
            fingerprint=fingerprint(text.text.encode()),
            source=f"{tp.topic}:{tp.partition}:{record.offset}",
        )
        return Output(self.settings.scores, text.id.encode(), encode(score))

    def _refusal_output(self, tp: Partition, record: Record, rejected: Rejected) -> Output:
        # Records without a usable id get one from their coordinates, the same in every
        # classifier, so the aggregator still sees one message and emits one dead letter.
        message_id = rejected.id or f"{tp.topic}:{tp.partition}:{record.offset}"
        score = ScoreRecord(
            id=message_id,
            text_timestamp_ms=record.timestamp,
            versions=self.versions,  # who refused: the aggregator stops waiting for them
            refusal=Refusal.of_record(record, rejected.reason, rejected.detail),
            instance=self.settings.instance_id,
            fingerprint=fingerprint(record.value or b""),
            source=f"{tp.topic}:{tp.partition}:{record.offset}",
        )
        return Output(self.settings.scores, message_id.encode(), encode(score))
