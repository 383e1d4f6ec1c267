"""Batch scoring of co-located binary classifiers.

Classifiers whose manifests declare the same fitted featuriser (same `featurizer_sha256`)
share one featurisation per batch and keep their own weights: the expensive text-to-features
step runs once per group, then each classifier applies its own linear model.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from consumers.artifacts import LoadedModel


class Scorer:
    def __init__(self, models: list[LoadedModel]) -> None:
        self.models = models
        groups: dict[str, list[LoadedModel]] = defaultdict(list)
        for model in models:
            groups[model.manifest.featurizer_sha256].append(model)
        self._groups = list(groups.values())

    @property
    def labels(self) -> list[str]:
        return [m.label for m in self.models]

    def score(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Label → probability that each text belongs to that class."""
        if not texts:
            return {m.label: np.empty(0) for m in self.models}
        out: dict[str, np.ndarray] = {}
        for group in self._groups:
            features = group[0].pipeline.named_steps["features"].transform(texts)
            for model in group:
                clf = model.pipeline.named_steps["clf"]
                positive = list(clf.classes_).index(1)
                out[model.label] = clf.predict_proba(features)[:, positive]
        return out
