"""The impact of a candidate (triage.core.model.impact): per-class figures against scikit-learn,
flows against a plain Counter, the promotion gate's rule; and the live report built on them
(triage.tools.shadow). Pure, no broker."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from sklearn.metrics import precision_recall_fscore_support

from triage.core.model.impact import NONE, Outcome, Scores, gate_reasons, impact
from triage.schemas.models import LabelRecord
from triage.tools.shadow import format_gate, format_report, gate, shadow_report

LABELS = ["a", "b", "c"]


def _random_outcomes(n: int, seed: int) -> list[Outcome]:
    rng = random.Random(seed)
    choices: list[str | None] = [*LABELS, None]
    truths: list[str | None] = [*LABELS, NONE, None]
    return [Outcome(rng.choice(choices), rng.choice(choices), rng.choice(truths)) for _ in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_class_figures_match_scikit_learn_on_the_judged_texts(seed):
    outcomes = _random_outcomes(300, seed)
    result = impact(outcomes, LABELS)
    judged = [o for o in outcomes if o.truth is not None]
    assert result.judged == len(judged) < result.texts == 300
    truth = [o.truth for o in judged]
    for side in ("before", "after"):
        predicted = [getattr(o, side) or NONE for o in judged]
        p, r, f, s = precision_recall_fscore_support(
            truth, predicted, labels=LABELS, zero_division=0
        )
        for j, label in enumerate(LABELS):
            got = getattr(result.per_class[label], side)
            assert (got.precision, got.recall, got.f1, got.support) == pytest.approx(
                (p[j], r[j], f[j], s[j])
            )


@pytest.mark.parametrize("seed", [0, 1])
def test_flows_count_changed_decisions_and_right_ones(seed):
    outcomes = _random_outcomes(400, seed)
    result = impact(outcomes, LABELS)
    changed = [o for o in outcomes if o.before != o.after]
    pairs = Counter((o.before or NONE, o.after or NONE) for o in changed)
    right = Counter(
        (o.before or NONE, o.after or NONE)
        for o in changed
        if o.truth is not None and (o.after or NONE) == o.truth
    )
    judged = Counter((o.before or NONE, o.after or NONE) for o in changed if o.truth is not None)
    assert result.changed == len(changed) == sum(f.count for f in result.flows)
    assert {(f.source, f.target): f.count for f in result.flows} == dict(pairs)
    assert {(f.source, f.target): f.right for f in result.flows if f.right} == dict(right)
    assert all(f.wrong == judged[(f.source, f.target)] - f.right for f in result.flows)
    counts = [f.count for f in result.flows]
    assert counts == sorted(counts, reverse=True)


def test_a_candidate_taking_texts_from_a_neighbour():
    outcomes = [
        Outcome("a", "a", "a"),
        Outcome("b", "a", "b"),  # taken wrongly
        Outcome("b", "a", "b"),
        Outcome("b", "a", "a"),  # taken rightly
        Outcome(None, "a", NONE),  # abstained before: now wrong
        Outcome("b", "b", None),  # unjudged, unchanged
        Outcome("c", "a", None),  # unjudged, changed
    ]
    result = impact(outcomes)
    flows = {(f.source, f.target): f for f in result.flows}
    assert (flows["b", "a"].count, flows["b", "a"].right, flows["b", "a"].was_right) == (3, 1, 2)
    assert (flows[NONE, "a"].count, flows[NONE, "a"].wrong, flows[NONE, "a"].was_right) == (1, 1, 1)
    assert (flows["c", "a"].count, flows["c", "a"].judged) == (1, 0)
    b = result.per_class["b"]
    assert (b.before.tp, b.before.fp, b.before.fn) == (2, 1, 0)
    assert (b.after.tp, b.after.fp, b.after.fn) == (0, 0, 2)
    assert b.delta("recall") == -1.0
    a = result.per_class["a"]
    assert a.after.precision == pytest.approx(2 / 5)
    as_json = result.as_dict()
    assert as_json["changed"] == 5 and as_json["judged"] == 5
    assert as_json["per_class"]["b"]["recall_delta"] == -1.0
    assert as_json["flows"][0] == {
        "from": "b",
        "to": "a",
        "changed": 3,
        "judged": 3,
        "right": 1,
        "wrong": 2,
        "was_right": 2,
    }


def test_undefined_figures_are_none_for_the_gate_and_zero_for_the_report():
    never_predicted, no_texts = Scores(tp=0, fp=0, fn=2), Scores(tp=0, fp=3, fn=0)
    assert never_predicted.defined("precision") is None and never_predicted.precision == 0.0
    assert never_predicted.defined("recall") == 0.0 and never_predicted.defined("f1") is None
    assert no_texts.defined("recall") is None and no_texts.defined("precision") == 0.0
    assert Scores(1, 1, 0).defined("f1") == pytest.approx(2 / 3)


def test_the_gate_refuses_another_class_dropping_more_than_the_margin():
    # c: 5 texts; the candidate (class a) takes one of them: c's recall 1.0 → 0.8.
    rows = [Outcome("c", "c", "c")] * 4 + [Outcome("c", "a", "c")] + [Outcome("a", "a", "a")] * 5
    result = impact(rows)
    reasons = gate_reasons(result, "a", max_drop=0.1, min_judged=10)
    assert reasons == [
        "c: recall would drop 1.000 → 0.800 (-0.200 > --max-drop 0.1) on 10 judged texts"
    ]
    # Exactly at the margin passes (0.2 in floats is not quite 1.0 - 0.8).
    assert gate_reasons(result, "a", max_drop=0.2, min_judged=10) == []
    # The candidate's own class is its team's call: a's precision fell (1.0 → 0.833), no reason.
    assert result.per_class["a"].delta("precision") < 0


def test_the_gate_refuses_too_few_judged_texts_and_ignores_undefined_figures():
    # b is never predicted after (precision undefined): its recall says it, not its precision.
    # An unjudged text counts for nothing; a text judged "none of ours" counts as judged.
    result = impact([Outcome("b", "a", "b"), Outcome("c", "a"), Outcome("a", None, NONE)])
    reasons = gate_reasons(result, "a", max_drop=0.02, min_judged=3)
    assert len(reasons) == 2
    assert reasons[0].startswith("only 2 judged texts scored by the candidate (--min-judged 3)")
    assert reasons[1].startswith("b: recall would drop 1.000 → 0.000")
    assert gate_reasons(result, "a", max_drop=1.0, min_judged=2) == []


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
        result(4, "b", {"a": 0.1, "b": 0.2}, {"a@2": 0.1}),  # abstains; "none of ours": right
        result(5, "c", {"a": 0.1, "c": 0.9}, {"a@2": 0.1}),  # not judged: c is in no figure
    ]
    corrections = {"m0": "b", "m1": "a", "m2": "b", "m4": None}
    report = shadow_report([], results, "a", "2", threshold=0.3, corrections=corrections)
    as_json = report.as_dict()
    assert (as_json["scored"], as_json["judged"], as_json["changed_judged"]) == (5, 4, 2)
    assert as_json["flows"] == [
        {"from": "b", "to": "a", "changed": 2, "judged": 2, "right": 1, "wrong": 1, "was_right": 1}
    ]
    # b: recall 2/2 → 1/2 on the judged texts; a: recall 0/1 → 1/1, precision undefined → 1/2.
    assert as_json["per_class"] == {
        "a": {"support": 1, "precision_before": None, "precision_after": 0.5,
              "precision_delta": None, "recall_before": 0.0, "recall_after": 1.0,
              "recall_delta": 1.0, "f1_before": None, "f1_after": 0.6667, "f1_delta": None},
        "b": {"support": 2, "precision_before": 0.6667, "precision_after": 1.0,
              "precision_delta": 0.3333, "recall_before": 1.0, "recall_after": 0.5,
              "recall_delta": -0.5, "f1_before": 0.8, "f1_after": 0.6667, "f1_delta": -0.1333},
    }  # fmt: skip
    verdict = gate(report, max_drop=0.02, min_judged=4)
    assert not verdict["passed"]
    assert verdict["reasons"] == [
        "b: recall would drop 1.000 → 0.500 (-0.500 > --max-drop 0.02) on 4 judged texts"
    ]
    assert format_gate(verdict).endswith("refused for 1 reason(s)")
    assert gate(report, max_drop=0.5, min_judged=4)["passed"]
    text = format_report(report)
    assert "b                            a                                 2      2      1" in text
    assert "* b" in text
