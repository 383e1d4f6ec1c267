"""The keyed join: scores of one message, from many classifiers, into one decision.

A `JoinTable` holds the joins of one scores partition. A join keeps every score it receives
under `<label>@<version>`, and is decided as soon as every voter the registry names for that
text (class and version, `RegistryView.voters_for`) has answered, or when its wall-clock
timeout passes (then `complete` is false and `missing` names the silent classes). Which scores
vote is settled only at the decision, from the registry as it is then: a score whose version is
the class's voting version votes, any other score of a live class is a shadow score, and a
retired class is named nowhere. So a promote, a version running beside the voter, or a retire
while joins are pending all come out right, also after a changelog round trip. After a decision
only a marker stays, for the dedupe horizon, so a late or duplicate score never yields a second
result; scores of texts older than the horizon that are not pending are dropped as stale.
Every change is recorded in `changes` for the changelog the service writes in its transaction.
Pure logic: no Kafka here, time is passed in.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from aggregator.decision import decide
from schemas.models import JoinState, LabelRecord, Refusal, ScoreRecord
from triage.registry.view import RegistryView, Voters


@dataclass(frozen=True, slots=True)
class Refused:
    """A text a classifier could not read: becomes exactly one dead-letter record."""

    id: str
    refusal: Refusal


Outcome = LabelRecord | Refused


@dataclass(slots=True)
class Join:
    """A pending join in memory (a plain slotted object: cheaper than a model on the hot path)."""

    id: str
    text_timestamp_ms: int
    first_seen_ms: int
    scores: dict[str, float]  # `<label>@<version>` → probability, every score received

    def to_state(self) -> JoinState:
        return JoinState(
            id=self.id,
            text_timestamp_ms=self.text_timestamp_ms,
            first_seen_ms=self.first_seen_ms,
            scores=self.scores,
        )

    @classmethod
    def from_state(cls, state: JoinState) -> Join:
        return cls(state.id, state.text_timestamp_ms, state.first_seen_ms, dict(state.scores))


class JoinTable:
    def __init__(
        self,
        registry: RegistryView,
        timeout_ms: int,
        horizon_ms: int,
        threshold: float = 0.0,
    ) -> None:
        self.registry = registry
        self.timeout_ms = timeout_ms
        self.horizon_ms = horizon_ms
        self.threshold = threshold
        self.pending: dict[str, Join] = {}
        self.decided: dict[str, int] = {}
        # message id → pending join, decision time (int) or None (forgotten), since last flush
        self.changes: dict[str, Join | int | None] = {}
        self.counts: Counter[str] = Counter()

    # -- input ---------------------------------------------------------------------------
    def add(self, score: ScoreRecord, now_ms: int) -> list[Outcome]:
        if score.id in self.decided:
            self.counts["late_scores"] += 1
            return []
        state = self.pending.get(score.id)
        if state is None and score.text_timestamp_ms < now_ms - self.horizon_ms:
            self.counts["stale_scores"] += 1
            return []
        if score.refusal is not None:
            self._mark_decided(score.id, now_ms)
            return [Refused(score.id, score.refusal)]
        state = self._merge(state, score, now_ms)
        if not self._incomplete(state):
            return [self._decide(state, now_ms)]
        self.pending[score.id] = state
        self.changes[score.id] = state
        return []

    def _merge(self, state: Join | None, score: ScoreRecord, now_ms: int) -> Join:
        if state is None:
            state = Join(score.id, score.text_timestamp_ms, now_ms, {})
        registry = self.registry
        versions = score.versions
        # The first score of a classifier version for a message wins: a duplicate changes nothing.
        for label, probability in score.scores.items():
            if not registry.live(label):
                reason = "retired_scores" if registry.knows(label) else "unknown_classifier_scores"
                self.counts[reason] += 1
                continue
            key = f"{label}@{versions.get(label, '')}"
            if key in state.scores:
                self.counts["duplicate_scores"] += 1
            else:
                state.scores[key] = probability
        return state

    # -- clocks and registry changes -----------------------------------------------------
    def expire(self, now_ms: int) -> list[Outcome]:
        """Decide joins whose timeout passed; forget decisions older than the horizon."""
        outcomes: list[Outcome] = []
        deadline = now_ms - self.timeout_ms
        while self.pending:
            state = next(iter(self.pending.values()))
            if state.first_seen_ms > deadline:
                break
            self.counts["join_timeouts"] += 1
            outcomes.append(self._decide(state, now_ms))
        forget_before = now_ms - self.horizon_ms
        while self.decided:
            message_id, decided_at = next(iter(self.decided.items()))
            if decided_at > forget_before:
                break
            del self.decided[message_id]
            self.changes[message_id] = None
        return outcomes

    def recheck(self, now_ms: int) -> list[Outcome]:
        """After a registry change (e.g. a retired class), decide joins now complete."""
        ready = [s for s in self.pending.values() if not self._incomplete(s)]
        return [self._decide(state, now_ms) for state in ready]

    # -- changelog -----------------------------------------------------------------------
    def restore(self, message_id: str, state: JoinState | None) -> None:
        """Replay one changelog record (in changelog order) after a restart or rebalance."""
        self.pending.pop(message_id, None)
        self.decided.pop(message_id, None)
        if state is None:
            return
        if state.decided_at_ms is not None:
            self.decided[message_id] = state.decided_at_ms
        else:
            self.pending[message_id] = Join.from_state(state)

    def take_changes(self) -> dict[str, JoinState | None]:
        """Changelog records since the last call: pending state, decision marker or tombstone."""
        changes, self.changes = self.changes, {}
        return {message_id: _as_state(message_id, change) for message_id, change in changes.items()}

    # -- decisions -----------------------------------------------------------------------
    def _incomplete(self, state: Join) -> bool:
        voters = self.registry.voters_for(state.text_timestamp_ms)
        return not state.scores.keys() >= voters.keys

    def _decide(self, state: Join, now_ms: int) -> LabelRecord:
        voters = self.registry.voters_for(state.text_timestamp_ms)
        votes, shadow = _route(state.scores, voters, self.registry)
        decision = decide(votes, self.threshold)
        missing = sorted(voters.versions.keys() - votes.keys())
        self._mark_decided(state.id, now_ms)
        return LabelRecord.model_construct(
            id=state.id,
            label=decision.label,
            probability=decision.probability,
            scores=votes,
            complete=not missing,
            missing=missing,
            versions={label: voters.versions[label] for label in votes},
            shadow_scores=shadow,
            text_timestamp_ms=state.text_timestamp_ms,
            decided_at_ms=now_ms,
            schema_version=1,
        )

    def _mark_decided(self, message_id: str, now_ms: int) -> None:
        self.pending.pop(message_id, None)
        self.decided[message_id] = now_ms
        self.changes[message_id] = now_ms


def _as_state(message_id: str, change: Join | int | None) -> JoinState | None:
    if change is None:
        return None
    if isinstance(change, Join):
        return change.to_state()
    return JoinState.model_construct(
        schema_version=1,
        id=message_id,
        text_timestamp_ms=0,
        first_seen_ms=0,
        scores={},
        decided_at_ms=change,
    )


def _route(
    scores: dict[str, float], voters: Voters, registry: RegistryView
) -> tuple[dict[str, float], dict[str, float]]:
    """Split a join's scores into votes (class → probability) and shadow scores (by key)."""
    votes: dict[str, float] = {}
    shadow: dict[str, float] = {}
    for key, probability in scores.items():
        if key in voters.keys:
            votes[key.partition("@")[0]] = probability
        else:
            label, _, version = key.partition("@")
            if registry.shadows(label, version):
                shadow[key] = probability
    return votes, shadow
