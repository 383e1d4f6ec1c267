"""The monitor's Prometheus metrics: live quality per class version, and corrections' outcomes.

The quality figures are gauges recomputed from the monitor's restored state after each
committed batch, so they survive a restart as they were (a counter would start again at 0).
`window` is `window` (the sliding window) or `version` (since the version's first result). The
raw confusion counts are exported beside the ratios: with several monitor instances each holds
some partitions, and the alert adds counts before dividing. Every live series carries the
class version's `owner` (its team, or `unowned`), so its alerts carry it to Alertmanager; the
offline series keep only `label` and `version` (the alerts match them on those).
"""

from __future__ import annotations

import contextlib
from collections import Counter as Tally
from collections.abc import Mapping

from prometheus_client import Counter, Gauge

from triage.core.model.quality import Reference, calibration_error, precision, psi, recall, support
from triage.schemas.models import QualityTally

_LABELS = ["label", "version", "window", "owner"]
PRECISION = Gauge("triage_quality_precision", "Live precision of a class version", _LABELS)
RECALL = Gauge("triage_quality_recall", "Live recall of a class version", _LABELS)
SUPPORT = Gauge(
    "triage_quality_support", "Corrected results whose true label is the class", _LABELS
)
TRUE_POSITIVES = Gauge("triage_quality_true_positives", "Corrected: routed here, right", _LABELS)
FALSE_POSITIVES = Gauge("triage_quality_false_positives", "Corrected: routed here, wrong", _LABELS)
FALSE_NEGATIVES = Gauge("triage_quality_false_negatives", "Corrected: belonged here", _LABELS)
ABSTENTIONS = Gauge(
    "triage_quality_abstentions",
    "Corrected results of the class the pipeline abstained on",
    _LABELS,
)
CALIBRATION_ERROR = Gauge(
    "triage_quality_calibration_error",
    "Expected calibration error of the class's score on corrected results",
    _LABELS,
)
PSI = Gauge(
    "triage_quality_psi",
    "Population stability index of the class's scores against its training validation scores",
    _LABELS,
)
RESULTS = Gauge("triage_quality_results", "Results scored by the class version", _LABELS)
OFFLINE_PRECISION = Gauge(
    "triage_quality_offline_precision",
    "Precision of the class version on its validation split, from its manifest",
    ["label", "version"],
)
OFFLINE_RECALL = Gauge(
    "triage_quality_offline_recall",
    "Recall of the class version on its validation split, from its manifest",
    ["label", "version"],
)
CORRECTIONS = Counter("triage_corrections", "Corrections by what became of them", ["outcome"])
OUTCOMES = ("counted", "held", "unknown_id", "unknown_label", "duplicate_correction", "invalid")


def start_monitor_series(references: Mapping[tuple[str, str], Reference]) -> None:
    for outcome in OUTCOMES:
        CORRECTIONS.labels(outcome)
    for (label, version), ref in references.items():
        OFFLINE_PRECISION.labels(label, version).set(ref.precision)
        OFFLINE_RECALL.labels(label, version).set(ref.recall)


def count_corrections(outcomes: list[str]) -> None:
    for outcome, n in Tally(outcomes).items():
        CORRECTIONS.labels(outcome).inc(n)


_QUALITY = (
    PRECISION,
    RECALL,
    SUPPORT,
    TRUE_POSITIVES,
    FALSE_POSITIVES,
    FALSE_NEGATIVES,
    ABSTENTIONS,
    CALIBRATION_ERROR,
    PSI,
    RESULTS,
)


# The owner each class version's series were last exported under: when it changes (the
# announcement with the owner arrives after the counts), the old series must go.
_exported_owner: dict[tuple[str, str], str] = {}


def remove_quality(label: str, version: str) -> None:
    """A class version this instance no longer counts (its partitions moved): no series."""
    owner = _exported_owner.pop((label, version), None)
    if owner is None:
        return  # (never set)
    for gauge in _QUALITY:
        for window in ("window", "version"):
            with contextlib.suppress(KeyError):  # (only one window set)
                gauge.remove(label, version, window, owner)


def set_quality(
    label: str,
    version: str,
    window: str,
    t: QualityTally,
    reference: Reference | None,
    owner: str,
) -> None:
    """The gauges of one class version over one window; a ratio with nothing under it is NaN."""
    if _exported_owner.get((label, version), owner) != owner:
        remove_quality(label, version)
    _exported_owner[(label, version)] = owner
    values = {
        PRECISION: precision(t),
        RECALL: recall(t),
        SUPPORT: support(t),
        TRUE_POSITIVES: t.tp,
        FALSE_POSITIVES: t.fp,
        FALSE_NEGATIVES: t.fn,
        ABSTENTIONS: t.abstained,
        CALIBRATION_ERROR: calibration_error(t),
        PSI: psi(t.hist, reference.score_histogram if reference else None),
        RESULTS: t.results,
    }
    for gauge, value in values.items():
        gauge.labels(label, version, window, owner).set(float("nan") if value is None else value)
