"""A service's per-partition state as the runtime's `PartitionState`: changelog bytes in and out.

A stateful service keeps one object per input partition (the aggregator a join table, the
monitor a correction join) and says only how that object reads a changelog record, how it
hands over what changed as changelog records, and how it describes itself for the assignment's
log line. `ChangeloggedState` is the one adapter between such an object and the runtime's
hooks: the runtime replays the changelog into `restore` on assignment and writes `changes()`
in each batch's transaction. A step that also publishes its changes elsewhere (the monitor's
quality summaries) takes them itself with `take_changes`; they still go to the changelog with
the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")

Changes = Mapping[bytes, bytes | None]


class ChangeloggedState(Generic[T]):
    """`state` of one partition, restored from and written to the same changelog partition."""

    def __init__(
        self,
        state: T,
        restore: Callable[[T, bytes, bytes | None], None],
        take: Callable[[T], Changes],
        describe: Callable[[T], str],
    ) -> None:
        """`restore` applies one changelog record to `state` (None: a tombstone); `take`
        returns what changed in it since its last call, and forgets it."""
        self.state = state
        self._restore, self._take, self._describe = restore, take, describe
        self._taken: dict[bytes, bytes | None] = {}  # taken by the step, not written yet

    def restore(self, key: bytes, value: bytes | None) -> None:
        self._restore(self.state, key, value)

    def take_changes(self) -> Changes:
        """What changed since the last call, for a step that also publishes it; the runtime
        still writes it to the changelog with the batch."""
        changes = self._take(self.state)
        self._taken.update(changes)
        return changes

    def changes(self) -> dict[bytes, bytes | None]:
        """Everything changed since the last changelog write (the runtime's hook)."""
        self.take_changes()
        changes, self._taken = self._taken, {}
        return changes

    def __str__(self) -> str:
        return self._describe(self.state)
