"""The decision rule: which label wins a set of per-class probabilities.

One-vs-rest, as scikit-learn's OneVsRestClassifier does: the highest probability wins; below the
threshold the pipeline abstains. Offline evaluation and the online aggregator both call this
function, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Decision:
    label: str | None
    probability: float


def decide(scores: Mapping[str, float], threshold: float = 0.0) -> Decision:
    """Argmax of `scores`; ties go to the alphabetically first label so replays agree."""
    if not scores:
        return Decision(None, 0.0)
    label = min(scores, key=lambda name: (-scores[name], name))
    probability = scores[label]
    if probability < threshold:
        return Decision(None, probability)
    return Decision(label, probability)


def would_change_winner(
    votes: Mapping[str, float], label: str, probability: float, threshold: float = 0.0
) -> bool:
    """Whether `label` voting with `probability` (replacing its vote, or added) changes the
    winner of `votes`: how a shadow version is judged before it is promoted."""
    actual = decide(votes, threshold).label
    return decide({**votes, label: probability}, threshold).label != actual
