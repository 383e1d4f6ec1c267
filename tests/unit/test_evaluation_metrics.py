"""The metric functions behind `triage evaluate`, on numbers worked out by hand."""

import numpy as np
import pytest

from triage.training.metrics import (
    binary_metrics,
    coverage_point,
    expected_calibration_error,
    reliability_bins,
    top_confusions,
)


def test_ece_is_zero_when_confidence_matches_accuracy():
    confidence = np.full(10, 0.9)
    correct = np.array([1] * 9 + [0])
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.0)


def test_ece_weighs_each_bin_by_its_rows():
    # 4 rows at 0.95 all wrong (gap 0.95), 6 rows at 0.5 half right (gap 0)
    confidence = np.array([0.95] * 4 + [0.5] * 6)
    correct = np.array([0] * 4 + [1, 0] * 3)
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.4 * 0.95)


def test_ece_uses_fifteen_equal_width_bins_with_one_in_the_last():
    # 0.30 is in bin [0.267, 0.333), 0.36 in the next one, so their gaps do not cancel out
    confidence = np.array([0.30, 0.36])
    correct = np.array([1, 0])
    assert expected_calibration_error(confidence, correct) == pytest.approx((0.7 + 0.36) / 2)
    bins = reliability_bins(np.array([1.0, 0.99]), np.array([1, 1]))
    assert len(bins) == 1 and bins[0]["count"] == 2 and bins[0]["upper"] == 1.0


def test_reliability_bins_report_confidence_and_accuracy():
    bins = reliability_bins(np.array([0.1, 0.12, 0.9]), np.array([0, 1, 1]))
    assert [b["count"] for b in bins] == [2, 1]
    assert bins[0]["accuracy"] == 0.5 and bins[0]["confidence"] == pytest.approx(0.11)


def test_binary_metrics_of_a_perfect_ranking():
    y = np.array([0, 0, 1, 1])
    metrics = binary_metrics(y, np.array([0.1, 0.6, 0.7, 0.9]))
    assert metrics["roc_auc"] == 1.0 and metrics["pr_auc"] == 1.0
    assert metrics["precision"] == pytest.approx(2 / 3, abs=1e-4) and metrics["recall"] == 1.0
    assert metrics["brier"] == pytest.approx(round((0.01 + 0.36 + 0.09 + 0.01) / 4, 4))


def test_binary_metrics_without_positives_have_no_auc():
    metrics = binary_metrics(np.zeros(3), np.array([0.1, 0.2, 0.3]))
    assert "roc_auc" not in metrics and "pr_auc" not in metrics
    assert metrics["positives"] == 0


def test_coverage_point_scores_only_answered_rows():
    point = coverage_point(0.5, np.array([1, 1, 0, 0], bool), np.array([1, 0, 0, 0], bool))
    assert point == {"threshold": 0.5, "coverage": 0.5, "accuracy": 0.5, "answered": 2}
    assert coverage_point(0.9, np.zeros(2, bool), np.zeros(2, bool))["accuracy"] is None


def test_top_confusions_count_errors_not_abstentions():
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["b", "b", None, "a", "b", "a"]
    assert top_confusions(y_true, y_pred, 2) == [
        {"true": "a", "predicted": "b", "count": 2},
        {"true": "b", "predicted": "a", "count": 1},
    ]
