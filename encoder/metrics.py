"""The encoder stage's Prometheus metrics (the runtime's are in `triage.core.runtime.metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ENCODED = Counter("triage_encoder_texts", "Texts encoded (committed)", ["encoder"])
BATCH_SECONDS = Histogram(
    "triage_encoder_batch_seconds",
    "Time to encode one batch (a poll's texts, `encode_batch` at a time)",
    ["encoder"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ENCODER_INFO = Gauge(
    "triage_encoder_info", "The encoder a process serves (value 1)", ["encoder", "identity"]
)
