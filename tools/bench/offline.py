"""The bench's inputs and what the pipeline is checked against, computed without it: the classes
of the labelled CSV kept, the models trained on its training part (or loaded), the encoder their
heads read, the offline decision of every text (which the pipeline's labels must equal), the
labels of scikit-learn's default `predict_proba` path, and the accuracy of either against the
held-out classes.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from triage.core.model.artifacts import LoadedModel
from triage.core.model.decision import decide
from triage.encoder.sentence import SentenceEncoder
from triage.training.embeddings import load_encoder
from triage.training.train import (
    DataError,
    Dataset,
    Options,
    split,
    train,
    with_embeddings,
)

log = logging.getLogger(__name__)


def select_classes(data: Dataset, k: int | None) -> Dataset:
    classes = sorted(set(data.labels))[: k or None]
    if k and len(classes) < k:
        raise DataError(f"{data.path}: has {len(classes)} classes, --classes {k} asked")
    keep = [i for i, label in enumerate(data.labels) if label in classes]
    return Dataset(
        data.path, data.sha256, [data.texts[i] for i in keep], [data.labels[i] for i in keep]
    )


def prepare_models(
    data: Dataset, models_dir: Path | None, encoder: str | None = None
) -> tuple[Path, list[str], list[str]]:
    """A models folder trained on the training part of the split, and the held-out texts and
    their classes."""
    _, held_out, _, held_out_labels = split(data)
    if models_dir is None:
        models_dir = Path(tempfile.mkdtemp(prefix="triage-bench-models-"))
        started = time.monotonic()
        train(data, models_dir, options=Options(encoder=encoder))
        log.info(
            "trained %d classifiers in %.1fs", len(set(data.labels)), time.monotonic() - started
        )
    return models_dir, held_out, held_out_labels


def encoder_of(models: list[LoadedModel], threads: int | None) -> SentenceEncoder | None:
    identities = {m.manifest.encoder for m in models}
    if len(identities) > 1:
        raise DataError("bench runs heads of one input; these models read several")
    identity = identities.pop()
    if identity is None:
        return None
    encoder = load_encoder(identity.partition("@")[0], trained_on=identity)
    if threads is not None:
        encoder = SentenceEncoder(encoder.name, threads)
    return encoder


def default_path_labels(
    models: list[LoadedModel], texts: list[str], embeddings: np.ndarray | None = None
) -> list[str | None]:
    """Winners through each model's scikit-learn steps, without the fast scorer."""
    columns = {}
    for m in models:
        x = m.pipeline.named_steps["features"].transform(texts)
        x = with_embeddings(x, embeddings, m.manifest.embedding_weight)
        clf = m.pipeline.named_steps["clf"]
        columns[m.label] = clf.predict_proba(x)[:, list(clf.classes_).index(1)]
    return winners(columns)


def winners(columns: dict[str, Any]) -> list[str | None]:
    """The decision for every text, from each class's column of probabilities."""
    count = len(next(iter(columns.values()), []))
    return [decide({k: float(v[i]) for k, v in columns.items()}).label for i in range(count)]


def accuracy(predicted: list[str | None], truth: list[str]) -> float:
    return round(sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth), 5)
