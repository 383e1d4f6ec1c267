"""What a service consumes and produces: plain records, no Kafka client types.

A service's step sees `Record`s grouped by `Partition` and returns `Output`s; the runtime turns
them into sends and one commit. kafka-python's consumer records and topic partitions have the
same fields, so the runtime passes them through unconverted (a copy per record would cost on the
hot path), and a unit test builds these instead, with no broker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol


class Partition(NamedTuple):
    topic: str
    partition: int


class Record(Protocol):
    """One consumed record (a `ConsumedRecord`, or kafka-python's own, which has these fields)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    """A record as tests and tools build it."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


# What one poll returned: records per partition, in offset order.
Batch = Mapping[Partition, Sequence[Record]]


@dataclass(frozen=True, slots=True)
class Output:
    """One record to produce in the batch's transaction (`value` None: a tombstone)."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None


def next_offsets(batch: Batch) -> dict[Partition, int]:
    """The offsets to commit after `batch`: one past the last record of each partition."""
    return {tp: records[-1].offset + 1 for tp, records in batch.items() if records}


def chunks_of(batch: Batch, size: int) -> list[dict[Partition, list[Record]]]:
    """`batch` as consecutive batches of at most `size` records, each partition's records in
    order across them: committing the chunks one after another commits the batch."""
    chunks: list[dict[Partition, list[Record]]] = [{}]
    filled = 0
    for tp, records in batch.items():
        for record in records:
            if filled == size:
                chunks.append({})
                filled = 0
            chunks[-1].setdefault(tp, []).append(record)
            filled += 1
    return [chunk for chunk in chunks if chunk]


def batch_of(records: Sequence[Record]) -> dict[Partition, list[Record]]:
    """Group records by partition, as a poll returns them (for tests and tools)."""
    grouped: dict[Partition, list[Record]] = {}
    for record in records:
        grouped.setdefault(Partition(record.topic, record.partition), []).append(record)
    return grouped
