"""`triage evaluate`: judge each classifier, the ensemble, and a multiclass baseline.

The ensemble decides with `triage.core.model.decision.decide`, the very function the online
aggregator uses, for the headline numbers and for every abstention threshold. When the
evaluation CSV is the models' own training file (same sha256), only the held-out split that
training did not see (same seed and size, read from the manifests) is scored, so the numbers
are honest. The baseline is one multiclass LogisticRegression, fitted here on the same features
and the same training rows, and scored on the same test rows. Heads that read an encoder's
features are scored on the embeddings the encoder serves (`training/embeddings.py`), and so is
the baseline, beside the same TF-IDF blocks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from triage.core.model.artifacts import LoadedModel, load_models
from triage.core.model.decision import decide
from triage.core.model.scoring import Scorer
from triage.training.data import DataError, Dataset, read_dataset
from triage.training.metrics import (
    binary_metrics,
    coverage_point,
    expected_calibration_error,
    reliability_bins,
    top_confusions,
)
from triage.training.train import SEED, TEST_SIZE, split, with_embeddings

log = logging.getLogger(__name__)

THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.0, 1.0, 0.05))
BASELINE_C = 10.0


@dataclass(frozen=True)
class TestSet:
    x_test: list[str]
    y_test: list[str]
    x_train: list[str] | None  # the models' training rows, for the baseline; None if unknown
    y_train: list[str] | None
    description: str


@dataclass(frozen=True)
class Evaluation:
    """The JSON-ready `summary` and the raw arrays the HTML report plots."""

    summary: dict[str, Any]
    labels: list[str]
    texts: list[str]
    y_true: np.ndarray
    scores: np.ndarray  # rows × labels: each classifier's probability
    predicted: list[str | None]
    confidence: np.ndarray
    baseline_proba: np.ndarray | None  # rows × labels


def evaluate(
    models_dir: Path, data_path: Path, threshold: float = 0.0, only: list[str] | None = None
) -> Evaluation:
    """Score `only` these classes' models (default: every model in `models_dir`)."""
    models = sorted(load_models(models_dir, only), key=lambda m: m.label)
    labels = [m.label for m in models]
    test = rows_to_score(models, read_dataset(data_path))
    known = set(labels)
    keep = [i for i, y in enumerate(test.y_test) if y in known]
    if not keep:
        raise DataError(f"{data_path}: no rows of the classes the models know ({labels})")
    x_test = [test.x_test[i] for i in keep]
    y_true = np.asarray([test.y_test[i] for i in keep])

    embed = embedder(models)
    by_label = Scorer(models).score(x_test, embed(x_test))
    scores = np.column_stack([by_label[label] for label in labels])
    rows = [dict(zip(labels, map(float, row), strict=True)) for row in scores]
    predicted = [decide(row, threshold).label for row in rows]
    # Calibration is about the winner whether or not a threshold would hold it back.
    winners = [decide(row) for row in rows]
    confidence = np.asarray([w.probability for w in winners])
    correct = np.asarray([w.label == y for w, y in zip(winners, y_true, strict=True)])
    baseline = _baseline(models[0], test, labels, x_test, embed)

    summary: dict[str, Any] = {
        "test_rows": len(y_true),
        "classes": len(labels),
        "test_split": test.description,
        "threshold": threshold,
        **_ensemble_metrics(y_true, predicted, confidence, correct, labels),
        **_baseline_metrics(y_true, baseline, labels),
        "coverage": _coverage(rows, y_true),
        "reliability": reliability_bins(confidence, correct),
        "confusions": _confusions(y_true, predicted, baseline, labels),
        "per_class": _per_class(models, y_true, predicted, scores),
    }
    return Evaluation(summary, labels, x_test, y_true, scores, predicted, confidence, baseline)


def _coverage(rows: list[dict[str, float]], y_true: np.ndarray) -> list[dict[str, Any]]:
    """Accuracy on the answered rows and their share, abstaining below each threshold."""
    points = []
    for threshold in THRESHOLDS:
        labels = [decide(row, threshold).label for row in rows]
        answered = np.asarray([label is not None for label in labels])
        correct = answered & (np.asarray([label or "" for label in labels]) == y_true)
        points.append(coverage_point(threshold, answered, correct))
    return points


def rows_to_score(models: list[LoadedModel], data: Dataset) -> TestSet:
    """The rows to score, and the training rows behind the models (for the baseline)."""
    runs = {_run_of(m) for m in models}
    if data.sha256 in {sha for sha, _, _ in runs}:
        if len(runs) > 1:
            raise DataError(
                f"{data.path}: the models were trained on different files or splits, so no "
                "single held-out split is unseen by all of them; evaluate them separately "
                "(--label) or retrain them together"
            )
        _, seed, test_size = runs.pop()
        x_train, x_test, y_train, y_test = split(data, test_size, seed)
        return TestSet(
            x_test,
            y_test,
            x_train,
            y_train,
            f"held-out {test_size:.0%} of the training file (seed {seed})",
        )
    manifest = models[0].manifest
    _, seed, test_size = _run_of(models[0])
    x_train = y_train = None
    try:
        train_data = read_dataset(Path(manifest.training_data.path))
        if train_data.sha256 == manifest.training_data.sha256:
            x_train, _, y_train, _ = split(train_data, test_size, seed)
    except DataError:
        pass
    if x_train is None:
        log.warning(
            "training file %s is missing or changed: no baseline", manifest.training_data.path
        )
    return TestSet(data.texts, data.labels, x_train, y_train, "the whole file")


def _run_of(model: LoadedModel) -> tuple[str, int, float]:
    params = model.manifest.params
    return (
        model.manifest.training_data.sha256,
        int(params.get("seed", SEED)),
        float(params.get("test_size", TEST_SIZE)),
    )


def _ensemble_metrics(y_true, predicted, confidence, correct, labels) -> dict[str, float]:
    named = [p or "" for p in predicted]  # an abstention counts as a wrong answer
    return {
        "accuracy": round(float(accuracy_score(y_true, named)), 4),
        "macro_f1": round(
            float(f1_score(y_true, named, labels=labels, average="macro", zero_division=0)), 4
        ),
        "ece": round(expected_calibration_error(confidence, correct), 4),
        "mean_confidence": round(float(confidence.mean()), 4),
        "abstained": sum(p is None for p in predicted),
    }


def embedder(models: list[LoadedModel]) -> Callable[[list[str]], np.ndarray | None]:
    """Texts → the embeddings the models' encoder serves (None for heads that read text)."""
    identities = {m.manifest.encoder for m in models}
    if len(identities) > 1:
        raise DataError(
            "the models read different inputs ("
            + ", ".join(sorted(i or "text" for i in identities))
            + "); evaluate each input's heads separately (--label)"
        )
    identity = identities.pop()
    if identity is None:
        return lambda texts: None
    from triage.training.embeddings import embed, load_encoder

    encoder = load_encoder(identity.partition("@")[0], trained_on=identity)
    return lambda texts: embed(encoder, texts)


def _baseline(
    model: LoadedModel,
    test: TestSet,
    labels: list[str],
    x_test: list[str],
    embed: Callable[[list[str]], np.ndarray | None],
):
    """Class probabilities of one multiclass model on the same features and training rows."""
    if test.x_train is None or test.y_train is None:
        return None
    features = model.pipeline.named_steps["features"]
    known = set(labels)
    rows = [i for i, y in enumerate(test.y_train) if y in known]
    y_train = np.asarray([test.y_train[i] for i in rows])
    if len(set(y_train)) < 2:
        return None
    log.info("fitting the multiclass baseline on %d rows", len(rows))
    clf = LogisticRegression(C=BASELINE_C, max_iter=2000, random_state=SEED)
    weight = model.manifest.embedding_weight
    x_train = [test.x_train[i] for i in rows]
    clf.fit(with_embeddings(features.transform(x_train), embed(x_train), weight), y_train)
    proba = clf.predict_proba(with_embeddings(features.transform(x_test), embed(x_test), weight))
    out = np.zeros((len(x_test), len(labels)))
    for j, label in enumerate(clf.classes_):
        out[:, labels.index(label)] = proba[:, j]
    return out


def _baseline_metrics(y_true, proba, labels) -> dict[str, float | None]:
    if proba is None:
        return {"baseline_accuracy": None, "baseline_macro_f1": None, "baseline_ece": None}
    predicted = np.asarray(labels)[proba.argmax(axis=1)]
    correct = predicted == y_true
    return {
        "baseline_accuracy": round(float(accuracy_score(y_true, predicted)), 4),
        "baseline_macro_f1": round(
            float(f1_score(y_true, predicted, labels=labels, average="macro", zero_division=0)), 4
        ),
        "baseline_ece": round(expected_calibration_error(proba.max(axis=1), correct), 4),
    }


def _confusions(y_true, predicted, baseline, labels, n: int = 15) -> list[dict[str, Any]]:
    pairs = top_confusions(list(y_true), predicted, n)
    if baseline is not None:
        base_pred = np.asarray(labels)[baseline.argmax(axis=1)]
        for pair in pairs:
            pair["baseline_count"] = int(
                ((y_true == pair["true"]) & (base_pred == pair["predicted"])).sum()
            )
    return pairs


def _per_class(models, y_true, predicted, scores) -> dict[str, dict[str, Any]]:
    labels = [m.label for m in models]
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, [p or "" for p in predicted], labels=labels, zero_division=0
    )
    out = {}
    for j, model in enumerate(models):
        own = binary_metrics((y_true == model.label).astype(int), scores[:, j])
        out[model.label] = {
            "precision": own["precision"],
            "recall": own["recall"],
            "f1": own["f1"],
            "roc_auc": own.get("roc_auc"),
            "pr_auc": own.get("pr_auc"),
            "brier": own["brier"],
            "support": int(support[j]),
            "ensemble_precision": round(float(precision[j]), 4),
            "ensemble_recall": round(float(recall[j]), 4),
            "ensemble_f1": round(float(f1[j]), 4),
            "version": model.version,
            "calibration": model.manifest.params.get("calibration", "none"),
        }
    return out


def format_report(summary: dict[str, Any]) -> str:
    """The summary as plain-text tables for a terminal."""
    head = (
        f"{'class':30} {'prec':>6} {'recall':>6} {'f1':>6} {'roc_auc':>7} {'pr_auc':>6} "
        f"{'brier':>6} {'ens_f1':>6} {'n':>4}"
    )
    lines = ["per classifier (binary, p >= 0.5) and its F1 inside the ensemble", head]
    for label, m in summary["per_class"].items():
        lines.append(
            f"{label[:30]:30} {m['precision']:6.3f} {m['recall']:6.3f} {m['f1']:6.3f} "
            f"{_num(m['roc_auc']):>7} {_num(m['pr_auc']):>6} {m['brier']:6.4f} "
            f"{m['ensemble_f1']:6.3f} {m['support']:4d}"
        )
    lines += [
        "",
        f"test rows: {summary['test_rows']} ({summary['test_split']}), "
        f"{summary['classes']} classes",
        "",
        f"{'':22} {'ensemble':>9} {'baseline':>9}",
    ]
    for name, key in [("accuracy", "accuracy"), ("macro F1", "macro_f1"), ("ECE (15 bins)", "ece")]:
        lines.append(f"{name:22} {summary[key]:9.4f} {_num(summary['baseline_' + key], 4):>9}")
    lines += ["", "abstain below  coverage  accuracy"]
    for point in summary["coverage"][::2]:
        lines.append(
            f"{point['threshold']:13.2f} {point['coverage']:9.3f} {_num(point['accuracy']):>9}"
        )
    lines += ["", "most confused (true -> predicted: ensemble / baseline)"]
    for pair in summary["confusions"][:10]:
        lines.append(
            f"  {pair['true']} -> {pair['predicted']}: {pair['count']}"
            f" / {pair.get('baseline_count', '-')}"
        )
    return "\n".join(lines)


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
