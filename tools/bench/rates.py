"""The limits the pipeline is compared with, measured in this process with no Kafka at all: the
rate one core scores the models in batches, the rate of the deployment's classifier processes
scoring at once, the encoder's own rate when the heads read one, and the aggregator join's cost
per record with many joins pending.
"""

from __future__ import annotations

import logging
import multiprocessing
import statistics
import time
from dataclasses import dataclass

import numpy as np

from triage.core.model.artifacts import LoadedModel
from triage.core.model.scoring import Scorer
from triage.encoder.sentence import SentenceEncoder
from triage.encoder.settings import EncoderSettings
from triage.training.embeddings import embed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Texts/s of the three limits: one core (`inprocess`), the deployment's processes without
    Kafka (`no_kafka`), and the encoder alone (`encoding`, None when the heads read none)."""

    inprocess: float
    no_kafka: float
    encoding: float | None


def measure_limits(
    models: list[LoadedModel],
    held_out: list[str],
    colocated: bool,
    encoder: SentenceEncoder | None,
) -> Limits:
    """The limits on a sample of at least 2,000 of the held-out texts."""
    sample = held_out * max(1, 2000 // len(held_out))
    sample_served = None if encoder is None else embed(encoder, sample)
    work = Workload(models, sample, colocated, embeddings=sample_served)
    limit = inprocess_rate(work)
    shape = deployment_rate(work)
    encoding = None
    if encoder is not None:
        encoding = encoder_rate(encoder, sample[:2000], EncoderSettings().encode_batch)
        log.info("encoder %s: %.0f texts/s in process", encoder.identity, encoding)
    return Limits(limit, shape, encoding)


@dataclass(frozen=True)
class Workload:
    """`texts` (and their rows of `embeddings`, if any) scored `batch` at a time by the models:
    all in one unit when `colocated`, else one unit a model (a classifier process each)."""

    models: list[LoadedModel]
    texts: list[str]
    colocated: bool
    batch: int = 500
    embeddings: np.ndarray | None = None

    def units(self) -> list[list[LoadedModel]]:
        return [self.models] if self.colocated else [[m] for m in self.models]


def inprocess_rate(work: Workload) -> float:
    """Texts/s one core scores in batches: the limit the pipeline is compared with."""
    texts, embeddings, batch = work.texts, work.embeddings, work.batch
    scorers = [Scorer(unit) for unit in work.units()]
    _score_batches(scorers, texts[:batch], embeddings, batch)  # warm-up
    started = time.process_time()
    _score_batches(scorers, texts, embeddings, batch)
    return len(texts) / (time.process_time() - started)


def encoder_rate(encoder: SentenceEncoder, texts: list[str], batch: int) -> float:
    """Texts/s the encoder alone reaches in this process, polls of `batch` texts, wall clock
    (its threads are the point): the limit of a pipeline that encodes."""
    encoder.encode(texts[:batch])  # warm-up
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        encoder.encode(texts[start : start + batch])
    return len(texts) / (time.perf_counter() - started)


def _score_batches(
    scorers: list[Scorer], texts: list[str], embeddings: np.ndarray | None, batch: int
) -> None:
    """`texts` (and their rows of `embeddings`, if any) `batch` at a time, each batch scored by
    every scorer in turn."""
    for start in range(0, len(texts), batch):
        rows = None if embeddings is None else embeddings[start : start + batch]
        for scorer in scorers:
            scorer.score(texts[start : start + batch], rows)


def _score_unit(unit: list[LoadedModel], work: Workload, start, results) -> None:
    scorers = [Scorer(unit)]
    _score_batches(scorers, work.texts[: work.batch], work.embeddings, work.batch)  # warm-up
    start.wait()
    _score_batches(scorers, work.texts, work.embeddings, work.batch)
    results.put(time.perf_counter())


def deployment_rate(work: Workload) -> float:
    """Texts/s of the deployment's classifier processes scoring at once on this machine, with
    no Kafka at all: one process per classifier (or the one co-located process), each scoring
    every text in batches. What the deployment could reach if moving texts and scores cost
    nothing; the pipeline's throughput against it is what the Kafka path costs."""
    units = work.units()
    ctx = multiprocessing.get_context("fork")  # the children inherit the loaded models
    start, results = ctx.Barrier(len(units) + 1), ctx.Queue()
    workers = [ctx.Process(target=_score_unit, args=(unit, work, start, results)) for unit in units]
    for worker in workers:
        worker.start()
    try:
        start.wait(timeout=300)
        began = time.perf_counter()
        finished = max(results.get(timeout=600) for _ in workers)
    finally:
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.kill()
    return len(work.texts) / (finished - began)


def join_cost_us(classes: int, pending: int, records: int = 20_000) -> float:
    """Aggregator join cost per complete score record with `pending` other joins waiting."""
    from triage.aggregator.join import JoinTable
    from triage.core.registry.view import RegistryView, with_voter
    from triage.schemas.models import ScoreRecord

    view = RegistryView()
    labels = [f"c{i}" for i in range(classes)]
    for label in labels:
        view.apply(label, with_voter(None, label, "1", 0))
    table = JoinTable(view, timeout_ms=10**9, horizon_ms=10**12)
    now = 10**6
    for i in range(pending):  # joins still waiting for all but one classifier
        table.add(ScoreRecord(id=f"p{i}", text_timestamp_ms=now, scores={"c0": 0.1}), now)
    table.take_changes()  # the service flushes these every batch; not part of the measurement
    scores = dict.fromkeys(labels, 0.05)
    versions = dict.fromkeys(labels, "1")
    batch = [
        ScoreRecord(id=f"m{i}", text_timestamp_ms=now, scores=scores, versions=versions)
        for i in range(records)
    ]
    started = time.process_time()
    for record in batch:
        table.add(record, now, now)
    table.expire(now)
    table.take_changes()
    return (time.process_time() - started) / records * 1e6


def join_costs(classes: int) -> dict[str, float]:
    """The join's cost per record at 0, 10,000 and 100,000 pending joins, medians of 3."""
    return {
        str(n): round(statistics.median(join_cost_us(classes, n) for _ in range(3)), 1)
        for n in (0, 10_000, 100_000)
    }
