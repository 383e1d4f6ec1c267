"""`triage encoder`: read texts, encode each polled batch once, publish features, exactly once.

Every head that reads an encoder's features consumes its `features` records instead of the
texts, so a text is encoded once however many classes read it. One record per text, keyed by the
message id, carrying the text, its int8 embedding and the encoder's identity (`FeatureRecord`);
a text the stage cannot read is passed on as a record with a `refusal`, which every head turns
into a refusal score, so it still ends as exactly one dead letter. Several encoders may run side
by side (each in its own group, `triage-encoder-<name>`) on the one topic: a head reads only
the records of the identity it was trained on.

A poll's texts are encoded 128 at a time (`encode_batch`), each 128 one transaction, which the
run loop commits while the next 128 encode (`Service.overlap_chunk`): the encoder's cores are not
idle while its transaction commits, and neither are the heads waiting for it. The encode and
the features records are `core/model/encoding.py`'s, which a classifier hosting its heads'
encoder (`triage classifier --with-encoder`) shares.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from triage.core.model.encoding import Encoded, features_outputs
from triage.core.records import Batch, Output
from triage.core.runtime.app import Service, Session
from triage.core.runtime.clock import now_ms as wall_ms
from triage.core.runtime.metrics import observe_hop
from triage.core.topology import ENCODER
from triage.encoder import metrics
from triage.encoder.sentence import SentenceEncoder
from triage.encoder.settings import EncoderSettings
from triage.schemas.codec import Rejected, decode_text

log = logging.getLogger(__name__)


class EncoderStage(Service):
    producer_overrides = {"linger_ms": 2}

    def __init__(self, settings: EncoderSettings, encoder: SentenceEncoder) -> None:
        self.settings = settings
        self.topics = self.settings.topics  # resolved once: names go with every record
        self.encoder = encoder
        self.group_id = settings.group(ENCODER.group_id(encoder.name))
        self.name = f"encoder {encoder.name}"
        self.inputs = (settings.topics.texts,)
        self.outputs = (settings.topics.features,)
        self.max_batch = settings.max_batch
        self.overlap_chunk = settings.encode_batch
        self.poll_timeout_ms = settings.poll_timeout_ms
        self.commit_interval_ms = settings.commit_interval_ms
        self._encoded: deque[int] = deque()  # texts of each `process` not yet committed
        metrics.ENCODER_INFO.labels(encoder.name, encoder.identity).set(1)

    def open(self, session: Session) -> None:
        self._encoded.clear()  # the last session's uncommitted batches were aborted
        log.info(
            "encoder %s (%d dimensions, %d threads) → %s",
            self.encoder.identity,
            self.encoder.dim,
            self.encoder.threads,
            self.topics.features,
        )

    def process(self, batch: Batch, now_ms: int) -> list[Output]:
        """Every record of the poll → one features record, all texts encoded in one call."""
        limits = self.settings.limits
        decoded = [
            (record, decode_text(record.key, record.value, limits))
            for records in batch.values()
            for record in records
        ]
        good = [(r, d) for r, d in decoded if not isinstance(d, Rejected)]
        started = time.perf_counter()
        encoded = Encoded.of(self.encoder, [d.text for _, d in good])
        observe_hop("published_to_encoded", wall_ms(), (r.timestamp for r, _ in good))
        if decoded:
            metrics.BATCH_SECONDS.labels(self.encoder.name).observe(time.perf_counter() - started)
        refused = [(r, d) for r, d in decoded if isinstance(d, Rejected)]
        outputs = features_outputs(
            self.topics.features, self.encoder.identity, good, encoded, refused
        )
        self._encoded.append(len(good))
        return outputs

    def committed(self) -> None:
        encoded = self._encoded.popleft()
        if encoded:
            metrics.ENCODED.labels(self.encoder.name).inc(encoded)
