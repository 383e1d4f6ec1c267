"""Embeddings of a dataset's texts for training and evaluation, as heads are served them.

Encoding BANKING77's 10,003 texts takes about 40 s on 2 cores, and `triage train` and
`triage evaluate` need the same ones, so they are cached per encoder identity and text list
under `.triage/cache/embeddings/` (`TRIAGE_CACHE_DIR` moves it). Every matrix returned has been
through the wire's int8 round trip (`triage.schemas.embedding`): a head is fitted and judged on
exactly the numbers `triage encoder` will send it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from triage.core.errors import OperatorError
from triage.encoder.sentence import SentenceEncoder
from triage.schemas.embedding import round_trip
from triage.training.progress import ProgressBar

log = logging.getLogger(__name__)

CHUNK = 256


def cache_dir() -> Path:
    return Path(os.environ.get("TRIAGE_CACHE_DIR", ".triage/cache")) / "embeddings"


def load_encoder(name: str, trained_on: str | None = None) -> SentenceEncoder:
    """The installed encoder `name`; with `trained_on`, refuse one whose identity differs."""
    encoder = SentenceEncoder(name)
    if trained_on is not None and encoder.identity != trained_on:
        raise OperatorError(
            f"the models read features of {trained_on}, but the installed {encoder.name} is "
            f"{encoder.identity}; install the encoder they were trained with, or retrain them"
        )
    return encoder


def embed(encoder: SentenceEncoder, texts: list[str], progress: bool = True) -> np.ndarray:
    """One served embedding a text (cached)."""
    digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:32]
    path = cache_dir() / encoder.identity / f"{digest}.npy"
    if path.exists():
        cached = np.load(path)
        if cached.shape == (len(texts), encoder.dim):
            return round_trip(cached)
    bar = ProgressBar(len(texts), f"texts encoded ({encoder.name})") if progress else None
    rows = []
    for start in range(0, len(texts), CHUNK):
        rows.append(encoder.encode(texts[start : start + CHUNK]))
        if bar:
            bar.done = start
            bar.advance()
    matrix = np.vstack(rows) if rows else np.zeros((0, encoder.dim), np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, matrix)
    tmp.replace(path)
    return round_trip(matrix)
