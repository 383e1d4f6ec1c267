"""`triage compare`: a candidate that takes another class's texts shows as flows from that
class, counted as an independent argmax over the models' own probabilities counts them."""

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from triage.cli.main import main
from triage.core.model.artifacts import load_model, load_models
from triage.training.compare import compare
from triage.training.data import DataError, read_dataset
from triage.training.evaluation import evaluate
from triage.training.train import split, train

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "demo" / "data" / "train.csv"
TAKER, TAKEN = "refund_request", "card_arrival"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The current voters, a bad candidate of TAKER (TAKEN's texts as its positives too), and
    a retrained good one (same data, another seed: different rows' models, same class)."""
    root = tmp_path_factory.mktemp("compare")
    data = read_dataset(TRAIN)
    train(data, root / "current", n_jobs=1, progress=False)
    bad_csv = root / "bad.csv"
    with bad_csv.open("w", newline="") as fh:
        rows = csv.writer(fh)
        rows.writerow(["text", "category"])
        for text, label in zip(data.texts, data.labels, strict=True):
            rows.writerow([text, TAKER if label == TAKEN else label])
    train(read_dataset(bad_csv), root / "bad", [TAKER], n_jobs=1, progress=False)
    return root


def _independent(current_dir: Path, candidate: Path, texts, truths):
    """Before/after winners by np.argmax over predict_proba, and the flow counts by Counter."""
    models = sorted(load_models(current_dir), key=lambda m: m.label)
    labels = [m.label for m in models]
    proba = np.column_stack([m.pipeline.predict_proba(texts)[:, 1] for m in models])
    before = [labels[j] for j in proba.argmax(axis=1)]
    proba[:, labels.index(TAKER)] = load_model(candidate, TAKER).pipeline.predict_proba(texts)[:, 1]
    after = [labels[j] for j in proba.argmax(axis=1)]
    moved = [(b, a, t) for b, a, t in zip(before, after, truths, strict=True) if b != a]
    counts = Counter((b, a) for b, a, _ in moved)
    right = Counter((b, a) for b, a, t in moved if a == t)
    return counts, right, before, after


def test_a_bad_candidate_takes_texts_from_the_class_it_overlaps(folders):
    result = compare(folders / "current", folders / "bad", TAKER, TRAIN)
    s = result.summary
    _, x_test, _, y_test = split(read_dataset(TRAIN))
    assert s["test_rows"] == len(x_test) and s["test_split"].startswith("held-out")
    counts, right, before, after = _independent(
        folders / "current", folders / "bad", x_test, y_test
    )
    assert {(f["from"], f["to"]): f["changed"] for f in s["flows"]} == dict(counts)
    assert {(f["from"], f["to"]): f["right"] for f in s["flows"] if f["right"]} == dict(right)
    assert s["flows"][0]["from"] == TAKEN and s["flows"][0]["to"] == TAKER
    assert s["flows"][0]["changed"] >= 5 and s["flows"][0]["right"] == 0
    taken = s["per_class"][TAKEN]
    assert taken["recall_after"] < taken["recall_before"]
    assert s["per_class"][TAKER]["precision_delta"] < 0
    # "before" is what `triage evaluate` says of the current voters on the same rows
    ev = evaluate(folders / "current", TRAIN).summary
    assert s["accuracy_before"] == ev["accuracy"]
    assert taken["recall_before"] == ev["per_class"][TAKEN]["ensemble_recall"]
    assert s["accuracy_after"] == round(np.mean(np.asarray(after) == np.asarray(y_test)), 4)


def test_the_current_version_as_candidate_changes_nothing(folders):
    s = compare(folders / "current", folders / "current" / TAKER, TAKER, TRAIN, all_rows=True)
    assert s.summary["test_rows"] == 450 and s.summary["changed"] == 0
    assert s.summary["flows"] == []
    assert all(c["f1_delta"] == 0 for c in s.summary["per_class"].values())


def test_a_candidate_of_another_class_is_refused(folders):
    with pytest.raises(DataError, match="not 'pin_blocked'"):
        compare(folders / "current", folders / "bad" / TAKER, "pin_blocked", TRAIN)


def test_cli_json_and_report(folders, tmp_path, capsys):
    argv = ["compare", "--models", str(folders / "current"), "--candidate", str(folders / "bad")]
    argv += ["--label", TAKER, "--data", str(TRAIN)]
    assert main([*argv, "--json", "--report", str(tmp_path / "r")]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["label"] == TAKER and s["current_version"] == "1" and s["changed"] > 0
    page = (tmp_path / "r" / "index.html").read_text()
    assert "Changed decisions" in page and f"<td>{TAKEN}</td><td>{TAKER}</td>" in page
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert f"{TAKEN} → {TAKER}: {s['flows'][0]['changed']}, 0 right" in text
