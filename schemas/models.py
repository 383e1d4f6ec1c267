"""The message contracts: every record that crosses Kafka in triage, as a pydantic model.

Each model carries a `schema_version` so readers can refuse what they do not understand instead
of guessing. Field names are the wire format: renaming one is a breaking change for every
non-Python client reading the JSON Schema files exported from these models (`schemas/json/`).
"""

from __future__ import annotations

import base64
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
    """Why a record could not be used, with the record itself: where it came from, its bytes."""

    reason: str
    detail: str
    source_topic: str
    source_partition: int
    source_offset: int
    original_key_b64: str | None
    original_value_b64: str

    @classmethod
    def of_record(cls, record: Any, reason: str, detail: str) -> Refusal:
        """The refusal of a consumed record (anything with topic, partition, offset, key, value)."""
        return cls(
            reason=reason,
            detail=detail,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            original_key_b64=_b64(record.key),
            original_value_b64=_b64(record.value) or "",
        )


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


class ScoreRecord(_Contract):
    """Scores of one message from one classifier process, on the `scores` topic.

    A process hosting several co-located classifiers sends one record carrying all of their
    classes: `scores` maps class → probability and `versions` class → model version. Whether a
    score votes is not the process's call: the aggregator decides it from the registry's class
    records (a score votes when its version is the class's voting version for the text's
    timestamp; otherwise it is a shadow score). Flat maps on purpose: they decode several times
    faster than nested objects. A record either carries `scores` or, when the input could not
    be used, a `refusal` that the aggregator turns into exactly one dead-letter record.
    """

    schema_version: Literal[1] = 1
    id: str
    text_timestamp_ms: int
    scores: dict[str, Probability] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    refusal: Refusal | None = None
    instance: str = ""
    fingerprint: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{16}$",
        description="what was scored: 16 hex digits of BLAKE2b over the text (over the raw value"
        " for a refusal); two texts under one id with different fingerprints never join",
    )
    source: str | None = Field(
        default=None,
        pattern=r"^.+:[0-9]{1,10}:[0-9]{1,19}$",
        description="where the text was read: `<topic>:<partition>:<offset>`",
    )
    encoded_at_ms: int | None = Field(
        default=None,
        description="heads on an encoder's features: when the features record was produced (its"
        " Kafka timestamp); null for heads that read the text",
    )


class ClassifierMode(StrEnum):
    VOTING = "voting"
    SHADOW = "shadow"


# Registry keys are `<label>` (class record) and `<label>@<version>` (announcement).
ClassLabel = Annotated[str, Field(min_length=1, pattern=r"^[^@]+$")]


class Owner(_Contract):
    """Who answers for a class: a team (routes its alerts) and, optionally, a contact."""

    team: str = Field(min_length=1, pattern=r"^\S+$")
    contact: str | None = Field(default=None, min_length=1, pattern=r"^\S+$")

    def format(self) -> str:
        """`TEAM[:CONTACT]`, as `triage train --owner` takes it."""
        return self.team + (f":{self.contact}" if self.contact else "")


class Announcement(_Contract):
    """A running classifier version on the compacted registry topic (key: `<label>@<version>`).

    Written when the process starts and repeated every heartbeat. `since_ms` is when this
    version started serving (kept across restarts of the same version); `mode` is what the
    process was started as, for operators: whether the version votes is the class record's
    call, not the process's. A tombstone retires this version.
    """

    schema_version: Literal[1] = 1
    label: ClassLabel
    version: str = Field(min_length=1)
    mode: ClassifierMode = ClassifierMode.VOTING
    since_ms: int
    heartbeat_ms: int
    reads: str = "text"
    group_id: str
    instance: str
    # From the manifest (`triage train --owner` or the data's OWNERS); absent before owners.
    owner: Owner | None = None


class ForcedPromotion(_Contract):
    """A promotion the gate (or the liveness check) refused, done anyway with `--force`:
    who forced it, when, and the refusal's reasons, one a line, as they were shown."""

    by: str = Field(min_length=1, description="`<user>@<instance>` that ran `triage promote`")
    at_ms: int
    reasons: list[str]


class VotingSpan(_Contract):
    """From `since_ms` on (text timestamps), `version` is the class's voting version;
    `forced` when its promotion overrode a refusal."""

    version: str = Field(min_length=1)
    since_ms: int
    forced: ForcedPromotion | None = None


class ClassRecord(_Contract):
    """Which version of a class votes from when (compacted registry topic, key: `<label>`).

    For a text published at `t`, the class votes when a span starts at or before `t`, with the
    version of the last such span. Spans are only ever appended, each starting after it was
    written, so the record never changes the vote of a text already published. A tombstone
    retires the class: the aggregator stops waiting for it and names it in no later result.
    """

    schema_version: Literal[1] = 1
    label: ClassLabel
    voting: list[VotingSpan] = Field(min_length=1)


class LabelRecord(_Contract):
    """The labelled result of one message on the `labels` topic (key: the message id).

    When each stage saw the text, in ms since the epoch, so a reader can tell which hop cost
    what: `text_timestamp_ms` (published: the text record's Kafka timestamp), `encoded_at_ms`
    (the features record's, when the heads read an encoder), `scored_at_ms` (the Kafka
    timestamp of the last score record that joined: for a complete result, the last voter's)
    and `decided_at_ms` (the aggregator's decision). Flat fields, not a nested object: flat
    records decode several times faster (see `ScoreRecord`), and readers decode every result.
    """

    schema_version: Literal[1] = 1
    id: str
    label: str | None
    probability: Probability
    scores: dict[str, Probability]
    complete: bool
    missing: list[str]
    versions: dict[str, str] = Field(
        description="class → the version whose score voted (exactly the classes in `scores`)"
    )
    shadow_scores: dict[str, Probability] = Field(
        default_factory=dict,
        description="`<label>@<version>` → probability of every score that did not vote: "
        "a version in shadow, the previous version after a promote, a class not yet voting",
    )
    text_timestamp_ms: int
    decided_at_ms: int
    fingerprint: str | None = Field(
        default=None,
        description="the fingerprint of the text this result is for (another text under the"
        " same id is refused as `duplicate_id`)",
    )
    scored_at_ms: int | None = Field(
        default=None,
        description="when the last score record that joined was produced (its Kafka timestamp;"
        " for a complete result, the last voter's); null from aggregators before it was added",
    )
    encoded_at_ms: int | None = Field(
        default=None,
        description="when the encoder produced the text's features (the latest, with several"
        " encoders); null when no head read an encoder's features",
    )


EncoderIdentity = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9.-]*@[0-9a-f]{16}$",
        description="`<name>@<16 hex digits of the sha256 of its weights and tokenizer>`",
    ),
]


class FeatureRecord(_Contract):
    """One text with its sentence embedding, on the `features` topic (key: the message id).

    Written by `triage encoder` for every record of `texts`, so heads that read an encoder's
    features never encode a text themselves. `embedding` is base64 of `dim` int8 values;
    multiplied by `scale` they are the L2-normalised embedding (int8 keeps a record near 1 KB
    where float32 would be 2 KB of base64 for 384 dimensions). A record the encoder could not
    read carries a `refusal` instead, so every head passes it on and it still ends as one dead
    letter. `source` and `text_timestamp_ms` are those of the text record, so a score computed
    from features names the same text as one computed from the text.
    """

    schema_version: Literal[1] = 1
    id: str
    text_timestamp_ms: int
    encoder: EncoderIdentity
    text: str | None = None
    embedding: str | None = None
    scale: float | None = None
    refusal: Refusal | None = None
    fingerprint: str = Field(pattern=r"^[0-9a-f]{16}$")
    source: str = Field(pattern=r"^.+:[0-9]{1,10}:[0-9]{1,19}$")


class DeadLetter(Refusal):
    """A record triage refused, with its original bytes, where it came from, why, and who
    refused it when: the one builder of dead letters is `from_refusal`."""

    schema_version: Literal[1] = 1
    id: str | None
    refused_by: str
    refused_at_ms: int

    @classmethod
    def from_refusal(
        cls, refusal: Refusal, message_id: str | None, refused_by: str, at_ms: int
    ) -> DeadLetter:
        return cls(
            **refusal.model_dump(include=set(Refusal.model_fields)),
            id=message_id,
            refused_by=refused_by,
            refused_at_ms=at_ms,
        )


class JoinState(_Contract):
    """The aggregator's changelog entry for one message (compacted topic, key: message id).

    While `decided_at_ms` is null the join is pending, with the scores received so far (keyed
    `<label>@<version>`: which of them vote is settled from the registry at the decision) and
    the wall-clock moment its timeout started. A join decided while voters were still `missing`
    (a timeout, a refusal) leaves this marker, so their late scores cause no second result,
    until they have all arrived or the dedupe horizon passes; then a tombstone removes it.
    `conflicts` holds fingerprints of other texts seen under this id (each dead-lettered once).
    A complete decision leaves no marker here: it goes into a `DecidedBlock`.
    """

    schema_version: Literal[1] = 1
    id: str
    text_timestamp_ms: int
    first_seen_ms: int
    scores: dict[str, Probability] = Field(default_factory=dict)
    decided_at_ms: int | None = None
    fingerprint: str | None = None
    source: str | None = None
    missing: list[str] | None = None
    conflicts: list[str] = Field(default_factory=list)
    scored_at_ms: int | None = None  # a pending join's stage times, as in `LabelRecord`
    encoded_at_ms: int | None = None


class DecidedBlock(_Contract):
    """Messages one aggregator batch finished, for the retry window (changelog key: `\\xff`
    then `done:...`, never a message id's UTF-8).

    Little-endian uint64 columns, base64: BLAKE2b-64 of the message id, the text's fingerprint,
    the decision time in ms, and the text's source (`partition << 48 | offset`). 32 bytes a
    message instead of a JSON record each: what keeps the aggregator's state and its restore
    small at full speed.
    """

    schema_version: Literal[1] = 1
    ids: str
    fingerprints: str
    decided_ms: str
    sources: str


class CorrectionRecord(_Contract):
    """A human's verdict on one message's label, on the `corrections` topic (key: message id).

    Support agents fixing a misrouted message publish one (`triage correct`, or any client):
    ground truth for the live quality of every class. `label` is the class the message belongs
    to, or null for "none of our classes"; it is required, so null is always meant.
    """

    schema_version: Literal[1] = 1
    id: str = Field(min_length=1, max_length=256)
    label: str | None = Field(description="the correct class; null: none of our classes")
    source: str = Field(default="", max_length=256, description="who or what corrected it")
    corrected_at_ms: int


class QualityTally(_Contract):
    """Counts of one class version over some span, as the monitor keeps them.

    For every corrected result the class is predicted positive when the result's label is the
    class and actually positive when the correction's label is: `tp`, `fp`, `fn`, `tn`.
    `abstained`: corrected results of this class on which the pipeline abstained. `cal_*` are
    ten equal-width bins of this class's score on corrected results (count, sum of scores,
    positives); `hist` ten bins of its score on every result (drift). `confusions`: true label
    (`-` for none of our classes) of results wrongly routed to this class → how many, and
    `examples` a few of their ids.
    """

    results: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    abstained: int = 0
    hist: list[int] = Field(default_factory=lambda: [0] * 10)
    cal_n: list[int] = Field(default_factory=lambda: [0] * 10)
    cal_score: list[float] = Field(default_factory=lambda: [0.0] * 10)
    cal_pos: list[int] = Field(default_factory=lambda: [0] * 10)
    confusions: dict[str, int] = Field(default_factory=dict)
    examples: dict[str, list[str]] = Field(default_factory=dict)


class QualityCounts(_Contract):
    """The live quality of one class version on one partition (compacted `triage-quality`
    topic, key `<label>@<version>/<partition>`; also the monitor's changelog for it).

    `total` since the version's first result on this partition (`since_ms`); `buckets` by
    start time (ms) over the sliding window. Readers add the partitions up.
    """

    schema_version: Literal[1] = 1
    label: str
    version: str
    partition: int
    since_ms: int
    updated_ms: int
    bucket_ms: int
    total: QualityTally = Field(default_factory=QualityTally)
    buckets: dict[int, QualityTally] = Field(default_factory=dict)


class MonitorEntry(_Contract):
    """The monitor's changelog entry for one message id (key `r:<id>` or `c:<id>`).

    `r:` a result kept for its correction until the horizon: its label, voting versions and
    scores, and once corrected the correction's label (`corrected`, `-` for none of ours).
    `c:` a correction that arrived before its result, held with where it was read.
    """

    schema_version: Literal[1] = 1
    id: str
    seen_ms: int
    label: str | None = None
    scores: dict[str, float] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    corrected: str | None = None
    correction: CorrectionRecord | None = None
    source: str | None = Field(default=None, description="`<topic>:<partition>:<offset>`")


CONTRACTS: dict[str, type[BaseModel]] = {
    "text": TextRecord,
    "score": ScoreRecord,
    "label": LabelRecord,
    "announcement": Announcement,
    "class_record": ClassRecord,
    "dead_letter": DeadLetter,
    "join_state": JoinState,
    "decided_block": DecidedBlock,
    "feature": FeatureRecord,
    "correction": CorrectionRecord,
    "quality_counts": QualityCounts,
    "monitor_entry": MonitorEntry,
}
