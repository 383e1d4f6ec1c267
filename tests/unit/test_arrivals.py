"""`due_offsets`: when an open loop's texts are due, evenly or at Poisson times (pure)."""

from __future__ import annotations

import itertools
import statistics
import time

import pytest

from triage.schemas.models import TextRecord
from triage.tools.arrivals import due_offsets


def test_even_arrivals_are_one_every_one_over_the_rate():
    assert due_offsets(4, 50.0) == [0.0, 0.02, 0.04, 0.06]


def test_poisson_arrivals_average_the_rate_with_exponential_gaps_and_repeat_with_the_seed():
    offsets = due_offsets(20_000, 50.0, "poisson")
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert offsets[0] == 0.0 and all(g >= 0 for g in gaps)
    assert statistics.mean(gaps) == pytest.approx(0.02, rel=0.03)
    # exponential: the share of gaps over 30 ms is e^-1.5, about 22 %, where even has none
    assert sum(g > 0.03 for g in gaps) / len(gaps) == pytest.approx(0.223, abs=0.015)
    assert due_offsets(100, 50.0, "poisson") == offsets[:100]  # every run: the same schedule
    assert due_offsets(100, 50.0, "poisson", seed=1) != offsets[:100]


def test_unknown_arrivals_and_rates_that_are_not_rates_are_refused():
    with pytest.raises(ValueError, match="one of even, poisson"):
        due_offsets(3, 50.0, "bursty")
    with pytest.raises(ValueError, match="above 0"):
        due_offsets(3, 0.0)


def test_records_go_to_kafka_when_due_and_those_due_together_go_together():
    from triage.tools.bench.running import _publish_when_due

    class Recorder:  # stands in for the Publisher: only the calls and their times matter here
        def __init__(self) -> None:
            self.calls: list[tuple[float, list[str]]] = []

        def publish(self, records: list[TextRecord]) -> None:
            self.calls.append((time.monotonic() - started, [r.id for r in records]))

    records = [TextRecord(id=f"t{i}", text="x") for i in range(4)]
    recorder, started = Recorder(), time.monotonic()
    _publish_when_due(recorder, records, [0.0, 0.0, 0.03, 0.06])  # type: ignore[arg-type]
    assert [ids for _, ids in recorder.calls] == [["t0", "t1"], ["t2"], ["t3"]]
    sent_at = [at for at, _ in recorder.calls]
    assert all(at >= due - 0.001 for at, due in zip(sent_at, [0.0, 0.03, 0.06], strict=True))


def test_evenly_spaced_records_can_go_a_tick_at_a_time():
    from triage.tools.bench.running import _publish_when_due

    calls: list[list[str]] = []

    class Recorder:
        def publish(self, records: list[TextRecord]) -> None:
            calls.append([r.id for r in records])

    records = [TextRecord(id=f"t{i}", text="x") for i in range(4)]
    # 200 texts/s: two every 10 ms, as the bench sends them to Kafka
    _publish_when_due(Recorder(), records, due_offsets(4, 200.0), ahead_s=1 / 200)  # type: ignore[arg-type]
    assert calls == [["t0", "t1"], ["t2", "t3"]]
