"""Triage's topology, declared once: every topic, and which service reads and writes which.

Each topic has its default name, what its keys and values are (the table in docs/architecture.md
is rendered from here), its partitions (the deployment's count, or one) and whether it is
compacted, a changelog among them. Each service role names the topics it reads and writes and
its consumer group, a literal id or a prefix that its instances and units extend. Everything
else is derived: the settings' topic name fields and `settings.topics`, the topics
`ensure_topics` creates, the ACLs of `triage kafka start --secure` and the services' default
group ids. Pure data: no Kafka.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Topics(Generic[T]):
    """One value per topic: its declaration (`TOPICS`) or its name in a deployment."""

    texts: T
    features: T
    scores: T
    labels: T
    registry: T
    dead_letters: T
    aggregator_state: T
    corrections: T
    quality: T
    monitor_state: T

    def __getitem__(self, field: str) -> T:
        return getattr(self, field)

    def items(self) -> Iterator[tuple[str, T]]:
        """(field, value) in declaration order, the docs table's."""
        return ((f.name, getattr(self, f.name)) for f in fields(self))


FIELDS = tuple(f.name for f in fields(Topics))


@dataclass(frozen=True)
class Topic:
    """A topic's default name, what its records are, and how triage creates it."""

    name: str
    key: str
    value: str
    partitions: Literal["deployment", "one"] = "deployment"
    compacted: bool = False
    changelog: bool = False

    def configs(self) -> dict[str, str]:
        """Topic configs beyond the broker's defaults; none for a plain append-only topic."""
        if not self.compacted:
            return {}
        return {"cleanup.policy": "compact"} | (CHANGELOG_CONFIGS if self.changelog else {})


# A restore replays what compaction has not removed yet, and the cleaner never touches the
# active segment: by default (1 GiB segments, tombstones kept a day) that is every record of
# the last day. Small segments and a short tombstone retention keep it near the live state
# (10 minutes of tombstones is far longer than any restore takes to read past them).
CHANGELOG_CONFIGS = {
    "segment.bytes": str(16 * 1024 * 1024),
    "segment.ms": "60000",
    "min.cleanable.dirty.ratio": "0.2",
    "delete.retention.ms": "600000",
}

_MESSAGE_ID = "message id"

TOPICS: Topics[Topic] = Topics(
    texts=Topic("texts", _MESSAGE_ID, 'JSON `{"id", "text", "metadata"?}`, or plain UTF-8 text'),
    features=Topic(
        "features",
        _MESSAGE_ID,
        "one record per text per encoder: the text, its embedding (int8 and a scale), the"
        " encoder's identity `name@sha256-prefix`; or the encoder's `refusal`"
        " ([language-model features](encoder.md))",
    ),
    scores=Topic(
        "scores",
        _MESSAGE_ID,
        "one record per text per classifier process: `scores` {class: probability},"
        " `versions` {class: version}",
    ),
    labels=Topic(
        "labels",
        _MESSAGE_ID,
        "`id`, `label` (null = abstained), `probability`, `scores`, `complete`, `missing`,"
        " `versions`, `shadow_scores`, and when each stage saw the text ([where the time"
        " goes](operating.md#where-the-time-goes))",
    ),
    registry=Topic(
        "triage-registry",
        "class, or class@version",
        "compacted: class records (which version votes from when; a tombstone retires the"
        " class) and running versions' announcements and heartbeats"
        " ([lifecycle](shipping-a-class.md#classifier-lifecycle))",
        partitions="one",
        compacted=True,
    ),
    dead_letters=Topic(
        "triage-dead-letters",
        _MESSAGE_ID,
        "the original bytes (base64), source topic/partition/offset, `reason`",
    ),
    aggregator_state=Topic(
        "triage-aggregator-state",
        "message id, or a block key",
        "compacted changelog: pending joins, decisions still waiting for a missing voter's late"
        " score, and blocks of decided ids for the retry window (32 bytes an id)",
        compacted=True,
        changelog=True,
    ),
    # keyed by message id like `labels`, with as many partitions: the monitor meets a
    # correction and its result in the same partition number
    corrections=Topic(
        "corrections",
        _MESSAGE_ID,
        "`id`, `label` (the right class; null = none of our classes), `source`,"
        " `corrected_at_ms` ([live"
        " quality](operating.md#live-quality-corrections-monitor-quality))",
    ),
    quality=Topic(
        "triage-quality",
        "`<class>@<version>/<partition>`",
        "compacted: the monitor's counts of each class version on each partition, which"
        " `triage quality` adds up",
        partitions="one",
        compacted=True,
    ),
    monitor_state=Topic(
        "triage-monitor-state",
        "`r:<id>`, `c:<id>`, or a counts key",
        "compacted changelog of the monitor: results waiting for corrections, corrections"
        " waiting for results, the counts",
        compacted=True,
        changelog=True,
    ),
)


@lru_cache(maxsize=64)
def names(prefix: str, given: tuple[str, ...]) -> Topics[str]:
    """Every topic's name in a deployment: `given` (one per field, in order) after `prefix`.

    Cached: services ask for a name with every record they write.
    """
    return Topics(*(prefix + name for name in given))


@dataclass(frozen=True)
class Role:
    """A service, as the cluster sees it: the topics it reads and writes, its group's name.

    `group` is the consumer group id, or with `group_is_prefix` the start of every group id of
    the role (one group per classifier unit, per encoder). `granted`: whether the role is a
    SCRAM user of `triage kafka start --secure` with ACLs derived from here.
    """

    name: str
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    group: str | None = None
    group_is_prefix: bool = False
    granted: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.reads + self.writes) - set(FIELDS)
        if unknown:
            raise ValueError(f"role {self.name} names unknown topics {sorted(unknown)}")

    def group_id(self, unit: str = "") -> str:
        """The role's consumer group id before the deployment's prefix; `unit` extends a
        prefix (`triage-classifier-` + the unit's name)."""
        if self.group is None:
            raise ValueError(f"role {self.name} consumes in no group")
        return self.group + unit

    @property
    def transactional_id_prefix(self) -> str:
        """What every transactional id of the role starts with (see `member_id`)."""
        group = self.group_id()
        return group if self.group_is_prefix else member_id(group, "")


def member_id(group_id: str, instance_id: str) -> str:
    """An instance's name in its group, which is also its transactional id: a restart under
    the same instance id fences its zombie."""
    return f"{group_id}.{instance_id}"


PUBLISHER = Role("publisher", writes=("texts", "corrections"))
CLASSIFIER = Role(
    "classifier",
    reads=("texts", "registry"),
    writes=("scores", "registry"),
    group="triage-classifier-",
    group_is_prefix=True,
)
AGGREGATOR = Role(
    "aggregator",
    reads=("scores", "registry", "aggregator_state"),
    writes=("labels", "dead_letters", "aggregator_state"),
    group="triage-aggregator",
)
READER = Role("reader", reads=("labels", "dead_letters"))
GATEWAY = Role("gateway", reads=("labels", "dead_letters", "registry"), writes=("texts",))
MONITOR = Role(
    "monitor",
    reads=("labels", "corrections", "registry", "quality", "monitor_state"),
    writes=("dead_letters", "quality", "monitor_state"),
    group="triage-monitor",
)
# Not a SCRAM user (yet): a secured cluster grants no encoder, nor the classifier heads' reading
# of features; `granted=False` keeps `--secure`'s ACLs what they were.
ENCODER = Role(
    "encoder",
    reads=("texts",),
    writes=("features",),
    group="triage-encoder-",
    group_is_prefix=True,
    granted=False,
)
ROLES = (PUBLISHER, CLASSIFIER, AGGREGATOR, READER, GATEWAY, MONITOR, ENCODER)


def topic_table() -> str:
    """The topic table of docs/architecture.md ("Topics"), one row per topic."""
    rows = ["| topic | key | value |", "| --- | --- | --- |"]
    rows += [f"| `{t.name}` | {t.key} | {t.value} |" for _, t in TOPICS.items()]
    return "\n".join(rows) + "\n"


def settings_fields() -> dict[str, Any]:
    """The settings' per-topic name fields (`topic_<field>`, `TRIAGE_TOPIC_<FIELD>`)."""
    return {f"topic_{field}": (str, topic.name) for field, topic in TOPICS.items()}
