"""The monitor's join of results with corrections by message id, for one partition.

Pure logic, no Kafka, time passed in. Results wait for their correction up to the horizon;
a correction that arrives before its result waits for it up to `wait_ms`. A joined pair is
counted once in the partition's `QualityBook`, and the result stays (marked corrected) until the
horizon, so a second correction of it is refused instead of counted twice. Every change is
kept for the changelog (`take_changes`), from which `restore` rebuilds the same table after a
crash. Outcomes a caller must act on are returned as data:

| input | outcome |
| --- | --- |
| a correction of a result we hold | `Counted`: every voting class's counts updated |
| a correction before its result | `Held`; `Counted` when the result arrives within the wait |
| a held correction whose result never came within the wait | `RefusedCorrection` `unknown_id` |
| a correction of a result past the horizon, or never seen | held, then `unknown_id` |
| a second correction of the same id (held, counted) | `RefusedCorrection` `duplicate_correction` |

After a `duplicate_correction` the first correction's counts stand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from triage.core.model.quality import NONE_LABEL, QualityBook, Truth
from triage.schemas.codec import Reason, encode
from triage.schemas.models import CorrectionRecord, LabelRecord, MonitorEntry, QualityCounts

RESULT, WAITING, COUNTS = b"r:", b"c:", b"\xffq:"


@dataclass(frozen=True, slots=True)
class Counted:
    truth: Truth


@dataclass(frozen=True, slots=True)
class Held:
    id: str


@dataclass(frozen=True, slots=True)
class RefusedCorrection:
    """A correction to dead-letter; `held` is its entry when it was held (no record at hand)."""

    id: str
    reason: str
    detail: str
    held: MonitorEntry | None = None


CorrectionOutcome = Counted | Held | RefusedCorrection


@dataclass
class CorrectionJoin:
    partition: int
    horizon_ms: int
    wait_ms: int
    window_ms: int
    # Both in arrival order (restored in changelog order), so expiry looks at the front only.
    results: dict[str, MonitorEntry] = field(default_factory=dict)
    waiting: dict[str, MonitorEntry] = field(default_factory=dict)
    book: QualityBook = field(init=False)
    _changes: dict[bytes, bytes | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.book = QualityBook(self.partition, self.window_ms)

    # -- input -----------------------------------------------------------------------------
    def add_result(self, result: LabelRecord, now_ms: int) -> list[CorrectionOutcome]:
        self.book.add_result(result.scores, result.versions, now_ms)
        held = self.results.get(result.id)
        if held is not None and held.corrected is not None:
            return []  # a repeated result of a corrected id: its truth was counted once
        entry = MonitorEntry(
            id=result.id,
            seen_ms=now_ms,
            label=result.label,
            scores=result.scores,
            versions=result.versions,
        )
        waiting = self.waiting.pop(result.id, None)
        if waiting is not None and waiting.correction is not None:
            self._changes[WAITING + result.id.encode()] = None
            return self._join(entry, waiting.correction, now_ms)
        self._put(self.results, RESULT, entry)
        return []

    def add_correction(
        self, correction: CorrectionRecord, source: str, now_ms: int
    ) -> list[CorrectionOutcome]:
        message_id = correction.id
        entry = self.results.get(message_id)
        first = entry.corrected if entry is not None else None
        if first is None and message_id in self.waiting:
            first = _named(self.waiting[message_id].correction)
        if first is not None:
            detail = f"{message_id} was corrected to {first} already; the first correction stands"
            return [RefusedCorrection(message_id, Reason.DUPLICATE_CORRECTION, detail)]
        if entry is None:
            held = MonitorEntry(id=message_id, seen_ms=now_ms, correction=correction, source=source)
            self._put(self.waiting, WAITING, held)
            return [Held(message_id)]
        return self._join(entry, correction, now_ms)

    def _join(self, entry: MonitorEntry, correction: CorrectionRecord, now_ms: int) -> list:
        truth = Truth(entry.id, entry.label, correction.label, entry.scores, entry.versions)
        self.book.add_truth(truth, now_ms)
        corrected = entry.model_copy(update={"corrected": _named(correction)})
        self._put(self.results, RESULT, corrected)
        return [Counted(truth)]

    # -- time ------------------------------------------------------------------------------
    def expire(self, now_ms: int) -> list[CorrectionOutcome]:
        """Results past the horizon leave; held corrections past the wait are refused."""
        for entry in _expired(self.results, now_ms - self.horizon_ms):
            self._changes[RESULT + entry.id.encode()] = None
        refused: list[CorrectionOutcome] = []
        for entry in _expired(self.waiting, now_ms - self.wait_ms):
            self._changes[WAITING + entry.id.encode()] = None
            detail = (
                f"no result for {entry.id} within {self.wait_ms / 1000:g}s of its correction"
                " (never published, refused, or older than the horizon)"
            )
            refused.append(RefusedCorrection(entry.id, Reason.UNKNOWN_ID, detail, entry))
        self.book.expire(now_ms)
        return refused

    # -- changelog -------------------------------------------------------------------------
    def _put(self, where: dict[str, MonitorEntry], prefix: bytes, entry: MonitorEntry) -> None:
        where[entry.id] = entry
        self._changes[prefix + entry.id.encode()] = encode(entry)

    def take_changes(self) -> dict[bytes, bytes | None]:
        """What changed since the last call, as changelog records (None: a tombstone)."""
        for counts in self.book.take_changes():
            self._changes[counts_key(counts.label, counts.version)] = encode(counts)
        changes, self._changes = self._changes, {}
        return changes

    def restore(self, key: bytes, value: bytes | None) -> None:
        if key.startswith(COUNTS):
            if value is not None:
                self.book.restore(QualityCounts.model_validate_json(value))
            return
        where = self.results if key.startswith(RESULT) else self.waiting
        message_id = key[len(RESULT) :].decode()
        if value is None:
            where.pop(message_id, None)
        else:  # (an update keeps the entry's place: the order of first arrival)
            where[message_id] = MonitorEntry.model_validate_json(value)


def counts_key(label: str, version: str) -> bytes:
    return COUNTS + f"{label}@{version}".encode()


def _named(correction: CorrectionRecord | None) -> str:
    return NONE_LABEL if correction is None or correction.label is None else correction.label


def _expired(entries: dict[str, MonitorEntry], before_ms: int) -> list[MonitorEntry]:
    gone = []
    while entries:
        first = next(iter(entries.values()))
        if first.seen_ms > before_ms:
            break
        gone.append(entries.pop(first.id))
    return gone
