"""The impact of a candidate version on the ensemble's decisions, and the promotion gate's rule.

Pure logic, no Kafka: the input is one `Outcome` a text (the winner today, the winner had the
candidate voted in its class's place, and the text's truth when a human judged it). From those:
the flow of changed decisions (from class → to class, how many, how many of them judged, right
and wrong), each class's precision, recall and F1 before and after on the judged texts, and
the gate's reasons to refuse. `triage shadow-report`, `triage gate` and `triage promote` call
these on live results and corrections; an offline comparison can call them on a labelled file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

# A drop smaller than this is float noise, not a reason to refuse (0.8 - 0.78 > 0.02 in floats).
EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Outcome:
    """One text: its winner before (today's voters) and after (the candidate in its class's
    place); `truth` is its correction's class (None: none of ours) when `judged`."""

    before: str | None
    after: str | None
    truth: str | None = None
    judged: bool = False


@dataclass(frozen=True, slots=True)
class Flow:
    """Texts whose winner changes from `source` to `target` (None: the pipeline abstains).
    Of the `judged` ones, `right`: the new winner is the correction's class; `wrong`: it is
    not (`lost`: of those, the old winner was the correction's class)."""

    source: str | None
    target: str | None
    changed: int
    judged: int
    right: int
    wrong: int
    lost: int


@dataclass(frozen=True, slots=True)
class ClassMove:
    """One class's figures on the judged texts, before and after (None: undefined, no
    prediction of the class for precision, no text of the class for recall)."""

    label: str
    support: int
    precision_before: float | None
    precision_after: float | None
    recall_before: float | None
    recall_after: float | None
    f1_before: float | None
    f1_after: float | None


def flows(outcomes: Iterable[Outcome]) -> list[Flow]:
    """The changed decisions by (from, to), most changes first."""
    counts: Counter[tuple[str | None, str | None, str]] = Counter()
    for o in outcomes:
        if o.before == o.after:
            continue
        pair = (o.before, o.after)
        counts[(*pair, "changed")] += 1
        if o.judged:
            counts[(*pair, "judged")] += 1
            counts[(*pair, "right" if o.after == o.truth else "wrong")] += 1
            counts[(*pair, "lost")] += o.before == o.truth
    pairs = {(source, target) for source, target, _ in counts}
    rows = [
        Flow(s, t, *(counts[(s, t, k)] for k in ("changed", "judged", "right", "wrong", "lost")))
        for s, t in pairs
    ]
    return sorted(rows, key=lambda f: (-f.changed, f.source or "", f.target or ""))


def class_moves(outcomes: Iterable[Outcome]) -> dict[str, ClassMove]:
    """Every class named by a judged text (as winner before or after, or as its truth)."""
    judged = [o for o in outcomes if o.judged]
    labels = {x for o in judged for x in (o.before, o.after, o.truth) if x is not None}
    moves = {}
    for label in sorted(labels):
        p0, r0 = _precision_recall(label, [(o.before, o.truth) for o in judged])
        p1, r1 = _precision_recall(label, [(o.after, o.truth) for o in judged])
        moves[label] = ClassMove(
            label=label,
            support=sum(o.truth == label for o in judged),
            precision_before=p0,
            precision_after=p1,
            recall_before=r0,
            recall_after=r1,
            f1_before=f1(p0, r0),
            f1_after=f1(p1, r1),
        )
    return moves


def _precision_recall(
    label: str, pairs: list[tuple[str | None, str | None]]
) -> tuple[float | None, float | None]:
    tp = sum(p == label and t == label for p, t in pairs)
    predicted = sum(p == label for p, _ in pairs)
    actual = sum(t == label for _, t in pairs)
    return (tp / predicted if predicted else None, tp / actual if actual else None)


def f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def gate_reasons(
    moves: dict[str, ClassMove],
    candidate: str,
    judged: int,
    max_drop: float,
    min_judged: int,
) -> list[str]:
    """Why the candidate (a version of class `candidate`) must not vote, one line a reason:
    too few judged texts, or another class's precision or recall dropping by more than
    `max_drop` on them. Empty: it passes."""
    reasons = []
    if judged < min_judged:
        reasons.append(
            f"only {judged} judged texts scored by the candidate (--min-judged {min_judged}): "
            "let it run in shadow until more results are corrected"
        )
    for label, move in moves.items():
        if label == candidate:
            continue
        for name, before, after in (
            ("precision", move.precision_before, move.precision_after),
            ("recall", move.recall_before, move.recall_after),
        ):
            if before is not None and after is not None and before - after > max_drop + EPSILON:
                reasons.append(
                    f"{label}: {name} would drop {before:.3f} → {after:.3f} "
                    f"(-{before - after:.3f} > --max-drop {max_drop:g}) on {judged} judged texts"
                )
    return reasons
