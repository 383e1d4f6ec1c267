"""`triage evaluate` on the demo data: honest split, aggregator's rule, baseline, report."""

import json
from pathlib import Path

import numpy as np
import pytest

from triage.cli.main import main
from triage.core.model.decision import decide
from triage.training.evaluation import THRESHOLDS, evaluate
from triage.training.report import write_report
from triage.training.train import DataError, Options, read_dataset, split, train

DEMO = Path(__file__).resolve().parents[2] / "demo" / "data"
TRAIN, STREAM = DEMO / "train.csv", DEMO / "stream.csv"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    train(read_dataset(TRAIN), out, options=Options(seed=7), n_jobs=1, progress=False)
    return out


@pytest.fixture(scope="module")
def held_out(models):
    return evaluate(models, TRAIN)


def test_training_file_means_its_held_out_split_with_the_models_seed(held_out):
    x_train, x_test, _, _ = split(read_dataset(TRAIN), seed=7)
    assert sorted(held_out.texts) == sorted(x_test)
    assert not set(held_out.texts) & set(x_train)
    assert held_out.summary["test_split"] == "held-out 20% of the training file (seed 7)"


def test_summary_has_the_promised_keys_and_sane_values(held_out):
    s = held_out.summary
    assert {"accuracy", "baseline_accuracy", "macro_f1", "ece", "per_class"} <= set(s)
    assert s["test_rows"] == 90 and s["classes"] == 10
    assert 0.5 < s["accuracy"] <= 1 and 0.5 < s["baseline_accuracy"] <= 1
    assert 0 <= s["ece"] < 0.5
    card = s["per_class"]["card_arrival"]
    assert {"precision", "recall", "f1", "roc_auc", "pr_auc", "brier"} <= set(card)
    assert card["support"] == 9 and card["calibration"] == "none"


def test_ensemble_decides_with_the_aggregator_rule(held_out):
    for i in range(len(held_out.texts)):
        row = dict(zip(held_out.labels, held_out.scores[i], strict=True))
        assert held_out.predicted[i] == decide(row).label
        assert held_out.confidence[i] == pytest.approx(max(row.values()))
    correct = np.asarray(held_out.predicted) == held_out.y_true
    assert held_out.summary["accuracy"] == pytest.approx(correct.mean(), abs=1e-4)


def test_coverage_falls_and_accuracy_follows_the_threshold(held_out):
    points = held_out.summary["coverage"]
    assert [p["threshold"] for p in points] == list(THRESHOLDS)
    assert points[0]["coverage"] == 1.0
    assert all(a["answered"] >= b["answered"] for a, b in zip(points, points[1:], strict=False))
    confidence = held_out.confidence
    assert points[10]["answered"] == int((confidence >= 0.5).sum())


def test_other_file_is_scored_whole_against_the_same_baseline(models):
    s = evaluate(models, STREAM).summary
    assert s["test_rows"] == 150 and s["test_split"] == "the whole file"
    assert s["baseline_accuracy"] is not None


def test_models_from_different_splits_are_refused_on_their_training_file(models, tmp_path):
    import shutil

    mixed = tmp_path / "mixed"
    shutil.copytree(models, mixed)
    train(
        read_dataset(TRAIN),
        mixed,
        ["pin_blocked"],
        options=Options(seed=8),
        n_jobs=1,
        progress=False,
    )
    with pytest.raises(DataError, match="different files or splits"):
        evaluate(mixed, TRAIN)
    alone = evaluate(mixed, TRAIN, only=["pin_blocked"]).summary
    assert alone["classes"] == 1 and alone["test_split"].endswith("(seed 8)")


def test_report_is_one_page_with_every_plot_embedded(held_out, tmp_path):
    page = write_report(held_out, tmp_path / "report")
    content = page.read_text()
    assert content.count('src="data:image/png;base64,') == 4
    for name in ["pr_curves.png", "reliability.png", "coverage.png", "confusions.png"]:
        assert (tmp_path / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert name in content
    assert "card_arrival" in content and "multiclass baseline" in content


def test_cli_evaluate_json(models, capsys):
    assert main(["evaluate", "--models", str(models), "--data", str(STREAM), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["test_rows"] == 150 and len(report["per_class"]) == 10


def test_a_threshold_abstains_like_the_aggregator_and_leaves_calibration_alone(models, held_out):
    strict = evaluate(models, TRAIN, threshold=0.9)
    abstained = sum(p is None for p in strict.predicted)
    assert abstained == int((held_out.confidence < 0.9).sum()) > 0
    assert strict.summary["abstained"] == abstained
    assert strict.summary["accuracy"] < held_out.summary["accuracy"]
    assert strict.summary["ece"] == held_out.summary["ece"]
