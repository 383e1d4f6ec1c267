"""`ChangeloggedState`: one partition's state between a service and the runtime's changelog."""

from __future__ import annotations

from triage.core.runtime.state import ChangeloggedState


class _Table:
    def __init__(self) -> None:
        self.rows: dict[bytes, bytes] = {}
        self.changed: dict[bytes, bytes | None] = {}

    def put(self, key: bytes, value: bytes | None) -> None:
        self.changed[key] = value

    def restore(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            self.rows.pop(key, None)
        else:
            self.rows[key] = value

    def take(self) -> dict[bytes, bytes | None]:
        changed, self.changed = self.changed, {}
        return changed


def _state() -> ChangeloggedState[_Table]:
    return ChangeloggedState(_Table(), _Table.restore, _Table.take, lambda t: f"{len(t.rows)} rows")


def test_restores_records_in_order_and_describes_the_state() -> None:
    state = _state()
    for key, value in [(b"a", b"1"), (b"b", b"2"), (b"a", None)]:
        state.restore(key, value)
    assert state.state.rows == {b"b": b"2"} and str(state) == "1 rows"


def test_changes_taken_by_the_step_still_reach_the_changelog_once() -> None:
    state = _state()
    state.state.put(b"a", b"1")
    assert state.take_changes() == {b"a": b"1"}  # the step publishes them too
    state.state.put(b"b", None)
    assert state.changes() == {b"a": b"1", b"b": None}
    assert state.changes() == {}
