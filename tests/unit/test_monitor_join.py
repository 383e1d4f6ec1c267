"""The monitor's join and quality counts, pure: results meet corrections, each defined outcome
(before the result, twice, past the horizon) and the figures computed from the counts."""

from __future__ import annotations

import math

import pytest

from triage.core.model.quality import (
    QualityBook,
    Truth,
    add,
    bin_of,
    calibration_bins,
    calibration_error,
    figures,
    in_window,
    precision,
    psi,
    recall,
)
from triage.monitor.join import CorrectionJoin, Counted, Held, RefusedCorrection
from triage.schemas.codec import Reason
from triage.schemas.models import CorrectionRecord, LabelRecord

T0 = 10_000_000
HORIZON, WAIT, WINDOW = 60_000, 5_000, 12_000


def result(mid: str, label: str | None, a: float = 0.8, b: float = 0.1, v: str = "1"):
    return LabelRecord(
        id=mid,
        label=label,
        probability=max(a, b),
        scores={"a": a, "b": b},
        complete=True,
        missing=[],
        versions={"a": v, "b": "1"},
        text_timestamp_ms=T0,
        decided_at_ms=T0,
    )


def correction(mid: str, label: str | None) -> CorrectionRecord:
    return CorrectionRecord(id=mid, label=label, source="test", corrected_at_ms=T0)


@pytest.fixture
def join() -> CorrectionJoin:
    return CorrectionJoin(0, horizon_ms=HORIZON, wait_ms=WAIT, window_ms=WINDOW)


def tally(join: CorrectionJoin, label: str, version: str = "1"):
    return join.book.counts[(label, version)].total


def test_a_correction_of_a_held_result_counts_every_voting_class(join):
    assert join.add_result(result("m1", "a"), T0) == []
    [counted] = join.add_correction(correction("m1", "b"), "c:0:0", T0 + 1)
    assert isinstance(counted, Counted)
    a, b = tally(join, "a"), tally(join, "b")
    assert (a.tp, a.fp, a.fn, a.tn) == (0, 1, 0, 0)  # routed to a, belonged to b
    assert (b.tp, b.fp, b.fn, b.tn) == (0, 0, 1, 0)
    assert a.confusions == {"b": 1} and a.examples == {"b": ["m1"]}
    assert a.results == 1 and a.hist[bin_of(0.8)] == 1


def test_a_correction_before_its_result_is_held_then_counted(join):
    [held] = join.add_correction(correction("m2", "a"), "c:0:3", T0)
    assert held == Held("m2") and "m2" in join.waiting
    [counted] = join.add_result(result("m2", "a"), T0 + WAIT - 1)
    assert isinstance(counted, Counted) and not join.waiting
    assert tally(join, "a").tp == 1
    changes = join.take_changes()
    assert changes[b"c:m2"] is None and changes[b"r:m2"] is not None


def test_a_held_correction_whose_result_never_comes_is_unknown_id(join):
    join.add_correction(correction("m3", "a"), "corrections:0:7", T0)
    assert join.expire(T0 + WAIT - 1) == []
    [refused] = join.expire(T0 + WAIT)
    assert isinstance(refused, RefusedCorrection) and refused.reason == Reason.UNKNOWN_ID
    assert refused.held is not None and refused.held.source == "corrections:0:7"
    assert not join.waiting and join.book.counts == {}
    # its result arriving later is just a result: nothing is counted
    assert join.add_result(result("m3", "a"), T0 + WAIT + 1) == []
    assert tally(join, "a").tp == 0


def test_a_second_correction_is_refused_and_the_first_stands(join):
    join.add_result(result("m4", "a"), T0)
    join.add_correction(correction("m4", "a"), "c:0:1", T0 + 1)
    [refused] = join.add_correction(correction("m4", "b"), "c:0:2", T0 + 2)
    assert refused.reason == Reason.DUPLICATE_CORRECTION and refused.held is None
    assert "corrected to a already" in refused.detail
    a = tally(join, "a")
    assert (a.tp, a.fp) == (1, 0)
    # the same for a second correction of a correction still waiting for its result
    join.add_correction(correction("m5", None), "c:0:3", T0)
    [again] = join.add_correction(correction("m5", "a"), "c:0:4", T0)
    assert again.reason == Reason.DUPLICATE_CORRECTION and "corrected to -" in again.detail


def test_a_result_past_the_horizon_is_gone_and_its_correction_becomes_unknown_id(join):
    join.add_result(result("m6", "a"), T0)
    assert join.expire(T0 + HORIZON) == [] and "m6" not in join.results
    assert join.take_changes()[b"r:m6"] is None
    [held] = join.add_correction(correction("m6", "a"), "c:0:9", T0 + HORIZON + 1)
    assert isinstance(held, Held)
    [refused] = join.expire(T0 + HORIZON + 1 + WAIT)
    assert refused.reason == Reason.UNKNOWN_ID


def test_a_repeated_result_of_a_corrected_id_counts_no_second_truth(join):
    join.add_result(result("m7", "a"), T0)
    join.add_correction(correction("m7", "a"), "c:0:1", T0)
    assert join.add_result(result("m7", "a"), T0 + 1) == []
    assert tally(join, "a").tp == 1 and tally(join, "a").results == 2


def test_abstentions_and_none_of_our_classes(join):
    join.add_result(result("m8", None, a=0.3, b=0.2), T0)
    join.add_correction(correction("m8", "a"), "c:0:1", T0)
    assert tally(join, "a").abstained == 1 and tally(join, "a").fn == 1
    join.add_result(result("m9", "b", a=0.1, b=0.7), T0)
    join.add_correction(correction("m9", None), "c:0:2", T0)
    b = tally(join, "b")
    assert b.fp == 1 and b.confusions == {"-": 1}


def test_the_changelog_restores_the_same_join(join):
    join.add_result(result("r1", "a"), T0)
    join.add_result(result("r2", "b", a=0.1, b=0.9), T0)
    join.add_correction(correction("r1", "a"), "c:0:1", T0 + 1)
    join.add_correction(correction("w1", "b"), "c:0:2", T0 + 2)
    records = list(join.take_changes().items())
    again = CorrectionJoin(0, horizon_ms=HORIZON, wait_ms=WAIT, window_ms=WINDOW)
    for key, value in records:
        again.restore(key, value)
    assert again.results == join.results and again.waiting.keys() == join.waiting.keys()
    assert again.book.counts == join.book.counts
    # and it goes on identically: a second correction of r1 is still refused
    for table in (join, again):
        [refused] = table.add_correction(correction("r1", "b"), "c:0:3", T0 + 3)
        assert refused.reason == Reason.DUPLICATE_CORRECTION
        [counted] = table.add_result(result("w1", "b", a=0.1, b=0.9), T0 + 4)
        assert isinstance(counted, Counted)
    assert again.book.counts == join.book.counts


def test_the_sliding_window_drops_old_buckets_but_keeps_the_version_total():
    book = QualityBook(0, window_ms=WINDOW)
    truth = Truth("x", "a", "a", {"a": 0.9}, {"a": "1"})
    book.add_truth(truth, T0)
    later = T0 + WINDOW + book.bucket_ms  # the first bucket ended a window ago
    book.add_truth(truth, later)
    counts = book.counts[("a", "1")]
    assert counts.total.tp == 2 and in_window(counts, later, WINDOW).tp == 1
    assert in_window(counts, later - 1, WINDOW).tp == 2
    book.expire(T0 + 2 * WINDOW)
    assert len(book.counts[("a", "1")].buckets) == 1 and book.take_changes()


def test_figures():
    book = QualityBook(0, window_ms=WINDOW)
    for mid, predicted, actual, score in [
        ("1", "a", "a", 0.95),
        ("2", "a", "a", 0.95),
        ("3", "a", "b", 0.95),
        ("4", "b", "a", 0.05),
    ]:
        book.add_truth(Truth(mid, predicted, actual, {"a": score}, {"a": "1"}), T0)
    t = book.counts[("a", "1")].total
    assert precision(t) == pytest.approx(2 / 3) and recall(t) == pytest.approx(2 / 3)
    # bin 9: 3 rows, mean score .95, 2/3 positive; bin 0: 1 row, .05, 1 positive
    expected = (3 * abs(2 / 3 - 0.95) + abs(1 - 0.05)) / 4
    assert calibration_error(t) == pytest.approx(expected)
    assert figures(t)["support"] == 3 and figures(t)["corrected"] == 4
    assert calibration_bins(t) == [
        {"lower": 0.0, "upper": 0.1, "count": 1, "score": 0.05, "observed": 1.0},
        {"lower": 0.9, "upper": 1.0, "count": 3, "score": 0.95, "observed": 0.6667},
    ]
    assert add([t, t]).tp == 2 * t.tp and add([t, t]).examples == {"b": ["3"]}


def test_psi_is_zero_for_the_same_distribution_and_grows_with_a_shift():
    reference = [0.5, 0.3, 0.2] + [0.0] * 7
    assert psi([50, 30, 20] + [0] * 7, reference) == pytest.approx(0.0, abs=1e-9)
    shifted = psi([0] * 7 + [20, 30, 50], reference)
    assert shifted is not None and shifted > 1 and math.isfinite(shifted)
    assert psi([0] * 10, reference) is None and psi([1] * 10, None) is None
