"""The aggregator's Prometheus metrics: results, latency, dead letters, the join's state and
what shadow versions would have changed. Updated after a batch's transaction committed."""

from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import Counter, Gauge, Histogram

from triage.core.model.decision import would_change_winner
from triage.core.runtime.metrics import DEAD_LETTERS, HOP_SECONDS, count_dead_letters
from triage.schemas.codec import Reason

__all__ = ["DEAD_LETTERS", "count_dead_letters"]  # (here since before the monitor counted them)

RESULTS = Counter("triage_results", "Labelled results committed", ["outcome"])
LATENCY_SECONDS = Histogram(
    "triage_end_to_end_latency_seconds",
    "From a text's timestamp to its result's decision",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60, 120),
)
JOIN_TIMEOUTS = Counter("triage_join_timeouts", "Joins decided by timeout (partial results)")
LATE_SCORES = Counter("triage_late_scores", "Scores arriving after their text was decided")
IGNORED_SCORES = Counter("triage_ignored_scores", "Scores or votes the join ignored", ["reason"])
PENDING_JOINS = Gauge("triage_pending_joins", "Joins waiting for scores")
DECIDED_KEPT = Gauge(
    "triage_decided_ids",
    "Decided ids the aggregator keeps: awaiting a missing voter's late score, or in the retry"
    " window (32 bytes each)",
    ["kind"],
)
SHADOW_DECISIONS = Counter(
    "triage_shadow_decisions",
    "Results carrying a shadow score of this class version",
    ["label", "version"],
)
SHADOW_CHANGED_WINNER = Counter(
    "triage_shadow_changed_winner",
    "Results whose winner this shadow class version would have changed, had it voted",
    ["label", "version"],
)

OUTCOMES = ("complete", "partial", "abstained")
_IGNORED = {
    "stale_scores": "stale",
    "duplicate_scores": "duplicate",
    "unknown_classifier_scores": "unknown_classifier",
    "retired_scores": "retired",
    # a timed-out join with no voter's score: shadow scores of a text decided before
    "unjoined_scores": "unjoined",
}


def start_aggregator_series() -> None:
    """Every outcome and known dead-letter reason as a series at 0 from the aggregator's start,
    so rates are never empty and `increase()` sees the first dead letter of each reason."""
    for outcome_name in OUTCOMES:
        RESULTS.labels(outcome_name)
    for reason in _IGNORED.values():
        IGNORED_SCORES.labels(reason)
    for name, reason in vars(Reason).items():
        if name.isupper():
            DEAD_LETTERS.labels(reason)


def outcome(result) -> str:
    """A result's outcome: partial when a classifier is missing, else abstained or complete."""
    if not result.complete:
        return "partial"
    return "abstained" if result.label is None else "complete"


def count_results(results: list) -> None:
    for outcome_name, n in Tally(outcome(r) for r in results).items():
        RESULTS.labels(outcome_name).inc(n)
    scored_to_decided = HOP_SECONDS.labels("scored_to_decided")
    for r in results:
        LATENCY_SECONDS.observe(max(0, r.decided_at_ms - r.text_timestamp_ms) / 1000)
        if r.scored_at_ms is not None:
            scored_to_decided.observe(max(0, r.decided_at_ms - r.scored_at_ms) / 1000)


def count_shadow(results: list, threshold: float) -> None:
    """For each shadow score of each result: counted, and whether it would change the winner."""
    for r in results:
        for key, probability in r.shadow_scores.items():
            label, _, version = key.partition("@")
            SHADOW_DECISIONS.labels(label, version).inc()
            if would_change_winner(r.scores, label, probability, threshold):
                SHADOW_CHANGED_WINNER.labels(label, version).inc()


def count_join_events(counts: Tally) -> None:
    """Move a join table's event counts into the counters (the caller clears them)."""
    JOIN_TIMEOUTS.inc(counts.get("join_timeouts", 0))
    LATE_SCORES.inc(counts.get("late_scores", 0))
    for key, reason in _IGNORED.items():
        if counts.get(key):
            IGNORED_SCORES.labels(reason).inc(counts[key])
