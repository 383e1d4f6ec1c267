"""The aggregator's view of the classifier registry: which version of which class votes, when.

Built from the compacted registry topic, which holds two kinds of records. Key `<label>`: the
class record (`ClassRecord`), the operators' truth of which version votes from when; a
tombstone retires the class. Key `<label>@<version>`: a running version's announcement and
heartbeat; a tombstone retires that version. For a text published at `t` the voting set is
every class with a voting span starting at or before `t`, each with the version of its last
such span; a text older than every class expects every class's current voter, so old texts are
still labelled rather than left undecided. A score votes only when its version is that voting
version; any other score of a known, unretired class is a shadow score. A retired class (or
version) stays retired for every announcement that started serving before its retirement, so a
process still running after `triage retire` cannot bring it back with its heartbeats; one
started afterwards (a later `since_ms`) or a new class record adds it again. Pure logic: no
Kafka here.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field

from triage.core.runtime.clock import when
from triage.schemas.models import Announcement, ClassRecord, ForcedPromotion, VotingSpan

Record = Announcement | ClassRecord | None


@dataclass(frozen=True, slots=True)
class Voters:
    """The voting set of a text: class → voting version, and the `label@version` keys."""

    versions: Mapping[str, str] = field(default_factory=dict)
    keys: frozenset[str] = frozenset()

    @classmethod
    def of(cls, versions: dict[str, str]) -> Voters:
        return cls(versions, frozenset(f"{label}@{v}" for label, v in versions.items()))


def voter_at(record: ClassRecord, t_ms: int) -> VotingSpan | None:
    """The span in force for a text published at `t_ms` (the last one starting by then)."""
    current = None
    for span in record.voting:
        if span.since_ms <= t_ms:
            current = span
    return current


def latest(record: ClassRecord) -> VotingSpan:
    """The last span: the current voter, or the one scheduled to take over."""
    return record.voting[-1]


def with_voter(
    record: ClassRecord | None,
    label: str,
    version: str,
    since_ms: int,
    forced: ForcedPromotion | None = None,
) -> ClassRecord:
    """`record` with `version` voting from `since_ms` on (a new class when `record` is None)."""
    span = VotingSpan(version=version, since_ms=since_ms, forced=forced)
    spans = [*(record.voting if record else []), span]
    return ClassRecord(label=label, voting=spans)


class RegistryView:
    def __init__(self) -> None:
        self._classes: dict[str, ClassRecord] = {}
        self._announcements: dict[tuple[str, str], Announcement] = {}
        self._retired_classes: dict[str, int] = {}  # label → when its class record was retired
        self._retired_versions: dict[tuple[str, str], int] = {}
        # Bumped by every change but a heartbeat: pending joins are re-checked, caches rebuilt.
        self.revision = 0
        self._cached_revision = -1
        self._all = Voters()
        self._latest_since = 0
        self._bounds: list[int] = []
        self._by_interval: dict[int, Voters] = {}
        self._known: frozenset[str] = frozenset()
        self._live: frozenset[str] = frozenset()

    # -- applying registry records ---------------------------------------------------------
    def apply(self, key: str, record: Record, at_ms: int = 0) -> None:
        """Apply one registry record; `None` is a tombstone, written at `at_ms`."""
        label, at, version = key.partition("@")
        if at:
            if record is None:
                self._retire_version(label, version, at_ms)
            elif isinstance(record, Announcement):
                self._announce(record)
        elif record is None:
            self._retire_class(label, at_ms)
        elif isinstance(record, ClassRecord):
            self._set_class(record)

    def _set_class(self, record: ClassRecord) -> None:
        spans = sorted(record.voting, key=lambda s: s.since_ms)  # stable: last of a tie wins
        record = record.model_copy(update={"voting": spans})
        self._retired_classes.pop(record.label, None)
        if self._classes.get(record.label) != record:
            self._classes[record.label] = record
            self.revision += 1

    def _retire_class(self, label: str, at_ms: int) -> None:
        self._classes.pop(label, None)
        self._retired_classes[label] = at_ms
        self.revision += 1

    def _retire_version(self, label: str, version: str, at_ms: int) -> None:
        self._announcements.pop((label, version), None)
        self._retired_versions[(label, version)] = at_ms
        self.revision += 1

    def _announce(self, a: Announcement) -> None:
        key = (a.label, a.version)
        changed = key not in self._announcements
        self._announcements[key] = a
        # Started serving after its retirement: a new process adds it again; a heartbeat
        # of one that was already running when it was retired does not.
        if self._retired_versions.get(key, a.since_ms) < a.since_ms:
            del self._retired_versions[key]
            changed = True
        if self._retired_classes.get(a.label, a.since_ms) < a.since_ms:
            del self._retired_classes[a.label]
            changed = True
        if changed:
            self.revision += 1

    # -- questions the join asks (hot path) ------------------------------------------------
    def voters_for(self, text_timestamp_ms: int) -> Voters:
        """The classes that vote on a text published at `text_timestamp_ms`, with versions."""
        if self._cached_revision != self.revision:
            self._refresh()
        if text_timestamp_ms >= self._latest_since:
            return self._all  # the common case: every span had started
        interval = bisect_right(self._bounds, text_timestamp_ms)
        voters = self._by_interval.get(interval)
        if voters is None:
            voters = self._by_interval[interval] = self._voters_at(text_timestamp_ms)
        return voters

    def knows(self, label: str) -> bool:
        """A class with a record, a running version or a retirement: not an unknown name."""
        if self._cached_revision != self.revision:
            self._refresh()
        return label in self._known

    def live(self, label: str) -> bool:
        """Known and not retired: its scores may vote or be shadow scores."""
        if self._cached_revision != self.revision:
            self._refresh()
        return label in self._live

    def shadows(self, label: str, version: str) -> bool:
        """Whether a non-voting score of `label@version` belongs in a result's shadow scores."""
        return self.live(label) and (label, version) not in self._retired_versions

    def _refresh(self) -> None:
        current = {label: latest(r).version for label, r in self._classes.items()}
        self._all = Voters.of(current)
        self._bounds = sorted({s.since_ms for r in self._classes.values() for s in r.voting})
        self._latest_since = self._bounds[-1] if self._bounds else 0
        self._by_interval = {}
        announced = {label for label, _ in self._announcements}
        self._known = frozenset(self._classes.keys() | announced | self._retired_classes.keys())
        self._live = self._known - self._retired_classes.keys()
        self._cached_revision = self.revision

    def _voters_at(self, t_ms: int) -> Voters:
        serving = {}
        for label, record in self._classes.items():
            span = voter_at(record, t_ms)
            if span is not None:
                serving[label] = span.version
        return Voters.of(serving) if serving else self._all

    # -- what operators and classifier processes read --------------------------------------
    def class_record(self, label: str) -> ClassRecord | None:
        return self._classes.get(label)

    def classes(self) -> dict[str, ClassRecord]:
        return dict(self._classes)

    def announcement(self, label: str, version: str) -> Announcement | None:
        """The announcement of a running, unretired version."""
        found = self._announcements.get((label, version))
        return None if found is None or self.retired(label, version) else found

    def announcements(self) -> dict[tuple[str, str], Announcement]:
        """Every announcement, retired ones included (a process still running after retire)."""
        return dict(self._announcements)

    def retired(self, label: str, version: str | None = None) -> bool:
        return label in self._retired_classes or (label, version) in self._retired_versions

    def announced_labels(self) -> set[str]:
        return {
            label for (label, version) in self._announcements if not self.retired(label, version)
        }


def not_voting(view: RegistryView, labels: set[str], now_ms: int) -> dict[str, str]:
    """Each of `labels` that would not vote on a text published at `now_ms`, with why: a
    class votes once its class record has a span in force and that span's version is announced
    by a running process. Pure: what readiness (`/readyz`, `triage ready`) is made of."""
    announced = view.announced_labels()
    missing = {}
    for label in sorted(labels):
        record = view.class_record(label)
        if view.retired(label):
            missing[label] = "retired"
        elif record is None:
            missing[label] = "no voting span yet" if label in announced else "not announced"
        elif (span := voter_at(record, now_ms)) is None:
            missing[label] = f"votes from {when(record.voting[0].since_ms)}"
        elif view.announcement(label, span.version) is None:
            missing[label] = f"voter {span.version} not announced"
    return missing
