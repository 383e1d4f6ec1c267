"""Stalls, named while they happen: which input partition stopped moving, and why.

Pure logic: no Kafka here, time is passed in. Every few seconds the run loop's watcher hands
`StallWatch.observe` each input partition's offsets: the service's position, the partition's
last stable offset (what a `read_committed` reader may read up to) and its end (the high
watermark). Three conditions stop a partition, each timed from the check that first saw it at
the offset it is stuck on:

- `unread`: committed records wait beyond the position, and the position does not move (the
  service is stuck, or its fetches go nowhere);
- `held`: the service has read everything committed, but records beyond it sit in a
  transaction that stays open (the last stable offset does not move while the end is past it);
- `commit`: the batch the service read from the partition waits in its own transaction commit.

A condition that lasted `after_s` is a `Stall`: logged, exported as `triage_stalled_seconds`,
and acted on by the watcher (a new session, or the abort of a hung transaction).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from triage.core.records import Partition

Reason = Literal["unread", "held", "commit"]

WHAT: dict[Reason, str] = {
    "unread": "committed records wait unread at offset {offset}",
    "held": "an open transaction holds the partition at offset {offset}",
    "commit": "its batch waits in a transaction commit (from offset {offset})",
}


@dataclass(frozen=True)
class Offsets:
    """One input partition at one check: `position` is the next offset the service reads
    (None before it has one); `stable` the last stable offset; `end` the high watermark."""

    position: int | None
    stable: int
    end: int


@dataclass(frozen=True)
class Stall:
    topic: str
    partition: int
    reason: Reason
    offset: int
    seconds: float

    def describe(self) -> str:
        what = WHAT[self.reason].format(offset=self.offset)
        return f"{self.topic}[{self.partition}] stalled {self.seconds:.0f}s: {what}"


class StallWatch:
    """Times each partition's stop conditions across checks (see the module's docstring)."""

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        # (partition, reason) → (offset it is stuck at, since when)
        self._since: dict[tuple[Partition, Reason], tuple[int, int]] = {}

    def observe(
        self,
        now_ms: int,
        offsets: Mapping[Partition, Offsets],
        committing: Mapping[Partition, int] | None = None,
        committing_since_ms: int | None = None,
    ) -> list[Stall]:
        """The stalls as of `now_ms`, given each input partition's offsets and, while a commit
        is in flight, the first offset of each partition in it and when it began."""
        holding: dict[tuple[Partition, Reason], tuple[int, int]] = {}
        for tp, o in offsets.items():
            for reason, offset in _conditions(o):
                holding[(tp, reason)] = (offset, now_ms)
        if committing_since_ms is not None:
            for tp, first in (committing or {}).items():
                holding[(tp, "commit")] = (first, committing_since_ms)
        for key, (offset, since) in holding.items():
            known = self._since.get(key)
            if key[1] != "commit" and known is not None and known[0] == offset:
                since = known[1]
            holding[key] = (offset, since)
        self._since = holding
        return self.stalls(now_ms)

    def reset(self) -> None:
        """Start timing afresh (a new session: its conditions are its own)."""
        self._since = {}

    def stalls(self, now_ms: int) -> list[Stall]:
        found = [
            Stall(tp.topic, tp.partition, reason, offset, (now_ms - since) / 1000)
            for (tp, reason), (offset, since) in self._since.items()
        ]
        return sorted(
            (s for s in found if s.seconds >= self.after_s),
            key=lambda s: (s.topic, s.partition, s.reason),
        )


def _conditions(o: Offsets) -> list[tuple[Reason, int]]:
    found: list[tuple[Reason, int]] = []
    if o.position is not None and o.position < o.stable:
        found.append(("unread", o.position))
    if o.stable < o.end and (o.position is None or o.position >= o.stable):
        found.append(("held", o.stable))
    return found
