"""Per-class data folders: the same rows train the same models as one CSV; owners and
fingerprints reach the manifests; the folder's mistakes are one-line data errors."""

import csv
import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from triage.cli.main import main
from triage.core.model.artifacts import load_models, read_manifest
from triage.core.model.scoring import Scorer
from triage.schemas.models import Owner
from triage.training.data import DataError, parse_owner, read_dataset
from triage.training.evaluation import evaluate
from triage.training.train import train

ROOT = Path(__file__).resolve().parents[2]
DEMO_TRAIN = ROOT / "demo" / "data" / "train.csv"


def _per_class(tmp_path: Path) -> tuple[Path, Path]:
    """The demo's rows as a folder (two classes as JSONL) and as one CSV in the folder's order."""
    demo = read_dataset(DEMO_TRAIN)
    by_class: dict[str, list[str]] = defaultdict(list)
    for text, label in zip(demo.texts, demo.labels, strict=True):
        by_class[label].append(text)
    folder = tmp_path / "data"
    folder.mkdir()
    single = tmp_path / "single.csv"
    with single.open("w", newline="") as out:
        rows = csv.writer(out)
        rows.writerow(["text", "category"])
        for n, label in enumerate(sorted(by_class)):
            texts = by_class[label]
            rows.writerows([t, label] for t in texts)
            if n % 2:
                lines = "".join(json.dumps({"text": t}) + "\n" for t in texts)
                (folder / f"{label}.jsonl").write_text(lines)
            else:
                with (folder / f"{label}.csv").open("w", newline="") as fh:
                    w = csv.writer(fh)
                    w.writerow(["text"])
                    w.writerows([t] for t in texts)
    (folder / "OWNERS").write_text(
        f"# class team contact\n{sorted(by_class)[0]} cards cards-oncall@bank.example\n\n"
        f"{sorted(by_class)[1]} payments\n"
    )
    (folder / "README.md").write_text("not data\n")
    return folder, single


def test_a_class_from_its_own_file_scores_as_from_the_single_csv(tmp_path):
    folder, single = _per_class(tmp_path)
    from_folder, from_csv = read_dataset(folder), read_dataset(single)
    assert from_folder.texts == from_csv.texts and from_folder.labels == from_csv.labels
    label = sorted(set(from_csv.labels))[1]  # a JSONL class
    [a] = train(from_folder, tmp_path / "a", [label], n_jobs=1, progress=False)
    [b] = train(from_csv, tmp_path / "b", [label], n_jobs=1, progress=False)
    assert a.metrics == b.metrics
    probe = read_dataset(ROOT / "demo" / "data" / "stream.csv").texts
    scores_a = Scorer(load_models(tmp_path / "a")).score(probe)[label]
    scores_b = Scorer(load_models(tmp_path / "b")).score(probe)[label]
    np.testing.assert_array_equal(scores_a, scores_b)
    # Both held-out splits are the same rows, so evaluate gives the same figures both ways.
    eval_a = evaluate(tmp_path / "a", folder).summary
    eval_b = evaluate(tmp_path / "b", single).summary
    assert eval_a["test_split"].startswith("held-out") and eval_b["test_split"].startswith("held")
    assert eval_a["per_class"][label] == eval_b["per_class"][label]


def test_manifest_records_every_file_and_the_owner(tmp_path):
    folder, single = _per_class(tmp_path)
    classes = sorted(p.stem for p in folder.iterdir() if p.suffix in (".csv", ".jsonl"))
    manifests = train(read_dataset(folder), tmp_path / "m", classes[:3], n_jobs=1, progress=False)
    files = manifests[0].training_data.files
    assert files is not None
    assert set(files) == {p.name for p in folder.iterdir() if p.name != "README.md"}
    assert files["OWNERS"] == hashlib.sha256((folder / "OWNERS").read_bytes()).hexdigest()
    assert [m.owner for m in manifests] == [
        Owner(team="cards", contact="cards-oncall@bank.example"),
        Owner(team="payments"),
        None,
    ]
    assert read_manifest(tmp_path / "m" / classes[0]).owner == manifests[0].owner
    # one file: its own fingerprint; --owner wins over OWNERS
    [m] = train(
        read_dataset(single),
        tmp_path / "s",
        classes[:1],
        n_jobs=1,
        progress=False,
        owner=Owner(team="x"),
    )
    assert m.training_data.files == {"single.csv": hashlib.sha256(single.read_bytes()).hexdigest()}
    assert m.owner == Owner(team="x")


def test_changing_one_class_file_changes_the_fingerprint(tmp_path):
    folder, _ = _per_class(tmp_path)
    before = read_dataset(folder)
    first = sorted(folder.glob("*.csv"))[0]
    first.write_text(first.read_text() + "one more example\n")
    after = read_dataset(folder)
    assert after.sha256 != before.sha256
    changed = {k for k in after.files if after.files[k] != before.files[k]}
    assert changed == {first.name}


def test_folder_mistakes_are_one_line_errors(tmp_path):
    (tmp_path / "a.csv").write_text("text\nhello\n")
    (tmp_path / "a.jsonl").write_text('{"text": "hi"}\n')
    with pytest.raises(DataError, match="more than one file for class"):
        read_dataset(tmp_path)
    (tmp_path / "a.jsonl").write_text('{"txt": "hi"}\n')
    (tmp_path / "a.jsonl").rename(tmp_path / "b.jsonl")
    with pytest.raises(DataError, match=r"b.jsonl:1: expected a JSON object"):
        read_dataset(tmp_path)
    (tmp_path / "b.jsonl").write_text('{"text": "hi"}\n')
    (tmp_path / "OWNERS").write_text("a team contact extra\n")
    with pytest.raises(DataError, match=r"OWNERS:1: expected"):
        read_dataset(tmp_path)
    with pytest.raises(DataError, match="no <class>.csv"):
        read_dataset(Path((tmp_path / "empty").mkdir() or tmp_path / "empty"))
    with pytest.raises(DataError, match="no such file"):
        read_dataset(tmp_path / "missing.csv")
    assert parse_owner("cards:cards@bank") == Owner(team="cards", contact="cards@bank")
    with pytest.raises(DataError, match="TEAM"):
        parse_owner("two words")


def test_cli_trains_from_a_folder_with_an_owner(tmp_path, capsys):
    folder, _ = _per_class(tmp_path)
    label = sorted(p.stem for p in folder.glob("*.csv"))[0]
    code = main(
        [
            "train",
            "--data",
            str(folder),
            "--out",
            str(tmp_path / "m"),
            "--label",
            label,
            "--owner",
            "risk:risk@bank",
            "--jobs",
            "1",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "risk:risk@bank" in out
    assert read_manifest(tmp_path / "m" / label).owner == Owner(team="risk", contact="risk@bank")
    assert (
        main(["train", "--data", str(folder), "--out", str(tmp_path / "m"), "--owner", "a b"]) == 2
    )
