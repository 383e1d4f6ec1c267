"""The impact table: per-class figures against scikit-learn, flows against a plain Counter."""

import random
from collections import Counter

import pytest
from sklearn.metrics import precision_recall_fscore_support

from triage.core.model.impact import NONE, Outcome, impact

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
        "count": 3,
        "judged": 3,
        "right": 1,
        "wrong": 2,
        "was_right": 2,
    }
