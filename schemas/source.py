"""Where a record was read: the `<topic>:<partition>:<offset>` source reference of the contracts.

Features, scores and the monitor's held corrections carry the source of the record they came
from as one string (`FeatureRecord.source`, `ScoreRecord.source`, `MonitorEntry.source`), so a
dead letter or a duplicate can name the text it stands for. `SourceRef` is the one builder and
the one reader of that string. The offset and partition are split off the right, so a topic
name holding a ':' (Kafka forbids it, a test or a tool may not) reads back unchanged.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class SourceRef(NamedTuple):
    topic: str
    partition: int
    offset: int

    @classmethod
    def of(cls, record: Any) -> SourceRef:
        """The reference of a consumed record (anything with topic, partition and offset)."""
        return cls(record.topic, record.partition, record.offset)

    @classmethod
    def parse(cls, text: str) -> SourceRef:
        """Read a reference `format` wrote; raises ValueError for anything else."""
        topic, partition, offset = text.rsplit(":", 2)
        return cls(topic, int(partition), int(offset))

    def format(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


# What a held correction without a source is reported as in its dead letter.
UNKNOWN_SOURCE = SourceRef("", -1, -1)
