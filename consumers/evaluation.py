"""`triage evaluate`: judge each classifier, the ensemble, and a multiclass baseline.

The ensemble decides with `aggregator.decision.decide`, the very function the online
aggregator uses. When the evaluation CSV is the models' own training file (same sha256), only
the held-out split that training did not see is scored, so the numbers are honest. The baseline
is one multiclass LogisticRegression on the same features and the same training rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from aggregator.decision import decide
from consumers.artifacts import load_models
from consumers.scoring import Scorer
from consumers.training import SEED, DataError, Dataset, read_dataset, split


def evaluate(models_dir: Path, data_path: Path, threshold: float = 0.0) -> dict[str, Any]:
    models = load_models(models_dir)
    data = read_dataset(data_path)
    train_data = _training_data(models[0].manifest.training_data.path, data)
    x_train, held_x, y_train, held_y = split(train_data)
    if data.sha256 == train_data.sha256:
        x_test, y_test = held_x, held_y
    else:
        x_test, y_test = data.texts, data.labels
    labels = sorted(m.label for m in models)
    keep = [i for i, y in enumerate(y_test) if y in labels]
    if not keep:
        raise DataError(f"{data_path}: no rows of the classes the models know ({labels})")
    x_test = [x_test[i] for i in keep]
    y_test = [y_test[i] for i in keep]

    scores = Scorer(models).score(x_test)
    predicted = [
        decide({label: float(scores[label][i]) for label in labels}, threshold).label
        for i in range(len(x_test))
    ]
    baseline = _baseline(models, x_train, y_train, labels, x_test)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_test, [p or "" for p in predicted], labels=labels, zero_division=0
    )
    return {
        "test_rows": len(y_test),
        "classes": len(labels),
        "accuracy": round(float(accuracy_score(y_test, [p or "" for p in predicted])), 4),
        "macro_f1": round(float(f1_score(y_test, [p or "" for p in predicted], labels=labels,
                                         average="macro", zero_division=0)), 4),
        "baseline_accuracy": round(float(accuracy_score(y_test, baseline)), 4),
        "per_class": {
            label: {
                "precision": round(float(precision[i]), 4),
                "recall": round(float(recall[i]), 4),
                "f1": round(float(f1[i]), 4),
                "support": int(support[i]),
                "version": next(m.version for m in models if m.label == label),
            }
            for i, label in enumerate(labels)
        },
    }


def _training_data(path: str, fallback: Dataset) -> Dataset:
    try:
        return read_dataset(Path(path))
    except DataError:
        return fallback


def _baseline(models, x_train, y_train, labels, x_test) -> list[str]:
    features = models[0].pipeline.named_steps["features"]
    rows = [i for i, y in enumerate(y_train) if y in labels]
    xt = features.transform([x_train[i] for i in rows])
    yt = np.asarray([y_train[i] for i in rows])
    clf = LogisticRegression(C=10.0, max_iter=2000, random_state=SEED).fit(xt, yt)
    return list(clf.predict(features.transform(x_test)))


def format_report(report: dict[str, Any]) -> str:
    lines = [f"{'class':32} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>7}"]
    for label, m in report["per_class"].items():
        lines.append(f"{label:32} {m['precision']:9.3f} {m['recall']:7.3f} {m['f1']:6.3f} "
                     f"{m['support']:7d}")
    lines.append("")
    lines.append(f"ensemble accuracy   {report['accuracy']:.4f}  (macro F1 {report['macro_f1']:.4f},"
                 f" {report['test_rows']} rows, {report['classes']} classes)")
    lines.append(f"multiclass baseline {report['baseline_accuracy']:.4f}")
    return "\n".join(lines)
