"""Metrics for one binary classifier and for the argmax ensemble, as plain functions.

Training records `binary_metrics` in every manifest and evaluation reports them per class on the
test split; the ensemble is judged by accuracy, the expected calibration error (ECE) of the
winning probability, the accuracy it keeps when it abstains below a threshold, and which class
pairs it confuses most. Inputs are numpy arrays or lists; outputs are JSON-ready.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from triage.core.model.quality import BINS

ECE_BINS = 15


def binary_metrics(y: np.ndarray, proba: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Precision, recall and F1 at `threshold`; ROC AUC, PR AUC and Brier score of `proba`."""
    y = np.asarray(y).astype(int)
    proba = np.asarray(proba, dtype=float)
    predicted = (proba >= threshold).astype(int)
    metrics = {
        "precision": precision_score(y, predicted, zero_division=0),
        "recall": recall_score(y, predicted, zero_division=0),
        "f1": f1_score(y, predicted, zero_division=0),
        "brier": brier_score_loss(y, proba, labels=[0, 1]),
        "positives": int(y.sum()),
        "rows": len(y),
    }
    if 0 < y.sum() < len(y):  # AUCs are undefined with one class only
        metrics["roc_auc"] = roc_auc_score(y, proba)
        metrics["pr_auc"] = average_precision_score(y, proba)
    return {k: round(float(v), 4) for k, v in metrics.items()}


def score_histogram(proba: np.ndarray) -> list[float]:
    """Fractions of `proba` per tenth of [0, 1], binned as the monitor bins live scores."""
    proba = np.asarray(proba, dtype=float)
    counts = np.bincount(_bin_index(proba, BINS), minlength=BINS)
    return [round(float(c) / max(len(proba), 1), 6) for c in counts]


def _bin_index(confidence: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bins over [0, 1]; a confidence of exactly 1 falls in the last bin."""
    return np.minimum((confidence * bins).astype(int), bins - 1)


def reliability_bins(
    confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS
) -> list[dict[str, float]]:
    """Per non-empty bin: its range, row count, mean confidence and accuracy."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    index = _bin_index(confidence, bins)
    out = []
    for b in range(bins):
        in_bin = index == b
        if in_bin.any():
            out.append(
                {
                    "lower": round(b / bins, 4),
                    "upper": round((b + 1) / bins, 4),
                    "count": int(in_bin.sum()),
                    "confidence": round(float(confidence[in_bin].mean()), 4),
                    "accuracy": round(float(correct[in_bin].mean()), 4),
                }
            )
    return out


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Row-weighted mean |accuracy - confidence| over equal-width confidence bins."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    if len(confidence) == 0:
        return 0.0
    index = _bin_index(confidence, bins)
    total = 0.0
    for b in range(bins):
        in_bin = index == b
        if in_bin.any():
            gap = abs(correct[in_bin].mean() - confidence[in_bin].mean())
            total += in_bin.sum() * gap
    return float(total / len(confidence))


def coverage_point(threshold: float, answered: np.ndarray, correct: np.ndarray) -> dict:
    """How many rows get an answer at `threshold`, and how many of those are right."""
    answered = np.asarray(answered, dtype=bool)
    correct = np.asarray(correct, dtype=bool)
    n = int(answered.sum())
    return {
        "threshold": round(float(threshold), 4),
        "coverage": round(n / len(answered), 4) if len(answered) else 0.0,
        "accuracy": round(float(correct[answered].mean()), 4) if n else None,
        "answered": n,
    }


def top_confusions(
    y_true: Sequence[str], y_pred: Sequence[str | None], n: int = 10
) -> list[dict[str, object]]:
    """The `n` most frequent (true, predicted) pairs that differ; abstentions are not errors."""
    pairs = Counter((t, p) for t, p in zip(y_true, y_pred, strict=True) if p is not None and t != p)
    ranked = sorted(pairs.items(), key=lambda item: (-item[1], item[0]))
    return [{"true": t, "predicted": p, "count": c} for (t, p), c in ranked[:n]]
