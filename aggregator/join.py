"""The keyed join: scores of one message, from many classifiers, into one decision.

A `JoinTable` holds the joins of one scores partition. A join keeps every score it receives
under `<label>@<version>`, and is decided as soon as every voter the registry names for that
text (class and version, `RegistryView.voters_for`) has answered, or when its wall-clock
timeout passes (then `complete` is false and `missing` names the silent classes). Which scores
vote is settled only at the decision, from the registry as it is then: a score whose version is
the class's voting version votes, any other score of a live class is a shadow score, and a
retired class is named nowhere. So a promote, a version running beside the voter, or a retire
while joins are pending all come out right, also after a changelog round trip.

What stays after a decision is only what can still be needed under exactly-once:
- a complete decision can get no more votes (each voter answered, once): it goes into the
  `DoneIndex`, 32 bytes, for the retry window, so a re-published identical text stays one
  result and a lagging shadow score is dropped;
- a decision with voters `missing` (a timeout, a refusal) keeps a `Marker` until each missing
  voter's late score has arrived (then it moves to the index) or the dedupe horizon passes.
Every score carries the fingerprint of the text it scored: a different text under an id already
seen (pending or decided) never joins; it becomes one `duplicate_id` dead letter naming the
first occurrence. Scores of texts older than the horizon that are not pending are dropped as
stale; a join that holds no voting score when it times out (shadow scores of a text decided
before, or whose voters are down) is dropped, not decided, and counted. Every change is
recorded for the changelog the service writes in its transaction.
Pure logic: no Kafka here, time is passed in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from triage.aggregator.retry_window import DoneIndex, fingerprint_int, source_int, source_text
from triage.core.model.decision import decide
from triage.core.registry.view import RegistryView, Voters
from triage.schemas.codec import Reason
from triage.schemas.models import DecidedBlock, JoinState, LabelRecord, Refusal, ScoreRecord


@dataclass(frozen=True, slots=True)
class RefusedByClassifier:
    """A text a classifier could not read: becomes exactly one dead-letter record."""

    id: str
    refusal: Refusal


@dataclass(frozen=True, slots=True)
class Conflict:
    """Another text under an id already seen: one dead letter, built from the score record."""

    id: str
    detail: str
    reason: str = Reason.DUPLICATE_ID


JoinOutcome = LabelRecord | RefusedByClassifier | Conflict


@dataclass(slots=True)
class Join:
    """A pending join in memory (a plain slotted object: cheaper than a model on the hot path)."""

    id: str
    text_timestamp_ms: int
    first_seen_ms: int
    scores: dict[str, float]  # `<label>@<version>` → probability, every score received
    fingerprint: str | None = None
    source: str | None = None
    conflicts: list[str] = field(default_factory=list)
    logged: bool = False  # has a changelog record (a tombstone must remove it)
    # The latest Kafka timestamps of the score records that joined, and of the features they
    # were computed from: the result's `scored_at_ms` and `encoded_at_ms`.
    scored_ms: int | None = None
    encoded_ms: int | None = None

    def to_state(self) -> JoinState:
        return JoinState(
            id=self.id,
            text_timestamp_ms=self.text_timestamp_ms,
            first_seen_ms=self.first_seen_ms,
            scores=self.scores,
            fingerprint=self.fingerprint,
            source=self.source,
            conflicts=self.conflicts,
            scored_at_ms=self.scored_ms,
            encoded_at_ms=self.encoded_ms,
        )

    @classmethod
    def from_state(cls, state: JoinState) -> Join:
        return cls(
            state.id,
            state.text_timestamp_ms,
            state.first_seen_ms,
            dict(state.scores),
            state.fingerprint,
            state.source,
            list(state.conflicts),
            logged=True,
            scored_ms=state.scored_at_ms,
            encoded_ms=state.encoded_at_ms,
        )


@dataclass(slots=True)
class Marker:
    """A decision some voters have not answered yet: their late scores must not start a join.
    `missing` None (a marker written before voters were tracked): every score is late."""

    decided_at_ms: int
    fingerprint: str | None
    source: str | None
    missing: set[str] | None
    conflicts: list[str]

    def to_state(self, message_id: str) -> JoinState:
        return JoinState.model_construct(
            schema_version=1,
            id=message_id,
            text_timestamp_ms=0,
            first_seen_ms=0,
            scores={},
            decided_at_ms=self.decided_at_ms,
            fingerprint=self.fingerprint,
            source=self.source,
            missing=None if self.missing is None else sorted(self.missing),
            conflicts=self.conflicts,
        )


class JoinTable:
    def __init__(
        self,
        registry: RegistryView,
        timeout_ms: int,
        horizon_ms: int,
        threshold: float = 0.0,
        retry_window_ms: int | None = None,
    ) -> None:
        self.registry = registry
        self.timeout_ms = timeout_ms
        self.horizon_ms = horizon_ms
        self.threshold = threshold
        self.pending: dict[str, Join] = {}
        self.decided: dict[str, Marker] = {}  # decisions still missing a voter's score
        self.done = DoneIndex(horizon_ms if retry_window_ms is None else retry_window_ms)
        # message id → pending join, marker or None (tombstone), since the last flush; block
        # keys (bytes) → None when a block of the retry window expires
        self.changes: dict[str | bytes, Join | Marker | None] = {}
        self.counts: Counter[str] = Counter()

    # -- input ---------------------------------------------------------------------------
    def add(
        self, score: ScoreRecord, now_ms: int, produced_ms: int | None = None
    ) -> list[JoinOutcome]:
        """Join one score record; `produced_ms` is its Kafka timestamp (when it was scored)."""
        message_id, fingerprint = score.id, score.fingerprint
        marker = self.decided.get(message_id)
        if marker is not None:
            if _differs(fingerprint, marker.fingerprint):
                return self._conflict(score, marker.source, marker.conflicts, marker, now_ms)
            self._late(message_id, marker, score)
            return []
        state = self.pending.get(message_id)
        if state is None:
            finished = self.done.find(message_id)
            if finished:
                return self._after_done(score, finished, now_ms)
            if score.text_timestamp_ms < now_ms - self.horizon_ms:
                self.counts["stale_scores"] += 1
                return []
        elif _differs(fingerprint, state.fingerprint):
            return self._conflict(score, state.source, state.conflicts, state, now_ms)
        if score.refusal is not None:
            heard = _keys(score) | (state.scores.keys() if state else set())
            missing = self.registry.voters_for(score.text_timestamp_ms).keys - heard
            self._finish(message_id, state, score, missing, now_ms)
            return [RefusedByClassifier(message_id, score.refusal)]
        state = self._merge(state, score, now_ms)
        state.scored_ms = _latest(state.scored_ms, produced_ms)
        state.encoded_ms = _latest(state.encoded_ms, score.encoded_at_ms)
        if not self._incomplete(state):
            return [self._decide(state, now_ms)]
        self.pending[message_id] = state
        self.changes[message_id] = state
        return []

    def _merge(self, state: Join | None, score: ScoreRecord, now_ms: int) -> Join:
        if state is None:
            state = Join(
                score.id, score.text_timestamp_ms, now_ms, {}, score.fingerprint, score.source
            )
        elif state.fingerprint is None:
            state.fingerprint = score.fingerprint
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

    def _late(self, message_id: str, marker: Marker, score: ScoreRecord) -> None:
        """A score after its text was decided: nothing changes, but a missing voter that
        answered at last is one less reason to keep the marker."""
        self.counts["late_scores"] += 1
        if marker.missing is None or not marker.missing & _keys(score):
            return
        marker.missing -= _keys(score)
        if marker.missing:
            self.changes[message_id] = marker
            return
        del self.decided[message_id]
        self.changes[message_id] = None
        self._remember(
            message_id, marker.fingerprint, marker.source, marker.conflicts, marker.decided_at_ms
        )

    def _after_done(self, score: ScoreRecord, finished: list, now_ms: int) -> list[JoinOutcome]:
        fingerprint = fingerprint_int(score.fingerprint)
        if any(not _differs_int(fingerprint, entry.fingerprint) for entry in finished):
            self.counts["late_scores"] += 1  # a retry of a decided text, or a lagging shadow
            return []
        self.counts["conflicting_texts"] += 1
        self.done.add(score.id, fingerprint, now_ms, source_int(score.source))
        first = finished[0]
        detail = _conflict_detail(score, source_text(first.source), f"{first.fingerprint:016x}")
        return [_refused_other(score, detail)]

    def _conflict(
        self,
        score: ScoreRecord,
        first_source: str | None,
        conflicts: list[str],
        owner: Join | Marker,
        now_ms: int,
    ) -> list[JoinOutcome]:
        """Another text under an id pending or still marked: one dead letter per text."""
        assert score.fingerprint is not None  # a conflict needs two known fingerprints
        if score.fingerprint in conflicts:
            self.counts["late_scores"] += 1
            return []
        conflicts.append(score.fingerprint)
        self.counts["conflicting_texts"] += 1
        self.changes[score.id] = owner
        where = first_source or "an unknown offset"
        return [_refused_other(score, _conflict_detail(score, where, owner.fingerprint))]

    # -- clocks and registry changes -----------------------------------------------------
    def expire(self, now_ms: int) -> list[JoinOutcome]:
        """Decide joins whose timeout passed; forget what left the horizon and the window."""
        outcomes: list[JoinOutcome] = []
        deadline = now_ms - self.timeout_ms
        while self.pending:
            state = next(iter(self.pending.values()))
            if state.first_seen_ms > deadline:
                break
            voters = self.registry.voters_for(state.text_timestamp_ms)
            if voters.keys.isdisjoint(state.scores) and not state.conflicts:
                self._drop_unjoined(state)  # (one with conflicts is decided: it keeps them)
                continue
            self.counts["join_timeouts"] += 1
            outcomes.append(self._decide(state, now_ms))
        forget_before = now_ms - self.horizon_ms
        while self.decided:
            message_id, marker = next(iter(self.decided.items()))
            if marker.decided_at_ms > forget_before:
                break
            del self.decided[message_id]
            self.changes[message_id] = None
        for key in self.done.expire(now_ms):
            self.changes[key] = None
        return outcomes

    def recheck(self, now_ms: int) -> list[JoinOutcome]:
        """After a registry change (e.g. a retired class), decide joins now complete."""
        ready = [s for s in self.pending.values() if not self._incomplete(s)]
        return [self._decide(state, now_ms) for state in ready]

    def _drop_unjoined(self, state: Join) -> None:
        """No voter's score in a timed-out join: shadow scores of a text decided before the
        retry window, or of one whose voters are all down (they decide it when back)."""
        del self.pending[state.id]
        self.counts["unjoined_scores"] += len(state.scores)
        self._forget(state)

    # -- changelog -----------------------------------------------------------------------
    def restore(self, message_id: str, state: JoinState | None) -> None:
        """Replay one changelog record (in changelog order) after a restart or rebalance."""
        self.pending.pop(message_id, None)
        self.decided.pop(message_id, None)
        if state is None:
            return
        if state.decided_at_ms is not None:
            missing = None if state.missing is None else set(state.missing)
            self.decided[message_id] = Marker(
                state.decided_at_ms, state.fingerprint, state.source, missing, list(state.conflicts)
            )
        else:
            self.pending[message_id] = Join.from_state(state)

    def restore_block(self, key: bytes, block: DecidedBlock | None) -> None:
        self.done.restore_block(key, block)

    def take_changes(self) -> dict[str | bytes, JoinState | DecidedBlock | None]:
        """Changelog records since the last call: pending joins, markers and tombstones by
        message id; the batch's finished messages as one block; expired blocks' tombstones."""
        changes, self.changes = self.changes, {}
        out: dict[str | bytes, JoinState | DecidedBlock | None] = {}
        for key, change in changes.items():
            if isinstance(change, Join):
                change.logged = True
                out[key] = change.to_state()
            elif isinstance(change, Marker):
                assert isinstance(key, str)
                out[key] = change.to_state(key)
            else:
                out[key] = None
        block = self.done.take_block()
        if block is not None:
            out[block[0]] = block[1]
        return out

    # -- decisions -----------------------------------------------------------------------
    def _incomplete(self, state: Join) -> bool:
        voters = self.registry.voters_for(state.text_timestamp_ms)
        return not state.scores.keys() >= voters.keys

    def _decide(self, state: Join, now_ms: int) -> LabelRecord:
        voters = self.registry.voters_for(state.text_timestamp_ms)
        votes, shadow = _route(state.scores, voters, self.registry)
        decision = decide(votes, self.threshold)
        missing = sorted(voters.versions.keys() - votes.keys())
        missing_keys = {f"{label}@{voters.versions[label]}" for label in missing}
        self._finish(state.id, state, None, missing_keys, now_ms)
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
            fingerprint=state.fingerprint,
            scored_at_ms=state.scored_ms,
            encoded_at_ms=state.encoded_ms,
            schema_version=1,
        )

    def _finish(
        self,
        message_id: str,
        state: Join | None,
        refused: ScoreRecord | None,
        missing: AbstractSet[str],
        now_ms: int,
    ) -> None:
        """A decision: into the retry window when no voter is `missing`, else a marker."""
        if state is not None:
            self.pending.pop(message_id, None)
            self._forget(state)
        first = state or refused
        assert first is not None
        conflicts = state.conflicts if state else []
        if missing:
            self.decided[message_id] = Marker(
                now_ms, first.fingerprint, first.source, set(missing), conflicts
            )
            self.changes[message_id] = self.decided[message_id]
        else:
            self._remember(message_id, first.fingerprint, first.source, conflicts, now_ms)

    def _forget(self, state: Join) -> None:
        if state.logged:
            self.changes[state.id] = None  # its pending record is in the changelog
        else:
            self.changes.pop(state.id, None)  # born and gone between two commits

    def _remember(
        self,
        message_id: str,
        fingerprint: str | None,
        source: str | None,
        conflicts: list[str],
        decided_ms: int,
    ) -> None:
        self.done.add(message_id, fingerprint_int(fingerprint), decided_ms, source_int(source))
        for other in conflicts:  # their dead letters are out: their other scores are late
            self.done.add(message_id, fingerprint_int(other), decided_ms, source_int(None))


def _refused_other(score: ScoreRecord, detail: str) -> JoinOutcome:
    """The one dead letter of another record under a seen id: `duplicate_id`, or the record's
    own refusal when it could not be read anyway (that reason says more)."""
    if score.refusal is not None:
        return RefusedByClassifier(score.id, score.refusal)
    return Conflict(score.id, detail)


def _keys(score: ScoreRecord) -> set[str]:
    """`<label>@<version>` of every class a score record answers for (a refusal too)."""
    return {f"{label}@{version}" for label, version in score.versions.items()}


def _differs(a: str | None, b: str | None) -> bool:
    """Two texts differ when both fingerprints are known and unequal."""
    return a is not None and b is not None and a != b


def _latest(a: int | None, b: int | None) -> int | None:
    return a if b is None else b if a is None else max(a, b)


def _differs_int(a: int, b: int) -> bool:
    return a != 0 and b != 0 and a != b


def _conflict_detail(score: ScoreRecord, first_source: str, first_fingerprint: str | None) -> str:
    return (
        f"id {score.id!r} was first seen with another text ({first_source}, fingerprint"
        f" {first_fingerprint}); this text ({score.source or 'unknown offset'}, fingerprint"
        f" {score.fingerprint}) is refused, the first kept"
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
