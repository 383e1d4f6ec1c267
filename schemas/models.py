"""The message contracts: every record that crosses Kafka in triage, as a pydantic model.

Each model carries a `schema_version` so readers can refuse what they do not understand instead
of guessing. Field names are the wire format: renaming one is a breaking change for every
non-Python client reading the JSON Schema files exported from these models (`schemas/json/`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class TextRecord(_Contract):
    """A support message on the `texts` topic (value; the key is the message id)."""

    schema_version: Literal[1] = 1
    id: str = Field(min_length=1, max_length=256)
    text: str = Field(min_length=1)
    metadata: dict[str, Any] | None = None


class Refusal(_Contract):
    """Why a classifier could not score an input record, with the record itself."""

    reason: str
    detail: str
    source_topic: str
    source_partition: int
    source_offset: int
    original_key_b64: str | None
    original_value_b64: str


class ScoreRecord(_Contract):
    """Scores of one message from one classifier process, on the `scores` topic.

    A process hosting several co-located classifiers sends one record carrying all of their
    classes: `scores` (voting) and `shadow` map class → probability, `versions` class → model
    version. Flat maps on purpose: they decode several times faster than nested objects.
    A record either carries `scores` or, when the input could not be used, a `refusal`
    that the aggregator turns into exactly one dead-letter record.
    """

    schema_version: Literal[1] = 1
    id: str
    text_timestamp_ms: int
    scores: dict[str, Probability] = Field(default_factory=dict)
    shadow: dict[str, Probability] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    refusal: Refusal | None = None
    instance: str = ""


class ClassifierMode(StrEnum):
    VOTING = "voting"
    SHADOW = "shadow"


class Announcement(_Contract):
    """A classifier's entry on the compacted registry topic (key: the class name).

    `since_ms` is when this version started serving: the aggregator waits for this classifier
    only on texts published at or after that moment. A tombstone (null value) retires the class.
    """

    schema_version: Literal[1] = 1
    label: str
    version: str
    mode: ClassifierMode = ClassifierMode.VOTING
    since_ms: int
    heartbeat_ms: int
    reads: str = "text"
    group_id: str
    instance: str


class LabelRecord(_Contract):
    """The labelled result of one message on the `labels` topic (key: the message id)."""

    schema_version: Literal[1] = 1
    id: str
    label: str | None
    probability: Probability
    scores: dict[str, Probability]
    complete: bool
    missing: list[str]
    versions: dict[str, str]
    shadow_scores: dict[str, Probability] = Field(default_factory=dict)
    text_timestamp_ms: int
    decided_at_ms: int


class DeadLetter(_Contract):
    """A record triage refused, with its original bytes, where it came from and why."""

    schema_version: Literal[1] = 1
    id: str | None
    reason: str
    detail: str
    source_topic: str
    source_partition: int
    source_offset: int
    original_key_b64: str | None
    original_value_b64: str
    refused_by: str
    refused_at_ms: int


class JoinState(_Contract):
    """The aggregator's changelog entry for one message (compacted topic, key: message id).

    While `decided_at_ms` is null the join is pending, with the scores received so far and the
    wall-clock moment its timeout started; once decided, only the marker stays (so a late score
    cannot cause a second result) until the dedupe horizon passes and a tombstone removes it.
    """

    schema_version: Literal[1] = 1
    id: str
    text_timestamp_ms: int
    first_seen_ms: int
    scores: dict[str, Probability] = Field(default_factory=dict)
    shadow: dict[str, Probability] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    decided_at_ms: int | None = None


CONTRACTS: dict[str, type[BaseModel]] = {
    "text": TextRecord,
    "score": ScoreRecord,
    "label": LabelRecord,
    "announcement": Announcement,
    "dead_letter": DeadLetter,
    "join_state": JoinState,
}
