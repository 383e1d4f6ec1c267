"""`bench` itself: the data and models made ready, the offline decisions and the in-process
limits measured, then a series of runs of the pipeline (and, with an encoder and no rate asked,
a second series at half the encoder's rate; via HTTP with `clients`, a closed-loop series of
that many clients at full speed; with `rates`, a series at each of them, the sweep), and the
report of them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from triage.core.liveness import settle_heap
from triage.core.model.artifacts import load_models
from triage.core.model.scoring import Scorer
from triage.core.settings import CommonSettings
from triage.tools.bench.offline import (
    accuracy,
    default_path_labels,
    encoder_of,
    prepare_models,
    select_classes,
    winners,
)
from triage.tools.bench.rates import join_costs, measure_limits
from triage.tools.bench.reporting import Asked, Quality, report
from triage.tools.bench.running import RunResult, RunSpec, series
from triage.training.embeddings import embed
from triage.training.train import read_dataset


def bench(
    settings: CommonSettings,
    data_path: Path,
    classes: int | None,
    messages: int,
    rate: float | None,
    mode: str,
    repeat: int,
    models_dir: Path | None,
    timeout_s: float = 600,
    warmup: int | None = None,
    via: str = "kafka",
    broker_pids: Sequence[int] = (),
    encoder_name: str | None = None,
    threads: int | None = None,
    clients: int | None = None,
    fused: bool = True,
    monitor: bool = True,
    rest_s: float = 10.0,
    rates: Sequence[float] = (),
    arrivals: str = "even",
) -> dict[str, Any]:
    """The report of the benchmark (see the package's docstring). `warmup`: texts before each
    run, or None for rounds until the latency settles; `rest_s`: seconds of each run's stack
    measured at rest after its texts (0: none); `rates`: a sweep, one series at each (`rate`
    is then the lowest of them); `arrivals`: how texts at a rate are spaced
    (`tools/arrivals.py`)."""
    rates = sorted(rates)
    if rates:
        rate = rates[0]
    data = select_classes(read_dataset(data_path), classes)
    models_dir, held_out, held_out_labels = prepare_models(data, models_dir, encoder_name)
    models = load_models(models_dir, sorted(set(data.labels)))
    labels = [m.label for m in models]
    texts = [held_out[i % len(held_out)] for i in range(messages)]
    truth = [held_out_labels[i % len(held_out)] for i in range(messages)]
    colocated = mode == "colocated"
    encoder = encoder_of(models, threads)
    served = None if encoder is None else embed(encoder, texts)
    fast = winners(Scorer(models).score(texts, served))
    expected = {f"b{i:07d}": label for i, label in enumerate(fast)}
    limits = measure_limits(models, held_out, colocated, encoder)
    settle_heap()  # no full collection pausing the result collector's clock mid-run
    spec = RunSpec(
        base=settings,
        models_dir=models_dir,
        labels=labels,
        texts=texts,
        expected=expected,
        colocated=colocated,
        timeout_s=timeout_s,
        via=via,
        broker_pids=broker_pids,
        threads=threads if encoder is not None else None,
        fused=fused,
        monitor=monitor,
        rest_s=rest_s,
        arrivals=arrivals,
    )
    runs = series(spec, rate, warmup, repeat)
    sweep: dict[float, list[RunResult]] = {}  # the first rate's runs are `runs`
    for each in rates:
        sweep[each] = runs if each == rate else series(spec, each, warmup, repeat)
    half: list[RunResult] = []
    if limits.encoding is not None and rate is None:
        half_rate = round(limits.encoding / 2, 1)
        half = series(spec, half_rate, warmup, repeat)
    closed: list[RunResult] = []
    if via == "http" and clients:  # N clients, each sending its next text when answered
        closed = series(replace(spec, clients=clients), None, warmup, repeat)
    quality = Quality(
        accuracy(fast, truth),
        accuracy(default_path_labels(models, texts, served), truth),
        join_costs(len(labels)),
    )
    asked = Asked(
        via, mode, len(labels), messages, rate, repeat, warmup, clients, monitor, arrivals
    )
    summary = report(asked, runs, half, limits, encoder, quality, closed, sweep)
    if encoder is not None:  # where the heads ran: in the encoder's process, or beside it
        summary["heads_with_encoder"] = fused
    return summary
