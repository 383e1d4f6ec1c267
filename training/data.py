"""Training data: one CSV of every class, or a folder with one file per class, and its OWNERS.

`read_dataset` takes either. A CSV has columns `text,category`. A folder holds one file per
class, `<class>.csv` (a `text` column) or `<class>.jsonl` (one object a line with a "text"
field): that class's positives, and every other class's negatives, so a team edits its own file
only. Files are read in name order, each file's rows in its order, so a single CSV with the same
rows in that order trains the very same models (the split is stratified with a fixed seed, so
it depends on row order). Other files in the folder are not data: `OWNERS` (one line per class,
`<class> <team> [<contact>]`, `#` comments) names each class's owner. Every file read is
fingerprinted (sha256) into the manifest of every class trained on it.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from triage.core.errors import OperatorError
from triage.schemas.models import Owner

OWNERS = "OWNERS"
DATA_SUFFIXES = (".csv", ".jsonl")


class DataError(OperatorError):
    """The training or evaluation data cannot be used; the message says why."""


@dataclass(frozen=True)
class Dataset:
    path: Path
    sha256: str  # the file's; for a folder, of its files' names and fingerprints
    texts: list[str]
    labels: list[str]
    files: dict[str, str] = field(default_factory=dict)  # file name → sha256, every file read
    owners: dict[str, Owner] = field(default_factory=dict)  # class → owner, from OWNERS


def read_dataset(path: Path) -> Dataset:
    """A CSV with columns `text,category`, or a per-class folder (see the module docstring)."""
    if path.is_dir():
        return read_folder(path)
    raw = _read(path)
    rows = _csv_rows(path, raw, ("text", "category"))
    rows = [r for r in rows if r["text"] and r["category"]]
    sha = hashlib.sha256(raw).hexdigest()
    return Dataset(
        path=path,
        sha256=sha,
        texts=[r["text"] for r in rows],
        labels=[r["category"] for r in rows],
        files={path.name: sha},
    )


def read_folder(folder: Path) -> Dataset:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in DATA_SUFFIXES)
    classes = [p.stem for p in files]
    twice = sorted({c for c in classes if classes.count(c) > 1})
    if twice:
        raise DataError(f"{folder}: more than one file for class(es) {', '.join(twice)}")
    if not files:
        raise DataError(f"{folder}: no <class>.csv or <class>.jsonl files")
    texts: list[str] = []
    labels: list[str] = []
    fingerprints = {}
    for path in files:
        raw = _read(path)
        fingerprints[path.name] = hashlib.sha256(raw).hexdigest()
        own = _jsonl_texts(path, raw) if path.suffix == ".jsonl" else _csv_texts(path, raw)
        texts += own
        labels += [path.stem] * len(own)
    owners = {}
    if (folder / OWNERS).is_file():
        raw = _read(folder / OWNERS)
        fingerprints[OWNERS] = hashlib.sha256(raw).hexdigest()
        owners = parse_owners(folder / OWNERS, raw.decode("utf-8-sig"))
    listing = "".join(f"{name} {sha}\n" for name, sha in sorted(fingerprints.items()))
    return Dataset(
        path=folder,
        sha256=hashlib.sha256(listing.encode()).hexdigest(),
        texts=texts,
        labels=labels,
        files=fingerprints,
        owners=owners,
    )


def parse_owners(path: Path, text: str) -> dict[str, Owner]:
    """`<class> <team> [<contact>]` a line; blank lines and `#` comments are skipped."""
    owners = {}
    for n, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) not in (2, 3):
            raise DataError(f"{path}:{n}: expected `<class> <team> [<contact>]`, got {line!r}")
        owners[words[0]] = Owner(team=words[1], contact=words[2] if len(words) == 3 else None)
    return owners


def parse_owner(value: str) -> Owner:
    """`TEAM[:CONTACT]`, as `triage train --owner` takes it."""
    team, _, contact = value.partition(":")
    try:
        return Owner(team=team, contact=contact or None)
    except ValidationError:
        raise DataError(
            f"--owner {value!r}: expected TEAM[:CONTACT], TEAM without spaces"
        ) from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise DataError(f"{path}: no such file or folder") from None


def _csv_rows(path: Path, raw: bytes, columns: tuple[str, ...]) -> list[dict[str, str]]:
    rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    if not rows or not set(columns) <= set(rows[0]):
        raise DataError(f"{path}: expected a CSV with columns {','.join(columns)}")
    return rows


def _csv_texts(path: Path, raw: bytes) -> list[str]:
    return [r["text"] for r in _csv_rows(path, raw, ("text",)) if r["text"]]


def _jsonl_texts(path: Path, raw: bytes) -> list[str]:
    texts = []
    for n, line in enumerate(raw.decode("utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            text = json.loads(line).get("text")
        except (json.JSONDecodeError, AttributeError):
            text = None
        if not isinstance(text, str):
            raise DataError(f'{path}:{n}: expected a JSON object with a "text" string')
        if text:
            texts.append(text)
    return texts
