"""The classifier's Prometheus metrics (the runtime's are in `triage.core.runtime.metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SCORING_SECONDS = Histogram(
    "triage_scoring_seconds",
    "Time to score one polled partition batch (all hosted classes)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
MODEL_INFO = Gauge(
    "triage_model_info",
    "Model versions a classifier process serves (value 1)",
    ["label", "version"],
)
FEATURES_SKIPPED = Counter(
    "triage_features_skipped",
    "Features records of an encoder the hosted heads were not trained on (not scored)",
    ["encoder"],
)
ENCODING_SECONDS = Histogram(
    "triage_classifier_encoding_seconds",
    "Time to encode one polled partition batch, heads' encoder in this process (--with-encoder)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
