import pytest

from consumers.artifacts import ArtifactError, load_model, load_models
from training.train import Dataset, train


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
