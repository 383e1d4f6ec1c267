"""`triage train`: options reach the manifests, seeds fix the result, one class stays one class."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV

from triage.cli.main import main
from triage.core.model.artifacts import load_model, load_models
from triage.core.model.features import featurizer, word_pairs
from triage.core.model.scoring import Scorer
from triage.training.progress import ProgressBar
from triage.training.train import DataError, Dataset, Options, train

ROOT = Path(__file__).resolve().parents[2]

TOPICS = {
    "card": ["my card never arrived", "card still not delivered", "where is my new card"],
    "refund": ["I want my money back", "please refund the purchase", "refund not received yet"],
    "pin": ["my pin is blocked", "forgot the pin code", "pin locked after three tries"],
}


def synthetic(out, per_class: int = 20) -> Dataset:
    texts, labels = [], []
    for label, phrases in TOPICS.items():
        for i in range(per_class):
            texts.append(f"{phrases[i % len(phrases)]} {i}")
            labels.append(label)
    return Dataset(out / "d.csv", "0" * 64, texts, labels)


def test_manifest_records_options_and_validation_metrics(tmp_path):
    options = Options(calibration="sigmoid", calibration_folds=3, seed=7)
    manifests = train(synthetic(tmp_path), tmp_path, options=options, n_jobs=1, progress=False)
    assert [m.label for m in manifests] == ["card", "pin", "refund"]
    params = manifests[0].params
    assert params["calibration"] == "sigmoid" and params["seed"] == 7
    assert params["class_weight"] == "balanced" and params["test_size"] == 0.2
    assert {"precision", "recall", "f1", "roc_auc", "pr_auc", "brier"} <= set(manifests[0].metrics)
    assert manifests[0].metrics["validation_positives"] == 4  # 20 % of 20 rows
    assert len({m.featurizer_sha256 for m in manifests}) == 1  # one shared featuriser a run


def test_calibrated_classifier_keeps_the_scoring_interface(tmp_path):
    options = Options(calibration="isotonic", calibration_folds=3)
    train(synthetic(tmp_path), tmp_path, options=options, n_jobs=1, progress=False)
    models = load_models(tmp_path)
    assert isinstance(models[0].pipeline.named_steps["clf"], CalibratedClassifierCV)
    scores = Scorer(models).score(["my card never arrived", "please refund the purchase"])
    assert scores["card"][0] > scores["refund"][0]
    assert scores["refund"][1] > scores["card"][1]
    assert all(((s >= 0) & (s <= 1)).all() for s in scores.values())


def test_same_seed_same_models(tmp_path):
    first = train(synthetic(tmp_path), tmp_path / "a", n_jobs=1, progress=False)
    second = train(synthetic(tmp_path), tmp_path / "b", n_jobs=2, progress=False)
    assert first[0].featurizer_sha256 == second[0].featurizer_sha256
    texts = ["card not here", "money back please"]
    a = Scorer(load_models(tmp_path / "a")).score(texts)
    b = Scorer(load_models(tmp_path / "b")).score(texts)
    for label in TOPICS:
        np.testing.assert_array_equal(a[label], b[label])


def test_training_one_class_leaves_the_others_untouched(tmp_path):
    data = synthetic(tmp_path)
    train(data, tmp_path, n_jobs=1, progress=False)
    before = {label: (tmp_path / label / "model.joblib").read_bytes() for label in TOPICS}
    manifest_before = (tmp_path / "pin" / "manifest.json").read_text()
    train(
        data,
        tmp_path,
        ["card"],
        options=Options(calibration="sigmoid", calibration_folds=3),
        n_jobs=1,
        progress=False,
    )
    assert (tmp_path / "pin" / "model.joblib").read_bytes() == before["pin"]
    assert (tmp_path / "refund" / "model.joblib").read_bytes() == before["refund"]
    assert (tmp_path / "pin" / "manifest.json").read_text() == manifest_before
    assert (tmp_path / "card" / "model.joblib").read_bytes() != before["card"]
    assert load_model(tmp_path, "card").manifest.params["calibration"] == "sigmoid"


def test_operator_mistakes_are_data_errors(tmp_path):
    data = synthetic(tmp_path, per_class=5)
    with pytest.raises(DataError, match="no rows for class"):
        train(data, tmp_path, ["nope"], n_jobs=1, progress=False)
    with pytest.raises(DataError, match="calibration must be one of"):
        train(data, tmp_path, options=Options(calibration="platt"), n_jobs=1, progress=False)
    with pytest.raises(DataError, match="at least 5 training rows per class"):
        train(data, tmp_path, options=Options(calibration="sigmoid"), n_jobs=1, progress=False)


def test_word_pairs_are_unordered_content_words():
    assert word_pairs("My card never arrived") == ["card|never", "arrived|card", "arrived|never"]
    assert word_pairs("arrived never card") == ["arrived|never", "arrived|card", "card|never"]
    assert word_pairs("is it") == []


def test_featurizer_has_word_char_and_pair_blocks():
    union = featurizer().fit(["card never arrived", "card never came", "refund please now"])
    assert [name for name, _ in union.transformer_list] == ["word", "char", "pairs"]
    assert "card|never" in union.transformer_list[2][1].vocabulary_


def test_progress_bar_off_a_terminal_prints_a_line_per_tenth():
    stream = io.StringIO()
    bar = ProgressBar(20, "classes", stream=stream, width=10)
    for _ in range(20):
        bar.advance()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11  # the first item, then every tenth of 20
    assert lines[-1].startswith("[##########] 20/20 classes")
    assert lines[0].startswith("[..........] 1/20 classes")
    assert any(line.startswith("[#####.....] 10/20 classes") for line in lines)


def test_progress_bar_shows_a_count_that_jumps_or_stays_and_finishes_once():
    stream = io.StringIO()
    bar = ProgressBar(10, "classes vote", stream=stream, width=10, indent="  ")
    for done in (0, 0, 3, 3, 9, 10, 10):
        bar.update(done)
    assert [line.split(" classes")[0] for line in stream.getvalue().splitlines()] == [
        "  [..........] 0/10",
        "  [###.......] 3/10",
        "  [#########.] 9/10",
        "  [##########] 10/10",
    ]


def test_cli_train_prints_a_per_class_summary(tmp_path, capsys):
    csv = tmp_path / "d.csv"
    data = synthetic(tmp_path)
    csv.write_text(
        "text,category\n"
        + "".join(f"{t},{y}\n" for t, y in zip(data.texts, data.labels, strict=True))
    )
    code = main(
        [
            "train",
            "--data",
            str(csv),
            "--out",
            str(tmp_path / "m"),
            "--jobs",
            "1",
            "--calibration",
            "sigmoid",
            "--seed",
            "3",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:4]] == ["card", "pin", "refund"]
    assert "wrote 3 model(s)" in out and "calibration sigmoid" in out
    manifest = json.loads((tmp_path / "m" / "pin" / "manifest.json").read_text())
    assert manifest["params"]["seed"] == 3


def test_featuriser_bytes_do_not_depend_on_the_process(tmp_path):
    """Two runs, two processes, same data and seed: same featuriser sha256, so a class retrained
    alone later still shares one featurisation per batch with the others."""
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from tests.unit.test_training import synthetic; "
        "from training.train import train; out = Path(sys.argv[1]); "
        "train(synthetic(out), out, n_jobs=1, progress=False)"
    )
    for run in ("a", "b"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / run)], check=True, cwd=ROOT)
    a = json.loads((tmp_path / "a" / "card" / "manifest.json").read_text())
    b = json.loads((tmp_path / "b" / "card" / "manifest.json").read_text())
    assert a["featurizer_sha256"] == b["featurizer_sha256"]
    assert a["sha256"] == b["sha256"]
