"""Signed manifests: a classifier with a key loads only models that key signed."""

import json
import shutil

import pytest
from pydantic import SecretStr

from triage.core.model import signing
from triage.core.model.artifacts import (
    MANIFEST,
    ArtifactError,
    load_model,
    load_models,
    read_manifest,
)
from triage.training.train import Dataset, train

KEY = SecretStr("k" * 32)
OTHER_KEY = SecretStr("o" * 32)


def dataset(out):
    texts = [f"card {i} never arrived" for i in range(20)]
    texts += [f"refund {i} please" for i in range(20)]
    return Dataset(out / "d.csv", "0" * 64, texts, ["card"] * 20 + ["refund"] * 20)


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    out = tmp_path_factory.mktemp("signed")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRIAGE_MODEL_SIGNING_KEY", KEY.get_secret_value())
        train(dataset(out), out, n_jobs=1)
    return out


@pytest.fixture(scope="module")
def unsigned(tmp_path_factory):
    out = tmp_path_factory.mktemp("unsigned")
    train(dataset(out), out, n_jobs=1)
    return out


@pytest.fixture
def copy(tmp_path):
    def make(models):
        shutil.copytree(models, tmp_path / "m")
        return tmp_path / "m"

    return make


def edit_manifest(folder, **changes):
    path = folder / "card" / MANIFEST
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data, indent=2))


def test_training_with_a_key_signs_and_the_key_verifies(signed):
    manifest = read_manifest(signed / "card")
    assert manifest.signature.startswith("hmac-sha256:")
    assert load_model(signed, "card", signing_key=KEY).label == "card"


def test_without_a_key_manifests_stay_as_before(unsigned):
    raw = json.loads((unsigned / "card" / MANIFEST).read_text())
    assert "signature" not in raw
    assert load_model(unsigned, "card").version == "1"


def test_unsigned_model_is_refused_when_a_key_is_set(unsigned):
    with pytest.raises(ArtifactError, match="not signed.*TRIAGE_MODEL_SIGNING_KEY"):
        load_models(unsigned, signing_key=KEY)


def test_key_from_the_environment_applies_by_default(unsigned, monkeypatch):
    monkeypatch.setenv("TRIAGE_MODEL_SIGNING_KEY", KEY.get_secret_value())
    with pytest.raises(ArtifactError, match="not signed"):
        load_model(unsigned, "card")


def test_another_key_is_refused(signed):
    with pytest.raises(ArtifactError, match="signature does not match"):
        load_model(signed, "card", signing_key=OTHER_KEY)


def test_changed_manifest_is_refused(signed, copy):
    models = copy(signed)
    edit_manifest(models, version="99")
    with pytest.raises(ArtifactError, match="signature does not match"):
        load_model(models, "card", signing_key=KEY)


def test_swapped_artifact_with_matching_sha256_is_refused(signed, copy):
    """An attacker who swaps the file and fixes the sha256 in the manifest is still caught."""
    models = copy(signed)
    shutil.copy(models / "refund" / "model.joblib", models / "card" / "model.joblib")
    edit_manifest(models, sha256=read_manifest(models / "refund").sha256)
    assert load_model(models, "card").label == "card"  # without a key only the sha256 counts
    with pytest.raises(ArtifactError, match="signature does not match"):
        load_model(models, "card", signing_key=KEY)


def test_tampered_artifact_is_refused_before_loading_even_when_signed(signed, copy, monkeypatch):
    models = copy(signed)
    with (models / "card" / "model.joblib").open("ab") as fh:
        fh.write(b"tampered")
    monkeypatch.setattr("joblib.load", lambda *_: pytest.fail("joblib.load ran"))
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        load_model(models, "card", signing_key=KEY)


def test_artifact_outside_the_model_folder_is_refused(unsigned, copy):
    models = copy(unsigned)
    edit_manifest(models, artifact="../refund/model.joblib")
    with pytest.raises(ArtifactError, match="not a file name"):
        load_model(models, "card")


def test_short_key_is_a_clear_error_without_the_key(unsigned, monkeypatch):
    monkeypatch.setenv("TRIAGE_MODEL_SIGNING_KEY", "tooshort")
    with pytest.raises(ArtifactError, match="at least 16 characters") as err:
        load_model(unsigned, "card")
    assert "tooshort" not in str(err.value)


def test_signature_covers_fields_unknown_to_this_version():
    manifest = {"label": "card", "sha256": "ab", "added_later": [1, 2]}
    manifest["signature"] = signing.sign(manifest, KEY)
    assert signing.verify(manifest, KEY) is None
    assert signing.verify({**manifest, "added_later": [1]}, KEY) is not None


def test_canonical_form_ignores_key_order_and_whitespace():
    a = {"b": 1, "a": {"y": 2.5, "x": "é"}}
    b = json.loads(json.dumps({"a": {"x": "é", "y": 2.5}, "b": 1}, indent=4))
    assert signing.canonical(a) == signing.canonical(b)
    assert signing.sign(a, KEY) == signing.sign(b, KEY)
