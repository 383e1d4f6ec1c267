"""One way to read a topic from its start: registry, results, changelog restores and tools.

A `TopicReader` has no consumer group: it is assigned every partition of a topic or topics (or
the ones asked for), reads from the earliest retained record (or, `from_end`, from what arrives
after it was opened; `start_offsets` resume where a previous reader stopped) with
`read_committed`, and never commits, so every process reading it sees every committed record.
`read_to_end` stops at the ends as of the call; `follow` keeps going. A topic that does not
exist yet reads as empty; one this principal may not read raises `TopicAuthorizationFailedError`
instead of waiting forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError

from triage.core.kafka.clients import consumer
from triage.core.kafka.topics import known_partitions, raise_if_unauthorized
from triage.core.liveness import beat
from triage.core.records import Partition, Record
from triage.core.settings import CommonSettings

log = logging.getLogger(__name__)

POLL_MS = 200
# A topic created a moment ago may not be in the metadata yet; one not there by then is absent.
METADATA_WAIT_S = 1.0


class TopicReader:
    def __init__(
        self,
        settings: CommonSettings,
        topic: str | Sequence[str],
        partitions: Iterable[int] | None = None,
        from_end: bool = False,
        start_offsets: Mapping[Partition, int] | None = None,
        **overrides: Any,
    ) -> None:
        topics = [topic] if isinstance(topic, str) else list(topic)
        self.topic = ", ".join(topics)
        self._consumer = consumer(
            settings, group_id=None, allow_auto_create_topics=False, **overrides
        )
        self._wanted = None if partitions is None else sorted(partitions)
        self._start = {TopicPartition(*tp): offset for tp, offset in (start_offsets or {}).items()}
        self._partitions: list[TopicPartition] = []
        self._missing = topics  # not there yet: looked for again while following
        self._looked = 0.0
        try:
            self._assign(from_end, wait_s=METADATA_WAIT_S)
        except BaseException:
            self._consumer.close()
            raise

    def _assign(self, from_end: bool, wait_s: float = 0.0) -> None:
        """Assign the partitions of the topics that exist now; a topic created after the
        reader was opened is read from its beginning (everything in it is new)."""
        self._looked = time.monotonic()
        found = {name: self._known(name, wait_s) for name in self._missing}
        self._missing = [name for name, parts in found.items() if not parts]
        new = [TopicPartition(name, p) for name, parts in found.items() for p in parts]
        if not new:
            return
        kept = {tp: self._consumer.position(tp) for tp in self._partitions}
        self._partitions += new
        self._consumer.assign(self._partitions)  # (positions start over: seek them back)
        for tp, offset in kept.items():
            self._consumer.seek(tp, offset)
        if from_end:
            self._consumer.seek_to_end(*new)
            for tp in new:  # resolve now: what comes later is read
                self._consumer.position(tp)
        else:
            self._consumer.seek_to_beginning(*new)
        for tp in new:
            if tp in self._start:
                self._consumer.seek(tp, self._start[tp])

    def _known(self, topic: str, wait_s: float) -> list[int]:
        known = known_partitions(self._consumer, topic)
        deadline = time.monotonic() + wait_s
        while not known and time.monotonic() < deadline:  # created a moment ago?
            time.sleep(0.1)
            known = known_partitions(self._consumer, topic)
        if not known:
            if wait_s:  # at opening, when nothing is assigned yet: it unassigns
                raise_if_unauthorized(self._consumer, topic)
            return []
        return sorted(known) if self._wanted is None else self._wanted

    def poll(self, timeout_ms: int = 0) -> list[Record]:
        """What arrived since the last call, waiting up to `timeout_ms` for something."""
        if self._missing and time.monotonic() - self._looked > METADATA_WAIT_S:
            self._assign(from_end=False)
        if not self._partitions:
            time.sleep(timeout_ms / 1000)
            return []
        batches = self._consumer.poll(timeout_ms=timeout_ms)
        return [record for records in batches.values() for record in records]

    def check(self) -> None:
        """Ask the brokers for the partitions' end offsets: raises when they cannot answer
        (a consumer's polls only log that the cluster is gone)."""
        if self._partitions:
            self._consumer.end_offsets(self._partitions)

    def read_to_end(self, stall_s: float | None = 30.0, strict: bool = True) -> Iterator[Record]:
        """Every record up to the partitions' ends as of this call.

        When nothing arrives for `stall_s` before the end: raise `KafkaTimeoutError` (`strict`:
        reading part of it would be wrong, say a state restore) or log and stop.
        """
        if not self._partitions:
            return
        ends = self._consumer.end_offsets(self._partitions)
        last = time.monotonic()
        while any(self._consumer.position(tp) < end for tp, end in ends.items()):
            records = self.poll(POLL_MS)
            if records:
                beat()  # a long read is progress, not a stall
                last = time.monotonic()
                yield from records
            elif stall_s is not None and time.monotonic() - last > stall_s:
                behind = {tp.partition: self._consumer.position(tp) for tp in ends}
                what = f"reading {self.topic}: nothing for {stall_s:.0f}s at offsets {behind}"
                if strict:
                    raise KafkaTimeoutError(f"{what} of {list(ends.values())}")
                log.warning("%s; going on with what was read", what)
                return

    def follow(self, idle_timeout_s: float | None = None) -> Iterator[Record]:
        """Every record, from the start and as it arrives; stops after `idle_timeout_s` without
        a record, if given."""
        last = time.monotonic()
        while True:
            records = self.poll(POLL_MS)
            if records:
                last = time.monotonic()
                yield from records
            elif idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                return

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_topic(settings: CommonSettings, topic: str) -> Iterator[Record]:
    """Every committed record of `topic` so far, then stop."""
    with TopicReader(settings, topic) as reader:
        yield from reader.read_to_end(stall_s=None)
