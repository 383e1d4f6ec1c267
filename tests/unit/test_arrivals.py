"""`due_offsets`: when an open loop's texts are due, evenly or at Poisson times (pure)."""

from __future__ import annotations

import statistics

import pytest

from triage.tools.arrivals import due_offsets


def test_even_arrivals_are_one_every_one_over_the_rate():
    assert due_offsets(4, 50.0) == [0.0, 0.02, 0.04, 0.06]


def test_poisson_arrivals_average_the_rate_with_exponential_gaps_and_repeat_with_the_seed():
    offsets = due_offsets(20_000, 50.0, "poisson")
    gaps = [b - a for a, b in zip(offsets, offsets[1:])]
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
