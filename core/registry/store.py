"""Reading and writing the classifier registry, a compacted topic of class records and
announcements (see `core/registry/view.py` for what they mean).

Readers use the runtime's group-less topic reader from the start, so every aggregator instance,
classifier process and operator command sees every entry. Class records have two writers, a
classifier process started in voting mode and `triage promote`; both read the registry to its
end, append one span to what they read, write, then read back. Kafka has no compare-and-set, so
two writers racing can still overwrite each other; the one whose span was lost notices on the
read-back and appends again. Spans always start `switch_delay_s` after they are written, so
while this settles no text that is already published changes its voters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from triage.core.errors import OperatorError
from triage.core.kafka import clients
from triage.core.kafka.reader import TopicReader
from triage.core.records import Output, Record
from triage.core.registry.view import RegistryView, latest, not_voting, with_voter
from triage.core.runtime.clock import now_ms, when
from triage.core.settings import CommonSettings
from triage.schemas.codec import (
    Rejected,
    decode_announcement,
    decode_class_record,
    encode,
    parse_registry_key,
    registry_key,
)
from triage.schemas.models import Announcement, ClassRecord, ForcedPromotion

log = logging.getLogger(__name__)

WRITE_ATTEMPTS = 3
STALE_HEARTBEATS = 3


class RegistryError(OperatorError):
    """An operator's registry request that cannot be done; the message says why."""


def check_label(label: str) -> None:
    if not label or "@" in label:
        raise RegistryError(
            f"class name {label!r}: registry keys use '@' to separate class and version; "
            "rename the class"
        )


POLL_EVERY_S = 0.25


class RegistryReader:
    """Follows the registry topic and applies every record to a `RegistryView`."""

    def __init__(self, reader: TopicReader, view: RegistryView | None = None) -> None:
        self.view = view or RegistryView()
        self._reader = reader
        self._polled_s = float("-inf")

    @classmethod
    def open(cls, settings: CommonSettings) -> RegistryReader:
        return cls(TopicReader(settings, settings.topics.registry))

    def poll(self, timeout_ms: int = 0) -> int:
        """Apply what arrived since the last call; returns the number of records read. A poll
        that would not wait asks Kafka at most every `POLL_EVERY_S`: a stage polls once a batch,
        the registry changes a few times an hour, and a new voter votes `switch_delay_s` after
        its record is written (measured: the aggregator's registry polls were 5 % of its CPU at
        50 texts/s)."""
        now = time.monotonic()
        if timeout_ms <= 0 and now - self._polled_s < POLL_EVERY_S:
            return 0
        self._polled_s = now
        return self.apply(self.fetch(timeout_ms))

    def fetch(self, timeout_ms: int = 0) -> list[Record]:
        """What arrived since the last call, not applied yet (a caller sharing the view with
        other threads applies it under its lock, not holding the lock while Kafka answers)."""
        return self._reader.poll(timeout_ms)

    def apply(self, records: list[Record]) -> int:
        for record in records:
            self._apply(record.key, record.value, record.timestamp)
        return len(records)

    def catch_up(self, timeout_s: float = 10.0) -> None:
        """Read until the topic's end as of now, so the view is at least that fresh."""
        for record in self._reader.read_to_end(stall_s=timeout_s, strict=False):
            self._apply(record.key, record.value, record.timestamp)

    def _apply(self, key: bytes | None, value: bytes | None, at_ms: int) -> None:
        if key is None:
            return
        name = key.decode("utf-8", "replace")
        label, version = parse_registry_key(name)
        if value is None:
            self.view.apply(name, None, at_ms)
            log.debug("registry: %s retired", name)
            return
        record = decode_announcement(value) if version else decode_class_record(value)
        if isinstance(record, Rejected):
            log.warning("registry: ignoring bad entry for %s: %s", name, record.detail)
            return
        if record.label != label or getattr(record, "version", version) != version:
            log.warning("registry: ignoring entry for %s under key %s", record.label, name)
            return
        self.view.apply(name, record, at_ms)

    def close(self) -> None:
        self._reader.close()


def read_registry(settings: CommonSettings) -> RegistryView:
    """The registry as of now, read to its end."""
    reader = RegistryReader.open(settings)
    try:
        reader.catch_up()
        return reader.view
    finally:
        reader.close()


def class_output(settings: CommonSettings, record: ClassRecord | None, label: str) -> Output:
    """The registry record of a class (`None`: its tombstone)."""
    return Output(
        settings.topics.registry, label.encode(), None if record is None else encode(record)
    )


def voter_records(
    view: RegistryView,
    wanted: dict[str, str],
    since_ms: int,
    forced: Mapping[str, ForcedPromotion | None] | None = None,
) -> dict[str, ClassRecord]:
    """Class records making each wanted version (class → version) the voter from `since_ms`
    (`forced`: class → the override its span records); classes whose latest span already
    names that version need none."""
    forced = forced or {}
    return {
        label: with_voter(record, label, version, since_ms, forced.get(label))
        for label, version in wanted.items()
        if (record := view.class_record(label)) is None or latest(record).version != version
    }


def claim_votes(
    settings: CommonSettings,
    records: dict[str, ClassRecord],
    write: Callable[[list[Output]], None],
    delay_s: float,
) -> dict[str, ClassRecord]:
    """Read back what `records` were written as; append again where a concurrent writer
    dropped our span. A class retired meanwhile is left retired. Returns what stands."""
    standing = dict(records)
    for attempt in range(WRITE_ATTEMPTS):
        view = read_registry(settings)
        lost = {
            label: ours.version
            for label, record in standing.items()
            if (now := view.class_record(label)) is not None
            and (ours := latest(record)) not in now.voting
            and latest(now).version != ours.version
        }
        if not lost:
            return standing
        if attempt == WRITE_ATTEMPTS - 1:
            raise RegistryError(f"class records of {sorted(lost)} keep being overwritten; retry")
        log.warning("registry: a concurrent write dropped our span for %s; again", sorted(lost))
        overrides = {label: latest(standing[label]).forced for label in lost}
        again = voter_records(view, lost, now_ms() + int(delay_s * 1000), overrides)
        write([class_output(settings, record, label) for label, record in again.items()])
        standing |= again
    return standing


def stale(announcement: Announcement, now_ms: int, heartbeat_s: float) -> bool:
    """A version whose process has missed three heartbeats: it stopped answering."""
    return now_ms - announcement.heartbeat_ms > STALE_HEARTBEATS * heartbeat_s * 1000


def wait_for_classifiers(
    settings: CommonSettings,
    labels: set[str],
    timeout_s: float | None,
    voting: bool = False,
    stop: threading.Event | None = None,
    waiting_for: Callable[[dict[str, str]], None] | None = None,
) -> None:
    """Block until every class in `labels` has announced itself and, if it has a class record,
    its latest voting span has started; with `voting`, also until each class votes (its class
    record names a voter whose process announced it: `not_voting`). TimeoutError names the
    classes still waited for and why; `timeout_s` None waits until `stop` is set.
    `waiting_for` is told what is still waited for after each read of the registry."""
    reader = RegistryReader.open(settings)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while waiting := not_ready(reader.view, labels, now_ms(), voting):
            if waiting_for is not None:
                waiting_for(waiting)
            if stop is not None and stop.is_set():
                return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"classifiers not ready after {timeout_s:.0f}s: {describe(waiting)}"
                )
            reader.poll(timeout_ms=300)
        if waiting_for is not None:
            waiting_for({})
    finally:
        reader.close()


def not_ready(
    view: RegistryView, labels: set[str], now: int, voting: bool = False
) -> dict[str, str]:
    """What `wait_for_classifiers` waits for: class → why it is not ready yet."""
    waiting = not_voting(view, labels, now) if voting else {}
    announced = view.announced_labels()
    for label in sorted(labels - waiting.keys()):
        record = view.class_record(label)
        if label not in announced:
            waiting[label] = "not announced"
        elif record is not None and (span := latest(record)).since_ms > now:
            waiting[label] = f"{span.version} votes from {when(span.since_ms)}"
    return waiting


def describe(waiting: dict[str, str]) -> str:
    """`a (not announced), b (votes from ...)`: the classes waited for, in one line."""
    return ", ".join(f"{label} ({why})" for label, why in sorted(waiting.items()))


def announcement_key(label: str, version: str) -> bytes:
    return registry_key(label, version).encode()


def write(settings: CommonSettings, outputs: list[Output]) -> None:
    """Write registry records outside any transaction (operator commands), each acknowledged."""
    producer = clients.producer(settings)
    try:
        for out in outputs:
            producer.send(out.topic, key=out.key, value=out.value).get(timeout=30)
    finally:
        clients.close_producer(producer)
