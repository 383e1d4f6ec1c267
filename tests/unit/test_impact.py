"""The impact of a candidate and the promotion gate's rule (triage.core.model.impact), and the
live report built on them (triage.tools.shadow): pure, no broker."""

from __future__ import annotations

import pytest

from triage.core.model.impact import Flow, Outcome, class_moves, flows, gate_reasons
from triage.schemas.models import LabelRecord
from triage.tools.shadow import format_gate, format_report, gate, shadow_report


def outcomes(*rows: tuple) -> list[Outcome]:
    """(before, after) unjudged, or (before, after, truth) judged."""
    return [Outcome(r[0], r[1], r[2], True) if len(r) == 3 else Outcome(*r) for r in rows]


def test_flows_count_changes_by_pair_and_judge_them_by_the_correction():
    found = flows(
        outcomes(
            ("b", "a", "a"),  # right
            ("b", "a", "b"),  # wrong, and the old winner was right: lost
            ("b", "a", "c"),  # wrong both times: not lost
            ("b", "a"),  # not judged
            ("c", None, None),  # to an abstention, corrected to "none of ours": right
            ("a", "a", "b"),  # unchanged: no row
        )
    )
    assert found == [
        Flow("b", "a", changed=4, judged=3, right=1, wrong=2, lost=1),
        Flow("c", None, changed=1, judged=1, right=1, wrong=0, lost=0),
    ]


def test_class_moves_are_measured_on_judged_texts_only():
    moves = class_moves(
        outcomes(
            ("b", "a", "b"),  # b loses a right decision to a
            ("b", "b", "b"),
            ("a", "a", "a"),
            ("c", "a"),  # not judged: moves nothing
        )
    )
    assert set(moves) == {"a", "b"}
    b, a = moves["b"], moves["a"]
    assert (b.support, b.recall_before, b.recall_after) == (2, 1.0, 0.5)
    assert (b.precision_before, b.precision_after) == (1.0, 1.0)
    assert (a.precision_before, a.precision_after, a.recall_after) == (1.0, 0.5, 1.0)
    assert b.f1_before == 1.0 and b.f1_after == pytest.approx(2 / 3)


def test_the_gate_refuses_another_class_dropping_more_than_the_margin():
    # c: 5 texts; the candidate (class a) takes one of them: c's recall 1.0 → 0.8.
    rows = [("c", "c", "c")] * 4 + [("c", "a", "c")] + [("a", "a", "a")] * 5
    moves = class_moves(outcomes(*rows))
    reasons = gate_reasons(moves, "a", judged=10, max_drop=0.1, min_judged=10)
    assert reasons == [
        "c: recall would drop 1.000 → 0.800 (-0.200 > --max-drop 0.1) on 10 judged texts"
    ]
    # Exactly at the margin passes (0.2 in floats is not quite 1.0 - 0.8).
    assert gate_reasons(moves, "a", judged=10, max_drop=0.2, min_judged=10) == []
    # The candidate's own class is its team's call: a's precision fell (1.0 → 0.833), no reason.
    assert moves["a"].precision_after < moves["a"].precision_before


def test_the_gate_refuses_too_few_judged_texts_and_ignores_undefined_figures():
    # b is never predicted after (precision undefined): its recall says it, not its precision.
    moves = class_moves(outcomes(("b", "a", "b")))
    reasons = gate_reasons(moves, "a", judged=1, max_drop=0.02, min_judged=2)
    assert len(reasons) == 2
    assert reasons[0].startswith("only 1 judged texts scored by the candidate (--min-judged 2)")
    assert reasons[1].startswith("b: recall would drop 1.000 → 0.000")


def result(i: int, label: str, scores: dict[str, float], shadow: dict[str, float]) -> LabelRecord:
    return LabelRecord(
        id=f"m{i}", label=label, probability=max(scores.values()), scores=scores,
        complete=True, missing=[], versions=dict.fromkeys(scores, "1"), shadow_scores=shadow,
        text_timestamp_ms=0, decided_at_ms=0,
    )  # fmt: skip


def test_the_live_report_reads_shadow_scores_from_results_and_gates_on_corrections():
    votes = {"a": 0.2, "b": 0.6}
    results = [
        result(0, "b", votes, {"a@2": 0.9}),  # a@2 takes it: wrong by the correction
        result(1, "b", votes, {"a@2": 0.7}),  # takes it: right
        result(2, "b", votes, {"a@2": 0.1}),  # unchanged
        result(3, "b", votes, {"a@3": 0.9}),  # another version: not a@2's
    ]
    corrections = {"m0": "b", "m1": "a", "m2": "b"}
    report = shadow_report([], results, "a", "2", corrections=corrections)
    assert (report["scored"], report["judged"], report["changed_judged"]) == (3, 3, 2)
    assert report["flow"] == [
        {"from": "b", "to": "a", "changed": 2, "judged": 2, "right": 1, "wrong": 1, "lost": 1}
    ]
    # b: recall 2/2 → 1/2 on the judged texts; a: recall 0/1 → 1/1.
    verdict = gate(report, max_drop=0.02, min_judged=3)
    assert not verdict["passed"]
    assert verdict["reasons"] == [
        "b: recall would drop 1.000 → 0.500 (-0.500 > --max-drop 0.02) on 3 judged texts"
    ]
    assert format_gate(verdict).endswith("refused for 1 reason(s)")
    assert gate(report, max_drop=0.5, min_judged=3)["passed"]
    text = format_report(report)
    assert "b                            a                                 2      2      1" in text
    assert "* b" in text
