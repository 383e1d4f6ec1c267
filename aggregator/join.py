"""The keyed join: scores of one message, from many classifiers, into one decision.

A `JoinTable` holds the joins of one scores partition. A join is decided as soon as every
classifier the registry expects for that text has answered, or when its wall-clock timeout
passes (then `complete` is false and `missing` names the silent classifiers). After a decision
only a marker stays, for the dedupe horizon, so a late or duplicate score never yields a second
result; scores of texts older than the horizon that are not pending are dropped as stale.
Every change is recorded in `changes` for the changelog the service writes in its transaction.
Pure logic: no Kafka here, time is passed in.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from aggregator.decision import decide
from aggregator.registry import RegistryView
from schemas.models import JoinState, LabelRecord, Refusal, ScoreRecord


@dataclass(frozen=True, slots=True)
class Refused:
    """A text a classifier could not read: becomes exactly one dead-letter record."""

    id: str
    refusal: Refusal


Outcome = LabelRecord | Refused


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
        self.pending: dict[str, JoinState] = {}
        self.decided: dict[str, int] = {}
        self.changes: dict[str, JoinState | None] = {}
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
        if not self._missing(state):
            return [self._decide(state, now_ms)]
        self.pending[score.id] = state
        self.changes[score.id] = state
        return []

    def _merge(self, state: JoinState | None, score: ScoreRecord, now_ms: int) -> JoinState:
        if state is None:
            state = JoinState.model_construct(
                schema_version=1, id=score.id, text_timestamp_ms=score.text_timestamp_ms,
                first_seen_ms=now_ms, scores={}, shadow={}, versions={}, decided_at_ms=None,
            )
        known = {k: v for k, v in score.scores.items() if self.registry.knows(k)}
        self.counts["unknown_classifier_scores"] += len(score.scores) - len(known)
        duplicates = known.keys() & state.scores.keys()
        self.counts["duplicate_scores"] += len(duplicates)
        if not (known.keys() - duplicates) and not (score.shadow.keys() - state.shadow.keys()):
            return state
        # The first score of a classifier for a message wins: a duplicate changes nothing.
        return state.model_copy(
            update={
                "scores": known | state.scores,
                "shadow": score.shadow | state.shadow,
                "versions": score.versions | state.versions,
            }
        )

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
        ready = [s for s in self.pending.values() if not self._missing(s)]
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
            self.pending[message_id] = state

    def take_changes(self) -> dict[str, JoinState | None]:
        changes, self.changes = self.changes, {}
        return changes

    # -- decisions -----------------------------------------------------------------------
    def _missing(self, state: JoinState) -> list[str]:
        expected = self.registry.expected_for(state.text_timestamp_ms)
        return sorted(expected - state.scores.keys())

    def _decide(self, state: JoinState, now_ms: int) -> LabelRecord:
        expected = self.registry.expected_for(state.text_timestamp_ms)
        voting = {k: v for k, v in state.scores.items() if k in expected}
        shadow = dict(state.shadow)
        shadow.update({k: v for k, v in state.scores.items() if k not in expected})
        decision = decide(voting, self.threshold)
        missing = sorted(expected - voting.keys())
        self._mark_decided(state.id, now_ms)
        return LabelRecord.model_construct(
            id=state.id,
            label=decision.label,
            probability=decision.probability,
            scores=voting,
            complete=not missing,
            missing=missing,
            versions={k: state.versions.get(k, "") for k in voting},
            shadow_scores=shadow,
            text_timestamp_ms=state.text_timestamp_ms,
            decided_at_ms=now_ms,
            schema_version=1,
        )

    def _mark_decided(self, message_id: str, now_ms: int) -> None:
        self.pending.pop(message_id, None)
        self.decided[message_id] = now_ms
        self.changes[message_id] = JoinState.model_construct(
            schema_version=1, id=message_id, text_timestamp_ms=0, first_seen_ms=0, scores={},
            shadow={}, versions={}, decided_at_ms=now_ms,
        )
