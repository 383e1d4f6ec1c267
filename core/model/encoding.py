"""One batch of texts through a sentence encoder, as the heads and the features topic see it.

Shared by the two places that encode: `triage encoder` (encoder/service.py), which publishes one
features record a text, and a classifier that hosts its heads' encoder in its own process
(`triage classifier --with-encoder`), which scores the embeddings where they were computed and
publishes features records only when asked. Both quantize the same way (`schemas/embedding.py`),
so a head is served the very numbers it would read from the features topic and was trained on,
and both build the same features record for a text, or for a refusal, from the same fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from triage.core.records import Output, Record
from triage.schemas import embedding
from triage.schemas.codec import Rejected, encode, fingerprint
from triage.schemas.models import FeatureRecord, Refusal, TextRecord
from triage.schemas.source import SourceRef


class TextEncoder(Protocol):
    """What this module needs of an encoder (`encoder/sentence.py`'s `SentenceEncoder`)."""

    @property
    def name(self) -> str: ...
    @property
    def identity(self) -> str: ...
    def encode(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Encoded:
    """A batch's embeddings in their wire form: int8 rows and one scale per row."""

    rows: np.ndarray
    scales: np.ndarray

    @classmethod
    def of(cls, encoder: TextEncoder, texts: list[str]) -> Encoded:
        return cls(*embedding.quantize(encoder.encode(texts)))

    def vectors(self) -> np.ndarray:
        """What a head reading the features topic would unpack: the dequantized rows."""
        return embedding.dequantize(self.rows, self.scales)


def features_outputs(
    topic: str,
    identity: str,
    good: Sequence[tuple[Record, TextRecord]],
    encoded: Encoded,
    refused: Sequence[tuple[Record, Rejected]],
) -> list[Output]:
    """One features record per text of `good` (encoded, in order) and per refusal."""
    outputs = [
        features_output(topic, identity, record, text.id, text.text, row, float(scale))
        for (record, text), row, scale in zip(good, encoded.rows, encoded.scales, strict=True)
    ]
    outputs += [refused_features_output(topic, identity, r, rejected) for r, rejected in refused]
    return outputs


def features_output(
    topic: str,
    identity: str,
    record: Record,
    message_id: str,
    text: str,
    row: np.ndarray,
    scale: float,
) -> Output:
    """The features record of one encoded text (`row` int8, `scale` its scale)."""
    # Our own freshly computed values: constructed without re-validation (hot path).
    features = FeatureRecord.model_construct(
        schema_version=1,
        id=message_id,
        text_timestamp_ms=record.timestamp,
        encoder=identity,
        text=text,
        embedding=embedding.pack(row),
        scale=float(scale),
        refusal=None,
        fingerprint=fingerprint(text.encode()),
        source=SourceRef.of(record).format(),
    )
    return Output(topic, message_id.encode(), encode(features))


def refused_features_output(
    topic: str, identity: str, record: Record, rejected: Rejected
) -> Output:
    """The features record of a text the encoder cannot read: its refusal, passed on."""
    # The id every classifier would give it (see consumers/service.py), so a text refused
    # here ends as the same one dead letter as a text a text-reading head refused.
    source = SourceRef.of(record).format()
    message_id = rejected.id or source
    features = FeatureRecord(
        id=message_id,
        text_timestamp_ms=record.timestamp,
        encoder=identity,
        refusal=Refusal.of_record(record, rejected.reason, rejected.detail),
        fingerprint=fingerprint(record.value or b""),
        source=source,
    )
    return Output(topic, message_id.encode(), encode(features))
