"""Model artifacts and the manifests that vouch for them.

Each class has a folder `<models>/<label>/` with `model.joblib` (a scikit-learn pipeline:
`features` then `clf`) and `manifest.json`: class, version, sha256 of the artifact, the
training-data fingerprint, library versions and validation metrics. A joblib file is code: it
runs when loaded. So `load_model` checks the manifest's sha256 before `joblib.load` and refuses
a file that changed; only load artifacts from folders you control.
"""

from __future__ import annotations

import hashlib
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy
import pydantic
import sklearn
from pydantic import BaseModel, ConfigDict, ValidationError
from sklearn.pipeline import Pipeline

ARTIFACT = "model.joblib"
MANIFEST = "manifest.json"


class ArtifactError(Exception):
    """A model that must not or cannot be loaded; the message says which and why."""


class TrainingData(BaseModel):
    path: str
    sha256: str
    rows: int
    positives: int


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


def save_model(pipeline: Pipeline, models_dir: Path, **fields: Any) -> Manifest:
    """Write the artifact, then its manifest (so a manifest never points at a partial file)."""
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
    (folder / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no manifest; train the model with `triage train`") from None
    except ValidationError as exc:
        raise ArtifactError(f"{path}: invalid manifest: {exc.errors()[0]['msg']}") from None


def available_labels(models_dir: Path) -> list[str]:
    if not models_dir.is_dir():
        raise ArtifactError(f"{models_dir}: no such models folder; run `triage train` first")
    return sorted(p.parent.name for p in models_dir.glob(f"*/{MANIFEST}"))


def load_model(models_dir: Path, label: str) -> LoadedModel:
    folder = models_dir / label
    manifest = read_manifest(folder)
    artifact = folder / manifest.artifact
    if not artifact.exists():
        raise ArtifactError(f"{artifact}: artifact missing")
    actual = sha256_file(artifact)
    if actual != manifest.sha256:
        raise ArtifactError(
            f"{artifact}: sha256 {actual[:12]}… does not match its manifest "
            f"({manifest.sha256[:12]}…); refusing to load a changed model"
        )
    pipeline = joblib.load(artifact)
    return LoadedModel(manifest, pipeline)


def load_models(models_dir: Path, labels: list[str] | None = None) -> list[LoadedModel]:
    known = available_labels(models_dir)
    wanted = labels or known
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise ArtifactError(
            f"no model for {', '.join(unknown)} in {models_dir} (has: {', '.join(known) or 'none'})"
        )
    if not wanted:
        raise ArtifactError(f"{models_dir}: no models; run `triage train` first")
    return [load_model(models_dir, label) for label in wanted]
