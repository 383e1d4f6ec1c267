"""Model artifacts and the manifests that vouch for them.

Each class has a folder `<models>/<label>/` with `model.joblib` (a scikit-learn pipeline:
`features` then `clf`) and `manifest.json`: class, version, sha256 of the artifact, the
training-data fingerprint, library versions, validation metrics and, when trained with
`TRIAGE_MODEL_SIGNING_KEY` set, an HMAC signature of all that (`core/model/signing.py`). A
joblib file is code: it runs when loaded. So `load_model` checks the signature (whenever a key
is set, a missing one too) and then the sha256 before `joblib.load`. Without a key, the
sha256 only catches a changed file whose manifest was left alone: the trust boundary is then
the models folder itself, so load only from folders that only you can write.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy
import pydantic
import sklearn
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError
from sklearn.pipeline import Pipeline

from triage.core.errors import OperatorError
from triage.core.model import signing
from triage.core.model.signing import SigningSettings
from triage.schemas.models import Owner

ARTIFACT = "model.joblib"
MANIFEST = "manifest.json"
# `Manifest.reads`: the text itself, or `features:<encoder identity>` (`triage encoder`'s topic).
READS_TEXT = "text"
READS_FEATURES = "features:"


class ArtifactError(OperatorError):
    """A model that must not or cannot be loaded; the message says which and why."""


class TrainingData(BaseModel):
    path: str
    sha256: str
    rows: int
    positives: int
    # File name → sha256 of every file the class was trained on (for a per-class folder, every
    # class's file and OWNERS; for a CSV, that file). Absent in manifests written before it.
    files: dict[str, str] | None = None


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str
    version: str
    artifact: str = ARTIFACT
    sha256: str
    created_at: str
    reads: str = "text"
    featurizer: str
    featurizer_sha256: str
    training_data: TrainingData
    libraries: dict[str, str]
    params: dict[str, Any]
    metrics: dict[str, float]
    # Fractions of the validation texts per tenth of this class's score: what the monitor's
    # drift (PSI) compares the live scores with. Absent in manifests written before it.
    score_histogram: list[float] | None = None
    # Who answers for the class (`triage train --owner`, or OWNERS in the data folder).
    owner: Owner | None = None
    signature: str | None = None

    @property
    def encoder(self) -> str | None:
        """The encoder identity whose features this head reads; None if it reads the text."""
        return self.reads.removeprefix(READS_FEATURES) if self.reads != READS_TEXT else None

    @property
    def embedding_weight(self) -> float:
        """How much the embedding block weighs beside the TF-IDF blocks (it was fitted so)."""
        return float(self.params.get("embedding_weight", 1.0))


class LoadedModel:
    def __init__(self, manifest: Manifest, pipeline: Pipeline) -> None:
        self.manifest = manifest
        self.pipeline = pipeline
        self.label = manifest.label
        self.version = manifest.version


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "joblib": joblib.__version__,
        "pydantic": pydantic.__version__,
    }


def next_version(models_dir: Path, label: str) -> str:
    path = models_dir / label / MANIFEST
    if not path.exists():
        return "1"
    try:
        current = read_manifest(models_dir / label)
        return str(int(current.version) + 1)
    except (ArtifactError, ValueError):
        return "1"


def signing_key_from_environment() -> SecretStr | None:
    """`TRIAGE_MODEL_SIGNING_KEY`, if set."""
    try:
        return SigningSettings().model_signing_key
    except ValidationError as exc:
        raise ArtifactError(f"TRIAGE_MODEL_SIGNING_KEY: {exc.errors()[0]['msg']}") from None


def save_model(
    pipeline: Pipeline, models_dir: Path, signing_key: SecretStr | None = None, **fields: Any
) -> Manifest:
    """Write the artifact, then its manifest (so a manifest never points at a partial file).

    The manifest is signed with `signing_key`, else with `TRIAGE_MODEL_SIGNING_KEY` if set.
    """
    folder = models_dir / fields["label"]
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (ARTIFACT + ".tmp")
    joblib.dump(pipeline, tmp)
    tmp.replace(folder / ARTIFACT)
    manifest = Manifest(
        sha256=sha256_file(folder / ARTIFACT),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        libraries=library_versions(),
        **fields,
    )
    # A manifest without a score histogram or owner is written (and signed) exactly as before
    # they existed.
    absent = {name for name in ("score_histogram", "owner") if getattr(manifest, name) is None}
    key = signing_key or signing_key_from_environment()
    if key is not None:
        unsigned = json.loads(manifest.model_dump_json(exclude={"signature"} | absent))
        manifest = manifest.model_copy(update={"signature": signing.sign(unsigned, key)})
    # An unsigned manifest is written exactly as before signatures existed.
    omit = absent | ({"signature"} if manifest.signature is None else set())
    (folder / MANIFEST).write_text(manifest.model_dump_json(indent=2, exclude=omit) + "\n")
    return manifest


def read_manifest(folder: Path) -> Manifest:
    return _parse_manifest(folder / MANIFEST, _manifest_bytes(folder))


def _manifest_bytes(folder: Path) -> bytes:
    path = folder / MANIFEST
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no manifest; train the model with `triage train`") from None


def _parse_manifest(path: Path, raw: bytes) -> Manifest:
    try:
        return Manifest.model_validate_json(raw)
    except ValidationError as exc:
        raise ArtifactError(f"{path}: invalid manifest: {exc.errors()[0]['msg']}") from None


def _check_signature(path: Path, raw: bytes, key: SecretStr) -> None:
    """Refuse a manifest the key did not sign; `raw` is what was parsed, so it is what counts."""
    problem = signing.verify(json.loads(raw), key)
    if problem is None:
        return
    hint = "; train it with TRIAGE_MODEL_SIGNING_KEY set" if "not signed" in problem else ""
    raise ArtifactError(f"{path}: {problem}; refusing to load this model{hint}")


def available_labels(models_dir: Path) -> list[str]:
    if not models_dir.is_dir():
        raise ArtifactError(f"{models_dir}: no such models folder; run `triage train` first")
    return sorted(p.parent.name for p in models_dir.glob(f"*/{MANIFEST}"))


def load_model(models_dir: Path, label: str, signing_key: SecretStr | None = None) -> LoadedModel:
    """Load one model after checking its manifest's signature (if a key is set) and sha256.

    `signing_key` defaults to `TRIAGE_MODEL_SIGNING_KEY`: with a key, unsigned or wrongly
    signed models are refused.
    """
    folder = models_dir / label
    raw = _manifest_bytes(folder)
    manifest = _parse_manifest(folder / MANIFEST, raw)
    key = signing_key or signing_key_from_environment()
    if key is not None:
        _check_signature(folder / MANIFEST, raw, key)
    artifact = _checked_artifact(folder, manifest)
    # Only now, with the manifest authentic (when keyed) and the file matching it, run its code.
    return LoadedModel(manifest, unpickle(artifact))


# Models saved before triage installed one import name pickled the word-pair analyzer as
# `consumers.features.word_pairs` (now `triage.core.model.features`); they load under the new
# name, the old one visible only while such a file is read.
_FORMER_MODULES = {
    "consumers": "triage.core.model",
    "consumers.features": "triage.core.model.features",
}


def unpickle(artifact: Path) -> Any:
    """`joblib.load`, also for artifacts pickled under the module names of before."""
    try:
        return joblib.load(artifact)
    except ModuleNotFoundError as exc:
        if exc.name not in _FORMER_MODULES:
            raise
    with _former_module_names():
        return joblib.load(artifact)


@contextmanager
def _former_module_names() -> Iterator[None]:
    saved = {old: sys.modules.get(old) for old in _FORMER_MODULES}
    sys.modules.update({old: importlib.import_module(new) for old, new in _FORMER_MODULES.items()})
    try:
        yield
    finally:
        for old, module in saved.items():
            if module is None:
                sys.modules.pop(old, None)
            else:
                sys.modules[old] = module


def _checked_artifact(folder: Path, manifest: Manifest) -> Path:
    """The artifact's path, if it is in `folder` and has the sha256 its manifest names."""
    if Path(manifest.artifact).name != manifest.artifact:
        raise ArtifactError(
            f"{folder / MANIFEST}: artifact {manifest.artifact!r} is not a file name in the "
            "model's folder; refusing to load it"
        )
    artifact = folder / manifest.artifact
    if not artifact.exists():
        raise ArtifactError(f"{artifact}: artifact missing")
    actual = sha256_file(artifact)
    if actual != manifest.sha256:
        raise ArtifactError(
            f"{artifact}: sha256 {actual[:12]}… does not match its manifest "
            f"({manifest.sha256[:12]}…); refusing to load a changed model"
        )
    return artifact


def load_models(
    models_dir: Path, labels: list[str] | None = None, signing_key: SecretStr | None = None
) -> list[LoadedModel]:
    known = available_labels(models_dir)
    wanted = labels or known
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise ArtifactError(
            f"no model for {', '.join(unknown)} in {models_dir} (has: {', '.join(known) or 'none'})"
        )
    if not wanted:
        raise ArtifactError(f"{models_dir}: no models; run `triage train` first")
    return [load_model(models_dir, label, signing_key) for label in wanted]
