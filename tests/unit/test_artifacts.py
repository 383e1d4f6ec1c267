import json

import pytest
from pydantic import SecretStr

from triage.core.model.artifacts import (
    MANIFEST,
    ArtifactError,
    load_model,
    load_models,
    read_manifest,
    save_model,
)
from triage.core.model.signing import verify
from triage.training.train import Dataset, train


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    texts = [f"card {i} never arrived" for i in range(20)] + [
        f"refund {i} please" for i in range(20)
    ]
    labels = ["card"] * 20 + ["refund"] * 20
    out = tmp_path_factory.mktemp("models")
    train(Dataset(out / "d.csv", "0" * 64, texts, labels), out, n_jobs=1)
    return out


def test_manifest_vouches_for_artifact(models):
    model = load_model(models, "card")
    assert model.manifest.version == "1" and len(model.manifest.sha256) == 64
    assert set(model.manifest.libraries) >= {"scikit-learn", "python"}


def test_changed_artifact_is_refused(models, tmp_path):
    import shutil

    copy = tmp_path / "m"
    shutil.copytree(models, copy)
    with (copy / "card" / "model.joblib").open("ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        load_model(copy, "card")


def test_unknown_label_is_a_clear_error(models):
    with pytest.raises(ArtifactError, match="no model for nope"):
        load_models(models, ["nope"])


def test_retraining_one_class_bumps_only_its_version(models):
    texts = [f"card {i} never arrived" for i in range(20)] + [
        f"refund {i} please" for i in range(20)
    ]
    labels = ["card"] * 20 + ["refund"] * 20
    train(Dataset(models / "d.csv", "0" * 64, texts, labels), models, ["card"], n_jobs=1)
    assert load_model(models, "card").version == "2"
    assert load_model(models, "refund").version == "1"


def test_the_manifest_records_the_validation_score_histogram(models):
    histogram = load_model(models, "card").manifest.score_histogram
    assert histogram is not None and len(histogram) == 10 and sum(histogram) == pytest.approx(1)


def test_a_manifest_without_a_histogram_is_written_and_signed_as_before(tmp_path):
    fields = dict(
        label="x",
        version="1",
        featurizer="f",
        featurizer_sha256="0" * 64,
        training_data={"path": "d", "sha256": "0" * 64, "rows": 1, "positives": 1},
        params={},
        metrics={"precision": 1.0},
    )
    key = SecretStr("k" * 16)
    manifest = save_model({"any": "picklable object"}, tmp_path, key, **fields)  # type: ignore
    raw = (tmp_path / "x" / MANIFEST).read_text()
    assert "score_histogram" not in raw and read_manifest(tmp_path / "x").score_histogram is None
    assert manifest.signature and verify(json.loads(raw), key) is None


def test_an_artifact_pickled_under_the_former_module_names_loads(tmp_path, monkeypatch):
    """Models trained before triage installed one import name name `consumers.features`."""
    import sys
    import types

    import joblib
    from sklearn.feature_extraction.text import TfidfVectorizer

    from triage.core.model import artifacts, features

    def word_pairs(text: str) -> list[str]:
        return features.word_pairs(text)

    word_pairs.__module__, word_pairs.__qualname__ = "consumers.features", "word_pairs"
    former = types.ModuleType("consumers.features")
    former.word_pairs = word_pairs  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "consumers", types.ModuleType("consumers"))
    monkeypatch.setitem(sys.modules, "consumers.features", former)
    vectorizer = TfidfVectorizer(analyzer=word_pairs).fit(["my card never arrived", "card lost"])
    joblib.dump(vectorizer, tmp_path / "model.joblib")
    monkeypatch.delitem(sys.modules, "consumers")
    monkeypatch.delitem(sys.modules, "consumers.features")

    loaded = artifacts.unpickle(tmp_path / "model.joblib")

    assert loaded.analyzer is features.word_pairs
    assert "consumers.features" not in sys.modules
    assert loaded.transform(["card never arrived"]).nnz > 0
