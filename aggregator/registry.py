"""The aggregator's view of the classifier registry: who votes, since when.

Built from the compacted registry topic (key: class name, value: Announcement, tombstone:
retired). A classifier is expected to answer for a text when it votes and started serving at or
before the text's timestamp, so a new class never holds older texts hostage.
"""

from __future__ import annotations

from schemas.models import Announcement, ClassifierMode


class RegistryView:
    def __init__(self) -> None:
        self._entries: dict[str, Announcement] = {}
        self.revision = 0
        self._cached_revision = -1
        self._voting: list[Announcement] = []
        self._all_voting: frozenset[str] = frozenset()
        self._latest_since = 0

    def apply(self, label: str, announcement: Announcement | None) -> None:
        """Apply one registry record; `None` is a tombstone."""
        if announcement is None:
            if self._entries.pop(label, None) is not None:
                self.revision += 1
            return
        previous = self._entries.get(label)
        self._entries[label] = announcement
        if previous is None or _membership(previous) != _membership(announcement):
            self.revision += 1

    def knows(self, label: str) -> bool:
        return label in self._entries

    def entries(self) -> dict[str, Announcement]:
        return dict(self._entries)

    def voting(self, label: str) -> bool:
        entry = self._entries.get(label)
        return entry is not None and entry.mode is ClassifierMode.VOTING

    def expected_for(self, text_timestamp_ms: int) -> frozenset[str]:
        """Voting classifiers that serve texts published at `text_timestamp_ms`.

        When none had started yet (a text older than every classifier), every voting
        classifier is expected, so old texts are still labelled rather than left undecided.
        """
        if self._cached_revision != self.revision:
            self._refresh()
        if text_timestamp_ms >= self._latest_since:
            return self._all_voting  # the common case: every voting classifier was serving
        serving = frozenset(a.label for a in self._voting if a.since_ms <= text_timestamp_ms)
        return serving or self._all_voting

    def _refresh(self) -> None:
        self._voting = [a for a in self._entries.values() if a.mode is ClassifierMode.VOTING]
        self._all_voting = frozenset(a.label for a in self._voting)
        self._latest_since = max((a.since_ms for a in self._voting), default=0)
        self._cached_revision = self.revision


def _membership(a: Announcement) -> tuple[str, str, int]:
    return (a.version, a.mode.value, a.since_ms)
