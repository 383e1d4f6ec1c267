"""Prometheus metrics of every triage service, and the `/metrics` server that exposes them.

The metric objects are defined once here so every service names and labels them the same way;
services update them after a batch's transaction committed, so counters count what the rest of
the pipeline can see. `serve` starts the HTTP server on `metrics_host:metrics_port` when a port
is configured (0 picks a free one); the address is logged so an operator can find it.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

from aggregator.decision import would_change_winner
from schemas.codec import Reason
from triage.settings import CommonSettings

log = logging.getLogger(__name__)

RECORDS_IN = Counter("triage_records_in", "Records consumed and committed", ["service", "topic"])
RECORDS_OUT = Counter(
    "triage_records_out", "Records produced in committed transactions", ["service", "topic"]
)
BATCH_SIZE = Histogram(
    "triage_batch_size",
    "Records per polled batch",
    ["service"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000),
)
SCORING_SECONDS = Histogram(
    "triage_scoring_seconds",
    "Time to score one polled partition batch (all hosted classes)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
MODEL_INFO = Gauge(
    "triage_model_info",
    "Model versions a classifier process serves (value 1)",
    ["label", "version"],
)
DEAD_LETTERS = Counter("triage_dead_letters", "Dead-letter records committed", ["reason"])
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
}

_server_port: int | None = None


def serve(settings: CommonSettings, registry: CollectorRegistry = REGISTRY) -> int | None:
    """Serve `/metrics` when a port is configured; the bound port, or None. Once per process."""
    global _server_port
    if settings.metrics_port is None or _server_port is not None:
        return _server_port
    try:
        server, _thread = start_http_server(
            settings.metrics_port, addr=settings.metrics_host, registry=registry
        )
    except OSError as exc:  # a busy port must not stop the pipeline: say so, run without
        log.error(
            "cannot serve metrics on %s:%d: %s", settings.metrics_host, settings.metrics_port, exc
        )
        return None
    _server_port = server.server_address[1]
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, _server_port)
    return _server_port


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


def count_batch(service: str, batches: dict, outputs: Iterable) -> None:
    """After a commit: the polled batch's size and records per topic, and what it produced."""
    consumed = Tally[str]()
    for tp, records in batches.items():
        consumed[tp.topic] += len(records)
    if consumed:
        BATCH_SIZE.labels(service).observe(consumed.total())
    for topic, n in consumed.items():
        RECORDS_IN.labels(service, topic).inc(n)
    for topic, n in Tally(out.topic for out in outputs).items():
        RECORDS_OUT.labels(service, topic).inc(n)


def outcome(result) -> str:
    """A result's outcome: partial when a classifier is missing, else abstained or complete."""
    if not result.complete:
        return "partial"
    return "abstained" if result.label is None else "complete"


def count_results(results: list) -> None:
    for outcome_name, n in Tally(outcome(r) for r in results).items():
        RESULTS.labels(outcome_name).inc(n)
    for r in results:
        LATENCY_SECONDS.observe(max(0, r.decided_at_ms - r.text_timestamp_ms) / 1000)


def count_shadow(results: list, threshold: float) -> None:
    """For each shadow score of each result: counted, and whether it would change the winner."""
    for r in results:
        for key, probability in r.shadow_scores.items():
            label, _, version = key.partition("@")
            SHADOW_DECISIONS.labels(label, version).inc()
            if would_change_winner(r.scores, label, probability, threshold):
                SHADOW_CHANGED_WINNER.labels(label, version).inc()


def count_dead_letters(reasons: list[str]) -> None:
    for reason, n in Tally(reasons).items():
        DEAD_LETTERS.labels(reason).inc(n)


def count_join_events(counts: Tally) -> None:
    """Move a join table's event counts into the counters (the caller clears them)."""
    JOIN_TIMEOUTS.inc(counts.get("join_timeouts", 0))
    LATE_SCORES.inc(counts.get("late_scores", 0))
    for key, reason in _IGNORED.items():
        if counts.get(key):
            IGNORED_SCORES.labels(reason).inc(counts[key])
