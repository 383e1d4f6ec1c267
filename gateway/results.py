"""What the gateway knows of outcomes: recent results and refusals by message id, and who waits.

Every gateway instance reads every committed result and dead letter (`gateway/follower.py`)
and keeps the most recent `capacity` of them here, oldest out first, so a request answered by
any instance, a retry, or a poll of `GET /v1/results/{id}` finds its outcome whichever partition
it landed on. Memory is bounded by `capacity`, not by traffic. Waiters are opaque: the caller
registers one for an id and gets it back from `add` when that id's outcome arrives. Pure logic:
no Kafka, no threads, no clock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

from triage.schemas.models import DeadLetter, LabelRecord

W = TypeVar("W")


@dataclass(frozen=True, slots=True)
class TextOutcome:
    """A text's end: its labelled result, or the dead letter that refused it."""

    result: LabelRecord | None = None
    refused: DeadLetter | None = None

    @property
    def id(self) -> str:
        if self.result is not None:
            return self.result.id
        assert self.refused is not None and self.refused.id is not None
        return self.refused.id


class ResultIndex(Generic[W]):
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._outcomes: OrderedDict[str, TextOutcome] = OrderedDict()
        self._waiting: dict[str, list[W]] = {}

    def get(self, message_id: str) -> TextOutcome | None:
        return self._outcomes.get(message_id)

    def add(self, outcome: TextOutcome) -> list[W]:
        """Keep `outcome` (the first one of an id stands); returns the waiters to wake."""
        message_id = outcome.id
        if message_id not in self._outcomes:
            self._outcomes[message_id] = outcome
            if len(self._outcomes) > self.capacity:
                self._outcomes.popitem(last=False)
        return self._waiting.pop(message_id, [])

    def wait(self, message_id: str, waiter: W) -> TextOutcome | None:
        """The outcome if it is known; else `waiter` is registered for it and None returned."""
        known = self._outcomes.get(message_id)
        if known is None:
            self._waiting.setdefault(message_id, []).append(waiter)
        return known

    def forget(self, message_id: str, waiter: W) -> None:
        """`waiter` gave up (its request timed out)."""
        waiters = self._waiting.get(message_id, [])
        if waiter in waiters:
            waiters.remove(waiter)
        if not waiters:
            self._waiting.pop(message_id, None)

    def waiting(self, message_id: str) -> bool:
        return message_id in self._waiting

    def recent(self, limit: int) -> list[LabelRecord]:
        """The last `limit` results, newest first (refusals left out)."""
        found: list[LabelRecord] = []
        for outcome in reversed(self._outcomes.values()):
            if outcome.result is not None:
                found.append(outcome.result)
                if len(found) == limit:
                    break
        return found

    def __len__(self) -> int:
        return len(self._outcomes)
