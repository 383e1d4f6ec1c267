"""`triage classifier`: consume texts, score them, publish scores, exactly once.

One process hosts one or more classifiers as one unit: one consumer group, one transaction
per polled batch, one score record per text carrying every hosted class and its version. A
unit of a single class uses the group `triage-classifier-<class>`, so every class reads every
text on its own; started with `--shadow` it uses `triage-classifier-<class>-v<version>`, so a
new version reads every text beside the current one, and with `--backfill`, that name plus
`-backfill`, from the earliest retained text. The process does not decide whether its scores
vote: the registry's class records do (`core/registry/view.py`); at every session start it
announces what it hosts (`core/registry/announce.py`). Bad input is not an exception
here: a text that cannot be decoded becomes a score record with a `refusal`, which the
aggregator turns into exactly one dead-letter record (every classifier reads the same bad
record; only the first refusal counts). Heads trained on an encoder's features read the
features topic instead of the texts (`triage encoder`), and only the records of the very encoder
identity they were trained on: records of another encoder running beside it are skipped,
counted (`triage_features_skipped_total`) and logged once, never scored. Given their encoder
(`--with-encoder`), those heads read the texts instead and encode each batch here, through the
same int8 round trip as the features topic (`core/model/encoding.py`), so their scores are the
same to the last bit, one hop and one transaction fewer; optionally they publish the features.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import numpy as np

from triage.consumers import metrics
from triage.consumers.settings import ClassifierSettings
from triage.core.errors import ConfigError
from triage.core.model.artifacts import LoadedModel
from triage.core.model.encoding import Encoded, TextEncoder, features_outputs
from triage.core.model.scoring import Scorer
from triage.core.records import Batch, Output, Partition, Record
from triage.core.registry.announce import Announcer, Hosted
from triage.core.runtime.app import Service, Session
from triage.core.runtime.clock import now_ms as wall_ms
from triage.core.runtime.metrics import observe_hop
from triage.core.topology import CLASSIFIER
from triage.schemas import embedding
from triage.schemas.codec import Reason, Rejected, decode_features, decode_text, encode, fingerprint
from triage.schemas.models import ClassifierMode, FeatureRecord, Refusal, ScoreRecord, TextRecord
from triage.schemas.source import SourceRef

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
        return CLASSIFIER.group_id(unit_name([m.label for m in models]))
    if len(models) == 1:
        name = f"{models[0].label}-v{models[0].version}"
    else:
        name = unit_name([f"{m.label}@{m.version}" for m in models])
    return CLASSIFIER.group_id(name + ("-backfill" if backfill else ""))


class ClassifierUnit(Service):
    producer_overrides = {"linger_ms": 2}

    def __init__(
        self,
        settings: ClassifierSettings,
        models: list[LoadedModel],
        mode: ClassifierMode = ClassifierMode.VOTING,
        group: str | None = None,
        backfill: bool = False,
        encoder: TextEncoder | None = None,
        publish_features: bool = False,
    ) -> None:
        self.settings = settings
        self.topics = self.settings.topics  # resolved once: names go with every record
        self.scorer = Scorer(models)
        self.models = models
        self.mode = ClassifierMode.SHADOW if backfill else mode
        self.group_id = settings.group(group or default_group(models, self.mode, backfill))
        self.name = f"classifier {self.group_id}"
        self.encoder = reads_of(models)
        self.text_encoder = _hosted_encoder(encoder, self.encoder)
        self.publish_features = publish_features and self.text_encoder is not None
        reads_features = self.encoder is not None and self.text_encoder is None
        self.inputs = (settings.topics.features if reads_features else settings.topics.texts,)
        self._skipped: set[str] = set()
        self.outputs = (settings.topics.scores, settings.topics.registry)
        if self.publish_features:
            self.outputs += (settings.topics.features,)
        if self.text_encoder is not None:  # encoding costs far more than a commit: overlap them
            self.overlap_chunk = settings.encode_batch
        self.max_batch = settings.max_batch
        self.poll_timeout_ms = settings.poll_timeout_ms
        self.commit_interval_ms = settings.commit_interval_ms
        self.versions = {m.label: m.version for m in models}
        self.registry = Announcer(
            settings,
            [Hosted(m.label, m.version, m.manifest.reads, m.manifest.owner) for m in models],
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
        reads_text = self.encoder is None or self.text_encoder is not None
        step = self.score if reads_text else self.score_features
        outputs = [out for tp, records in batch.items() for out in step(tp, records)]
        return outputs + self.registry.heartbeat()

    # -- scoring -----------------------------------------------------------------------------
    def score(self, tp: Partition, records: Sequence[Record]) -> list[Output]:
        """Score records of one partition: one score record a text, one refusal a bad one. With
        the heads' encoder in this process, the texts are encoded here first (and their features
        records published too when asked)."""
        limits = self.settings.limits
        decoded = [(r, decode_text(r.key, r.value, limits)) for r in records]
        good = [(r, d) for r, d in decoded if not isinstance(d, Rejected)]
        texts = [d.text for _, d in good]
        vectors, features = self._encode(good, decoded)
        # encoded here (the encoder in this process): the stage's time is now, as a features
        # record's timestamp is the stage's elsewhere
        encoded_ms = None if vectors is None else wall_ms()
        with metrics.SCORING_SECONDS.time():
            probabilities = self.scorer.score(texts, vectors)
        observe_hop("published_to_scored", wall_ms(), (r.timestamp for r, _ in good))
        columns = {label: p.tolist() for label, p in probabilities.items()}
        outputs = [
            self._score_output(
                text.id,
                record.timestamp,
                fingerprint(text.text.encode()),
                SourceRef(tp.topic, tp.partition, record.offset).format(),
                {k: col[i] for k, col in columns.items()},
                encoded_ms,
            )
            for i, (record, text) in enumerate(good)
        ]
        for record, rejected in decoded:
            if isinstance(rejected, Rejected):
                outputs.append(self._refusal_output(tp, record, rejected))
        return outputs + features

    def _encode(
        self,
        good: list[tuple[Record, TextRecord]],
        decoded: list[tuple[Record, TextRecord | Rejected]],
    ) -> tuple[np.ndarray | None, list[Output]]:
        """The embeddings of `good` (None without a hosted encoder) and the features records
        to publish beside the scores (none unless `publish_features`)."""
        if self.text_encoder is None:
            return None, []
        with metrics.ENCODING_SECONDS.time():
            encoded = Encoded.of(self.text_encoder, [d.text for _, d in good])
        if not self.publish_features:
            return encoded.vectors(), []
        refused = [(r, d) for r, d in decoded if isinstance(d, Rejected)]
        topic, identity = self.topics.features, self.text_encoder.identity
        return encoded.vectors(), features_outputs(topic, identity, good, encoded, refused)

    def score_features(self, tp: Partition, records: Sequence[Record]) -> list[Output]:
        """Score features records of one partition: each decoded once for every hosted head."""
        good: list[FeatureRecord] = []
        encoded_ms: list[int] = []  # the features records' Kafka timestamps: when encoded
        outputs = []
        for record in records:
            features = decode_features(record.value)
            if isinstance(features, Rejected):
                rejected = Rejected(Reason.INVALID_FEATURES, features.detail, _key(record))
                outputs.append(self._refusal_output(tp, record, rejected))
            elif features.encoder != self.encoder:
                self._skip(features.encoder)
            elif features.refusal is not None:
                outputs.append(self._passed_refusal(features, features.refusal))
            elif features.text is None or features.embedding is None or features.scale is None:
                detail = "a features record without its text, embedding or scale"
                outputs.append(self._passed_refusal(features, _refusal(record, detail)))
            else:
                good.append(features)
                encoded_ms.append(record.timestamp)
        try:
            vectors = embedding.unpack(
                [f.embedding or "" for f in good], [f.scale or 0.0 for f in good], self.dim
            )
        except ValueError as exc:  # a bad embedding: find its record, refuse it, score the rest
            if len(records) > 1:
                return [out for r in records for out in self.score_features(tp, [r])]
            rejected = Rejected(Reason.INVALID_FEATURES, f"embedding: {exc}", good[0].id)
            return [self._refusal_output(tp, records[0], rejected)]
        with metrics.SCORING_SECONDS.time():
            probabilities = self.scorer.score([f.text or "" for f in good], vectors)
        observe_hop("encoded_to_scored", wall_ms(), encoded_ms)
        columns = {label: p.tolist() for label, p in probabilities.items()}
        outputs += [
            self._score_output(
                f.id,
                f.text_timestamp_ms,
                f.fingerprint,
                f.source,
                {k: col[i] for k, col in columns.items()},
                encoded_ms[i],
            )
            for i, f in enumerate(good)
        ]
        return outputs

    @property
    def dim(self) -> int:
        return self.scorer.embedding_dim

    def _skip(self, identity: str) -> None:
        metrics.FEATURES_SKIPPED.labels(identity).inc()
        if identity not in self._skipped:
            self._skipped.add(identity)
            log.warning(
                "classifier %s reads features of %s only; skipping those of %s (another "
                "encoder beside it: its own heads score them)",
                self.group_id,
                self.encoder,
                identity,
            )

    def _score_output(
        self,
        message_id: str,
        timestamp_ms: int,
        text_fingerprint: str,
        source: str,
        scores: dict[str, float],
        encoded_ms: int | None = None,
    ) -> Output:
        # Our own freshly computed values: constructed without re-validation (hot path).
        score = ScoreRecord.model_construct(
            schema_version=1,
            id=message_id,
            text_timestamp_ms=timestamp_ms,
            scores=scores,
            versions=self.versions,
            refusal=None,
            instance=self.settings.instance_id,
            fingerprint=text_fingerprint,
            source=source,
            encoded_at_ms=encoded_ms,
        )
        return Output(self.topics.scores, message_id.encode(), encode(score))

    def _refusal_output(self, tp: Partition, record: Record, rejected: Rejected) -> Output:
        # Records without a usable id get one from their coordinates, the same in every
        # classifier, so the aggregator still sees one message and emits one dead letter.
        source = SourceRef(tp.topic, tp.partition, record.offset).format()
        message_id = rejected.id or source
        refusal = Refusal.of_record(record, rejected.reason, rejected.detail)
        digest = fingerprint(record.value or b"")
        return self._refusal_score(message_id, record.timestamp, refusal, digest, source)

    def _passed_refusal(self, features: FeatureRecord, refusal: Refusal) -> Output:
        """The encoder's refusal of a text, as this unit's refusal score of it."""
        return self._refusal_score(
            features.id, features.text_timestamp_ms, refusal, features.fingerprint, features.source
        )

    def _refusal_score(
        self, message_id: str, timestamp_ms: int, refusal: Refusal, digest: str, source: str
    ) -> Output:
        score = ScoreRecord(
            id=message_id,
            text_timestamp_ms=timestamp_ms,
            versions=self.versions,  # who refused: the aggregator stops waiting for them
            refusal=refusal,
            instance=self.settings.instance_id,
            fingerprint=digest,
            source=source,
        )
        return Output(self.topics.scores, message_id.encode(), encode(score))


def reads_of(models: list[LoadedModel]) -> str | None:
    """The one input a unit's heads share: None (the text) or an encoder identity."""
    inputs = {m.manifest.encoder for m in models}
    if len(inputs) > 1:
        names = ", ".join(f"{m.label} reads {m.manifest.reads}" for m in models)
        raise ConfigError(
            f"one classifier process hosts heads of one input; these differ ({names}): "
            "start one `triage classifier` per input"
        )
    return inputs.pop()


def _hosted_encoder(encoder: TextEncoder | None, reads: str | None) -> TextEncoder | None:
    """The encoder this process hosts for its heads: only the very one they were trained on."""
    if encoder is None:
        return None
    if reads != encoder.identity:
        wanted = f"features of {reads}" if reads else "the text alone"
        raise ConfigError(
            f"--with-encoder: the heads here read {wanted}, not encoder {encoder.identity}; "
            "host only heads trained on the encoder this process runs"
        )
    return encoder


def _key(record: Record) -> str | None:
    try:
        return record.key.decode() if record.key else None
    except UnicodeDecodeError:
        return None


def _refusal(record: Record, detail: str) -> Refusal:
    return Refusal.of_record(record, Reason.INVALID_FEATURES, detail)
