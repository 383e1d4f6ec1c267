"""The metrics helpers: outcomes, join events and where `triage up` says to scrape."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from triage.aggregator import metrics
from triage.tools import supervisor


def test_outcome_partial_wins_over_abstained():
    assert metrics.outcome(SimpleNamespace(complete=False, label=None)) == "partial"
    assert metrics.outcome(SimpleNamespace(complete=True, label=None)) == "abstained"
    assert metrics.outcome(SimpleNamespace(complete=True, label="a")) == "complete"


def test_join_events_become_counters():
    before = metrics.JOIN_TIMEOUTS._value.get(), metrics.LATE_SCORES._value.get()
    metrics.count_join_events(Counter(join_timeouts=2, late_scores=3, stale_scores=1))
    after = metrics.JOIN_TIMEOUTS._value.get(), metrics.LATE_SCORES._value.get()
    assert (after[0] - before[0], after[1] - before[1]) == (2, 3)


def test_up_prints_one_metrics_address_per_process():
    children = supervisor.plan(
        Path("m"), {"a": "text", "b": "text"}, colocated=False, metrics_base=9400
    )
    assert supervisor.metrics_urls(children, "127.0.0.1") == [
        "classifier a metrics: http://127.0.0.1:9401/metrics",
        "classifier b metrics: http://127.0.0.1:9402/metrics",
        "aggregator metrics: http://127.0.0.1:9400/metrics",
        "monitor metrics: http://127.0.0.1:9403/metrics",
    ]
    assert (
        supervisor.metrics_urls(supervisor.plan(Path("m"), {"a": "text"}, False, None), "h") == []
    )


def test_shadow_scores_count_decisions_and_changed_winners():
    def value(counter, *labels):
        return counter.labels(*labels)._value.get()

    before = [value(c, "s", "2") for c in (metrics.SHADOW_DECISIONS, metrics.SHADOW_CHANGED_WINNER)]
    results = [
        SimpleNamespace(label="a", scores={"a": 0.6, "s": 0.1}, shadow_scores={"s@2": 0.9}),
        SimpleNamespace(label="a", scores={"a": 0.6, "s": 0.1}, shadow_scores={"s@2": 0.2}),
        SimpleNamespace(label="a", scores={"a": 0.6}, shadow_scores={}),
    ]
    metrics.count_shadow(results, threshold=0.0)
    after = [value(c, "s", "2") for c in (metrics.SHADOW_DECISIONS, metrics.SHADOW_CHANGED_WINNER)]
    assert (after[0] - before[0], after[1] - before[1]) == (2, 1)
