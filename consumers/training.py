"""`triage train`: one binary classifier per class, each saved with its manifest.

Features default to word and character n-gram TF-IDF, fitted once per training run and copied
into every class's pipeline, so each artifact stands alone while co-located classifiers from
the same run can share featurisation. Each class is fitted one-vs-rest on a stratified split
and validated on the held-out part. Training one class never touches another class's folder.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
from joblib import Parallel, delayed
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import FeatureUnion, Pipeline

from consumers.artifacts import Manifest, TrainingData, next_version, save_model

log = logging.getLogger(__name__)

FEATURIZER = "tfidf-word1-2+char_wb2-5"
SEED = 13


class DataError(Exception):
    """The training or evaluation CSV cannot be used; the message says why."""


@dataclass(frozen=True)
class Dataset:
    path: Path
    sha256: str
    texts: list[str]
    labels: list[str]


def read_dataset(path: Path) -> Dataset:
    """A CSV with columns `text,category`."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    if not rows or not {"text", "category"} <= set(rows[0]):
        raise DataError(f"{path}: expected a CSV with columns text,category")
    rows = [r for r in rows if r["text"] and r["category"]]
    return Dataset(
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        texts=[r["text"] for r in rows],
        labels=[r["category"] for r in rows],
    )


def featurizer() -> FeatureUnion:
    return FeatureUnion(
        [
            ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                     min_df=2)),
        ]
    )


def split(data: Dataset, test_size: float = 0.2, seed: int = SEED):
    """The stratified train/validation split that training and evaluation share."""
    return train_test_split(
        data.texts, data.labels, test_size=test_size, random_state=seed, stratify=data.labels
    )


def train(
    data: Dataset,
    out: Path,
    labels: list[str] | None = None,
    c: float = 10.0,
    n_jobs: int = -1,
) -> list[Manifest]:
    classes = sorted(set(data.labels))
    wanted = labels or classes
    unknown = sorted(set(wanted) - set(classes))
    if unknown:
        raise DataError(f"{data.path}: no rows for class(es) {', '.join(unknown)}")
    started = time.monotonic()
    x_train, x_val, y_train, y_val = split(data)
    features = featurizer().fit(x_train)
    xt, xv = features.transform(x_train), features.transform(x_val)
    features_sha = hashlib.sha256(_pickled(features)).hexdigest()
    y_train_arr, y_val_arr = np.asarray(y_train), np.asarray(y_val)
    log.info("featurised %d texts in %.1fs", len(x_train), time.monotonic() - started)
    fitted = Parallel(n_jobs=n_jobs)(
        delayed(_fit_one)(xt, (y_train_arr == label).astype(int), c) for label in wanted
    )
    manifests = []
    for label, clf in zip(wanted, fitted, strict=True):
        pipeline = Pipeline([("features", features), ("clf", clf)])
        manifests.append(
            save_model(
                pipeline,
                out,
                label=label,
                version=next_version(out, label),
                featurizer=FEATURIZER,
                featurizer_sha256=features_sha,
                training_data=TrainingData(
                    path=str(data.path), sha256=data.sha256, rows=len(x_train),
                    positives=int((y_train_arr == label).sum()),
                ),
                params={"C": c, "seed": SEED, "model": "LogisticRegression"},
                metrics=_binary_metrics(clf, xv, (y_val_arr == label).astype(int)),
            )
        )
    log.info("trained %d classifiers in %.1fs", len(manifests), time.monotonic() - started)
    return manifests


def _fit_one(x, y, c: float) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=1000, solver="liblinear", random_state=SEED).fit(x, y)


def _binary_metrics(clf: LogisticRegression, x, y) -> dict[str, float]:
    proba = clf.predict_proba(x)[:, list(clf.classes_).index(1)]
    predicted = (proba >= 0.5).astype(int)
    metrics = {
        "precision": precision_score(y, predicted, zero_division=0),
        "recall": recall_score(y, predicted, zero_division=0),
        "f1": f1_score(y, predicted, zero_division=0),
        "validation_rows": len(y),
    }
    if 0 < y.sum() < len(y):
        metrics["roc_auc"] = roc_auc_score(y, proba)
    return {k: round(float(v), 4) for k, v in metrics.items()}


def _pickled(obj) -> bytes:
    import io

    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()
