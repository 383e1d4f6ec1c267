"""The impact of a candidate: the same texts decided twice, before and after, judged by truth.

Pure logic, no Kafka, no model: given one `Outcome` per text (the label decided with the
current voters, the label decided with the candidate in its class's place, and the true label
when known), `impact` returns every class's precision, recall and F1 before and after on the
judged texts, and the flow of changed decisions (from class → to class, how many, how many of
them judged, right and previously right). `triage compare` feeds it offline decisions with the
data's labels; `triage shadow-report`, `triage gate` and `triage promote` feed it the committed
results, the shadow scores and the corrections, and `gate_reasons` reads the promotion gate's
verdict from it. One function, so offline and live tables cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Where a key needs a string: the pipeline abstained, or (as a truth) none of our classes.
# An abstention whose truth is NONE is right: the pipeline declined a text of no class.
NONE = "-"
# A drop smaller than this is float noise, not a reason to refuse (0.8 - 0.78 > 0.02 in floats).
EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Outcome:
    """One text decided twice. `truth` None: not judged (no label or correction known);
    pass `NONE` for a text judged to be of none of our classes."""

    before: str | None
    after: str | None
    truth: str | None = None


@dataclass(frozen=True, slots=True)
class Scores:
    """Precision, recall, F1 of one class on the judged texts, with the counts behind them.
    A figure with no denominator (no predictions, no true rows) is 0, as scikit-learn's
    `zero_division=0`, so the offline report matches `triage evaluate`."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def support(self) -> int:
        return self.tp + self.fn

    def defined(self, figure: str) -> float | None:
        """The figure ("precision", "recall" or "f1"), None where it has no denominator (the class
        was never predicted, or has no judged text; F1: either): the gate compares only these."""
        undefined = {
            "precision": not self.tp + self.fp,
            "recall": not self.tp + self.fn,
            "f1": not (self.tp + self.fp and self.tp + self.fn),
        }[figure]
        return None if undefined else float(getattr(self, figure))


@dataclass(frozen=True, slots=True)
class ClassImpact:
    label: str
    before: Scores
    after: Scores

    def delta(self, figure: str) -> float:
        """after - before of "precision", "recall" or "f1"."""
        return float(getattr(self.after, figure) - getattr(self.before, figure))


@dataclass(frozen=True, slots=True)
class Flow:
    """Decisions that moved from `source` to `target` (either may be NONE: abstained)."""

    source: str
    target: str
    count: int
    judged: int  # of them, with a known truth
    right: int  # judged and the after-label is the truth
    was_right: int  # judged and the before-label was the truth

    @property
    def wrong(self) -> int:
        return self.judged - self.right


@dataclass(frozen=True, slots=True)
class Impact:
    texts: int
    judged: int
    changed: int
    per_class: dict[str, ClassImpact]
    flows: list[Flow]  # most changed decisions first, then by (source, target)

    def as_dict(self, undefined_as_null: bool = False) -> dict[str, Any]:
        """JSON-ready, figures rounded to 4 digits: the one vocabulary of a candidate's impact
        (docs/impact.md), for `compare --json`, `shadow-report --json` and `gate --json`.
        An abstention is null in `from` and `to`. A figure without a denominator is 0 (as
        scikit-learn's `zero_division=0`, so offline figures match `triage evaluate`), or
        null with `undefined_as_null` (the live reports, where the gate skips such figures)."""
        return {
            "texts": self.texts,
            "judged": self.judged,
            "changed": self.changed,
            "changed_judged": sum(f.judged for f in self.flows),
            "per_class": {
                label: _class_json(c, undefined_as_null) for label, c in self.per_class.items()
            },
            "flows": [
                {
                    "from": _label(f.source),
                    "to": _label(f.target),
                    "changed": f.count,
                    "judged": f.judged,
                    "right": f.right,
                    "wrong": f.wrong,
                    "was_right": f.was_right,
                }
                for f in self.flows
            ],
        }


def _label(label: str) -> str | None:
    return None if label == NONE else label


def _class_json(c: ClassImpact, undefined_as_null: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"support": c.before.support}
    for figure in _NAMES:
        if undefined_as_null:
            before, after = c.before.defined(figure), c.after.defined(figure)
        else:
            before, after = getattr(c.before, figure), getattr(c.after, figure)
        delta = None if before is None or after is None else round(after - before, 4)
        out |= {
            f"{figure}_before": None if before is None else round(float(before), 4),
            f"{figure}_after": None if after is None else round(float(after), 4),
            f"{figure}_delta": delta,
        }
    return out


_NAMES = ("precision", "recall", "f1")


def impact(outcomes: Iterable[Outcome], labels: Iterable[str] = ()) -> Impact:
    """Per-class figures (every class in `labels` and every class seen) and the flow table."""
    rows = list(outcomes)
    classes = set(labels)
    for o in rows:
        classes.update(x for x in (o.before, o.after, o.truth) if x is not None and x != NONE)
    judged = [o for o in rows if o.truth is not None]
    per_class = {
        label: ClassImpact(
            label,
            _scores(label, [(o.before, o.truth) for o in judged]),
            _scores(label, [(o.after, o.truth) for o in judged]),
        )
        for label in sorted(classes)
    }
    return Impact(
        len(rows), len(judged), sum(o.before != o.after for o in rows), per_class, _flows(rows)
    )


def _scores(label: str, pairs: list[tuple[str | None, str | None]]) -> Scores:
    tp = sum(p == label and t == label for p, t in pairs)
    fp = sum(p == label and t != label for p, t in pairs)
    fn = sum(p != label and t == label for p, t in pairs)
    return Scores(tp, fp, fn)


def _flows(rows: list[Outcome]) -> list[Flow]:
    tally: dict[tuple[str, str], list[int]] = {}
    for o in rows:
        if o.before == o.after:
            continue
        counts = tally.setdefault((o.before or NONE, o.after or NONE), [0, 0, 0, 0])
        counts[0] += 1
        if o.truth is not None:
            counts[1] += 1
            counts[2] += (o.after or NONE) == o.truth
            counts[3] += (o.before or NONE) == o.truth
    flows = [Flow(s, t, *counts) for (s, t), counts in tally.items()]
    return sorted(flows, key=lambda f: (-f.count, f.source, f.target))


def gate_reasons(impact: Impact, candidate: str, max_drop: float, min_judged: int) -> list[str]:
    """Why the candidate (a version of class `candidate`) must not vote, one line a reason:
    too few judged texts, or another class's precision or recall dropping by more than
    `max_drop` on them (only where defined before and after). Empty: it passes."""
    judged, reasons = impact.judged, []
    if judged < min_judged:
        reasons.append(
            f"only {judged} judged texts scored by the candidate (--min-judged {min_judged}): "
            "let it run in shadow until more results are corrected"
        )
    for label, c in impact.per_class.items():
        if label == candidate:
            continue  # the candidate's own class is its team's call
        for name in ("precision", "recall"):
            before, after = c.before.defined(name), c.after.defined(name)
            if before is not None and after is not None and before - after > max_drop + EPSILON:
                reasons.append(
                    f"{label}: {name} would drop {before:.3f} → {after:.3f} "
                    f"(-{before - after:.3f} > --max-drop {max_drop:g}) on {judged} judged texts"
                )
    return reasons
