"""`triage bench`: the end-to-end benchmark, against a real broker.

For K classes of a labelled CSV it trains (or loads) the classifiers, runs the pipeline
(co-located or one process per classifier) against the cluster of the settings it is given (the
CLI starts a local broker when none is configured), publishes M held-out texts as fast as
possible or at a fixed rate, and measures end-to-end throughput (first publish to last result),
latency (text timestamp to the result reaching a `read_committed` consumer), CPU seconds of the
pipeline processes per 1,000 texts, and, in the same run, the in-process batch scoring rate of
the same models (the limit). It also checks correctness: every text exactly one result, labels
equal to the offline decision of the same models, and reports the accuracy of those labels next
to that of scikit-learn's default `predict_proba` path. Each run first publishes warm-up texts
at the same rate and waits for their results, so what is measured is the running pipeline, not
consumer groups joining. Several repetitions on fresh topics; medians are reported. With heads
trained on an encoder's features (`--encoder`), the pipeline includes `triage encoder`, whose
own in-process rate with the same threads and batches is the limit reported, and a second
series of runs at half that rate gives the latency of a pipeline not at its limit.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from triage.core.kafka.reader import TopicReader
from triage.core.kafka.topics import ensure_topics
from triage.core.liveness import settle_heap
from triage.core.model.artifacts import LoadedModel, load_models
from triage.core.model.decision import decide
from triage.core.model.scoring import Scorer
from triage.core.registry.store import wait_for_classifiers
from triage.core.settings import CommonSettings
from triage.encoder.sentence import SentenceEncoder
from triage.encoder.settings import EncoderSettings
from triage.producer.publisher import Publisher
from triage.producer.settings import ProducerSettings
from triage.schemas.codec import Rejected, decode_label
from triage.schemas.models import TextRecord
from triage.tools import supervisor
from triage.tools.http_load import HttpLoad
from triage.training.embeddings import embed, load_encoder
from triage.training.train import (
    DataError,
    Dataset,
    Options,
    read_dataset,
    split,
    train,
    with_embeddings,
)

log = logging.getLogger(__name__)
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class RunResult:
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cpu_s_per_1000: float
    results: int
    duplicates: int
    missing: int
    agreement: float
    complete: float
    warmup_p99_ms: float  # the texts published while the pipeline was starting (not measured)
    # --via http: each request's time from send to its answer (the gateway and the pipeline)
    request_p50_ms: float = float("nan")
    request_p95_ms: float = float("nan")
    request_p99_ms: float = float("nan")
    request_failures: int = 0
    # CPU seconds per 1,000 texts of each part: classifiers, aggregator, gateway, the broker
    # (when its pids are known) and this process (publishing and reading the results)
    cpu_s_per_1000_by_role: dict[str, float] = field(default_factory=dict)


def select_classes(data: Dataset, k: int | None) -> Dataset:
    classes = sorted(set(data.labels))[: k or None]
    if k and len(classes) < k:
        raise DataError(f"{data.path}: has {len(classes)} classes, --classes {k} asked")
    keep = [i for i, label in enumerate(data.labels) if label in classes]
    return Dataset(
        data.path, data.sha256, [data.texts[i] for i in keep], [data.labels[i] for i in keep]
    )


def prepare_models(
    data: Dataset, models_dir: Path | None, encoder: str | None = None
) -> tuple[Path, list[str], list[str]]:
    """A models folder trained on the training part of the split, and the held-out texts and
    their classes."""
    _, held_out, _, held_out_labels = split(data)
    if models_dir is None:
        models_dir = Path(tempfile.mkdtemp(prefix="triage-bench-models-"))
        started = time.monotonic()
        train(data, models_dir, options=Options(encoder=encoder))
        log.info(
            "trained %d classifiers in %.1fs", len(set(data.labels)), time.monotonic() - started
        )
    return models_dir, held_out, held_out_labels


def inprocess_rate(
    models: list[LoadedModel],
    texts: list[str],
    colocated: bool,
    batch: int = 500,
    embeddings: np.ndarray | None = None,
) -> float:
    """Texts/s one core scores in batches: the limit the pipeline is compared with."""
    units = [models] if colocated else [[m] for m in models]
    scorers = [Scorer(unit) for unit in units]
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


def _score_unit(unit, texts, embeddings, batch: int, start, results) -> None:
    scorers = [Scorer(unit)]
    _score_batches(scorers, texts[:batch], embeddings, batch)  # warm-up
    start.wait()
    _score_batches(scorers, texts, embeddings, batch)
    results.put(time.perf_counter())


def deployment_rate(
    models: list[LoadedModel],
    texts: list[str],
    colocated: bool,
    batch: int = 500,
    embeddings: np.ndarray | None = None,
) -> float:
    """Texts/s of the deployment's classifier processes scoring at once on this machine, with
    no Kafka at all: one process per classifier (or the one co-located process), each scoring
    every text in batches. What the deployment could reach if moving texts and scores cost
    nothing; the pipeline's throughput against it is what the Kafka path costs."""
    units = [models] if colocated else [[m] for m in models]
    ctx = multiprocessing.get_context("fork")  # the children inherit the loaded models
    start, results = ctx.Barrier(len(units) + 1), ctx.Queue()
    workers = [
        ctx.Process(target=_score_unit, args=(unit, texts, embeddings, batch, start, results))
        for unit in units
    ]
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
    return len(texts) / (finished - began)


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
        table.add(record, now)
    table.expire(now)
    table.take_changes()
    return (time.process_time() - started) / records * 1e6


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (FileNotFoundError, IndexError):
            pass
    return total / CLK_TCK


class LabelFollower(threading.Thread):
    """Follows the labels topic (read_committed) from a thread; a subclass keeps what it needs
    of each polled batch in `received`. `ready` is set once the reader is subscribed."""

    def __init__(self, settings: CommonSettings) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.stop = threading.Event()
        self.ready = threading.Event()

    def received(self, records: list[Any], now: float) -> None:
        raise NotImplementedError

    def run(self) -> None:
        reader = TopicReader(self.settings, self.settings.topics.labels, fetch_max_wait_ms=20)
        self.ready.set()
        try:
            while not self.stop.is_set():
                records = reader.poll(timeout_ms=100)
                self.received(records, time.time())
        finally:
            reader.close()


class ResultCollector(LabelFollower):
    """Records when each result arrives, its label, latency and completeness."""

    def __init__(self, settings: CommonSettings, expected: int) -> None:
        super().__init__(settings)
        self.expected = expected
        # id -> every arrival: (wall clock, label, latency ms, complete)
        self.arrivals: dict[str, list[tuple[float, str | None, int, bool]]] = {}
        self.done = threading.Event()

    def wait_for(self, ids: list[str], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not all(i in self.arrivals for i in ids):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def received(self, records: list[Any], now: float) -> None:
        for record in records:
            result = decode_label(record.value)
            if isinstance(result, Rejected):
                continue
            latency_ms = now * 1000 - result.text_timestamp_ms
            self.arrivals.setdefault(result.id, []).append(
                (now, result.label, int(latency_ms), result.complete)
            )
        if len(self.arrivals) >= self.expected:
            self.done.set()


def run_once(
    base: CommonSettings,
    models_dir: Path,
    labels: list[str],
    texts: list[str],
    expected: dict[str, str | None],
    colocated: bool,
    rate: float | None,
    timeout_s: float,
    warmup: int = 0,
    via: str = "kafka",
    broker_pids: Sequence[int] = (),
    threads: int | None = None,
) -> RunResult:
    """One run on fresh topics. The first `warmup` texts (at the same rate) are published and
    their results awaited before anything is measured: until then the consumer groups are still
    joining and the clients fetching metadata, which is start-up, not the pipeline's speed.
    `via="http"` sends the texts as requests to a `triage serve` of the run instead."""
    settings = base.model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:8]}-"})
    ensure_topics(settings)
    env = {
        "TRIAGE_TOPIC_PREFIX": settings.topic_prefix,
        # Measure complete joins: a classifier running behind must not be decided without.
        "TRIAGE_JOIN_TIMEOUT_S": os.environ.get("TRIAGE_JOIN_TIMEOUT_S", "600"),
    } | supervisor.connection_env(settings)
    if threads is not None:  # the encoder's (no other service has threads to set)
        env["TRIAGE_THREADS"] = str(threads)
    children = supervisor.plan(
        models_dir, supervisor.inputs_of(models_dir, labels), colocated, None, env, monitor=False
    )
    gateway = None
    if via == "http":
        gateway = _gateway_child(env)
        children.append(gateway.child)
    for child in children:
        child.start()
    try:
        wait_for_classifiers(settings, set(labels), timeout_s=180)
        if gateway is not None:
            gateway.wait_ready(timeout_s=60)
        warm = [TextRecord(id=f"w{i:07d}", text=texts[i % len(texts)]) for i in range(warmup)]
        records = [TextRecord(id=f"b{i:07d}", text=t) for i, t in enumerate(texts)]
        collector = ResultCollector(settings, len(warm) + len(records))
        collector.start()
        collector.ready.wait(30)
        with Publisher(ProducerSettings(**dict(settings))) as publisher:
            load = None if gateway is None else HttpLoad(gateway.url, wait_s=timeout_s)

            def send(batch: list[TextRecord]) -> None:
                if load is None:
                    _publish(publisher, batch, rate)
                else:
                    load.run(batch, rate)

            if warm:
                send(warm)
                if not collector.wait_for([r.id for r in warm], timeout_s):
                    raise TimeoutError(f"warm-up: not every result arrived in {timeout_s:.0f}s")
            if load is not None:
                load.latencies_ms.clear()
            roles = _roles(children, broker_pids)
            pids = [c.process.pid for c in children if c.process]
            cpu_before = cpu_seconds(pids)
            roles_before = {role: cpu_seconds(ps) for role, ps in roles.items()}
            first_publish = time.time()
            send(records)
        collector.done.wait(timeout_s)
        time.sleep(0.5)  # let duplicates, if any, show up
        collector.stop.set()
        collector.join(10)
        cpu_used = cpu_seconds(pids) - cpu_before
        by_role = {
            role: round((cpu_seconds(ps) - roles_before[role]) / len(records) * 1000, 3)
            for role, ps in roles.items()
        }
    finally:
        supervisor.shutdown(children)
    result = _summarise(collector, records, expected, first_publish, cpu_used, warm)
    result = replace(result, cpu_s_per_1000_by_role=by_role)
    if load is None:
        return result
    requests = sorted(load.latencies_ms)
    return replace(
        result,
        request_p50_ms=round(_percentile(requests, 50), 1),
        request_p95_ms=round(_percentile(requests, 95), 1),
        request_p99_ms=round(_percentile(requests, 99), 1),
        request_failures=len(load.failures),
    )


def _roles(children: list[supervisor.Child], broker_pids: Sequence[int]) -> dict[str, list[int]]:
    roles: dict[str, list[int]] = {
        "encoder": [],
        "classifiers": [],
        "aggregator": [],
        "gateway": [],
    }
    for child in children:
        if child.process:
            role = child.name.split()[0]
            roles["classifiers" if role == "classifier" else role].append(child.process.pid)
    roles = {role: pids for role, pids in roles.items() if pids}
    if broker_pids:
        roles["broker"] = list(broker_pids)
    return roles | {"bench": [os.getpid()]}


@dataclass
class _Gateway:
    child: supervisor.Child
    url: str

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the gateway at {self.url} was not ready in {timeout_s:.0f}s")


def _gateway_child(env: dict[str, str]) -> _Gateway:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = supervisor.triage_argv("serve", "--port", str(port))
    return _Gateway(supervisor.Child("gateway", argv, env), f"http://127.0.0.1:{port}")


def _summarise(collector, records, expected, first_publish, cpu_used, warm=()) -> RunResult:
    arrivals = {r.id: collector.arrivals[r.id] for r in records if r.id in collector.arrivals}
    firsts = [a[0] for a in arrivals.values()]
    last = max((a[0] for a in firsts), default=first_publish)
    latencies = sorted(a[2] for a in firsts)
    agree = sum(1 for r in records if r.id in arrivals and arrivals[r.id][0][1] == expected[r.id])
    every = [a for each in arrivals.values() for a in each]
    n = len(records)
    return RunResult(
        throughput=round(len(arrivals) / max(last - first_publish, 1e-9), 1),
        p50_ms=_percentile(latencies, 50),
        p95_ms=_percentile(latencies, 95),
        p99_ms=_percentile(latencies, 99),
        cpu_s_per_1000=round(cpu_used / n * 1000, 3),
        results=len(every),
        duplicates=len(every) - len(arrivals),
        missing=n - len(arrivals),
        agreement=round(agree / n, 5),
        complete=round(sum(a[3] for a in every) / max(1, len(every)), 5),
        warmup_p99_ms=_percentile(
            sorted(collector.arrivals[r.id][0][2] for r in warm if r.id in collector.arrivals), 99
        ),
    )


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    index = min(len(values) - 1, max(0, round(q / 100 * len(values)) - 1))
    return float(values[index])


def _publish(publisher: Publisher, records: list[TextRecord], rate: float | None) -> None:
    if not rate:
        publisher.publish(records)
        return
    chunk = max(1, int(rate / 100))  # send every 10 ms
    started = time.monotonic()
    for i in range(0, len(records), chunk):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        publisher.publish(records[i : i + chunk])


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
) -> dict:
    data = select_classes(read_dataset(data_path), classes)
    models_dir, held_out, held_out_labels = prepare_models(data, models_dir, encoder_name)
    models = load_models(models_dir, sorted(set(data.labels)))
    labels = [m.label for m in models]
    texts = [held_out[i % len(held_out)] for i in range(messages)]
    truth = [held_out_labels[i % len(held_out)] for i in range(messages)]
    colocated = mode == "colocated"
    encoder = _encoder_of(models, threads)
    served = None if encoder is None else embed(encoder, texts)
    offline = Scorer(models).score(texts, served)
    fast = winners(offline)
    expected = {f"b{i:07d}": label for i, label in enumerate(fast)}
    if warmup is None:  # three seconds of traffic, or 500 texts at full speed
        warmup = int(3 * rate) if rate else 500
    sample = held_out * max(1, 2000 // len(held_out))
    sample_served = None if encoder is None else embed(encoder, sample)
    limit = inprocess_rate(models, sample, colocated, embeddings=sample_served)
    shape = deployment_rate(models, sample, colocated, embeddings=sample_served)
    encoding = None
    if encoder is not None:
        encoding = encoder_rate(encoder, sample[:2000], EncoderSettings().encode_batch)
        log.info("encoder %s: %.0f texts/s in process", encoder.identity, encoding)
    settle_heap()  # no full collection pausing the result collector's clock mid-run

    def series(at_rate: float | None) -> list[RunResult]:
        runs = []
        for i in range(repeat):
            result = run_once(
                settings,
                models_dir,
                labels,
                texts,
                expected,
                colocated,
                at_rate,
                timeout_s,
                warmup if at_rate == rate else int(3 * (at_rate or 0)) or warmup,
                via,
                broker_pids,
                threads if encoder is not None else None,
            )
            log.info("run %d/%d (rate %s): %s", i + 1, repeat, at_rate or "max", result)
            runs.append(result)
        return runs

    runs = series(rate)
    half = []
    if encoding is not None and rate is None:
        half = series(round(encoding / 2, 1))
    throughput = statistics.median(r.throughput for r in runs)
    gateway = {}
    if via == "http":
        gateway = {
            f"request_{k}": statistics.median(getattr(r, f"request_{k}") for r in runs)
            for k in ("p50_ms", "p95_ms", "p99_ms")
        } | {"request_failures": sum(r.request_failures for r in runs)}
    encoded: dict[str, Any] = {}
    if encoder is not None and encoding is not None:
        encoded = {
            "encoder": encoder.identity,
            "encoder_threads": encoder.threads,
            "encoder_inprocess_throughput": round(encoding, 1),
            "encoder_ratio": round(throughput / encoding, 3),
        }
        if half:
            encoded |= {
                "half_rate": round(encoding / 2, 1),
                "half_rate_throughput": statistics.median(r.throughput for r in half),
                "half_rate_p50_ms": statistics.median(r.p50_ms for r in half),
                "half_rate_p99_ms": statistics.median(r.p99_ms for r in half),
            }
    everything = runs + half
    return (
        gateway
        | encoded
        | {
            "via": via,
            "mode": mode,
            "classes": len(labels),
            "messages": messages,
            "rate": rate,
            "repeat": repeat,
            "throughput": throughput,
            "p50_ms": statistics.median(r.p50_ms for r in runs),
            "p95_ms": statistics.median(r.p95_ms for r in runs),
            "p99_ms": statistics.median(r.p99_ms for r in runs),
            "cpu_s_per_1000": statistics.median(r.cpu_s_per_1000 for r in runs),
            "cpu_s_per_1000_by_role": {
                role: statistics.median(r.cpu_s_per_1000_by_role[role] for r in runs)
                for role in runs[0].cpu_s_per_1000_by_role
            },
            "inprocess_throughput": round(limit, 1),
            "warmup": warmup,
            # The pipeline's labels equal `fast` (`agreement`); the default path is
            # scikit-learn's own predict_proba of every model, as training evaluated them.
            "accuracy": _accuracy(fast, truth),
            "default_path_accuracy": _accuracy(default_path_labels(models, texts, served), truth),
            "join_us_per_record_by_pending": {
                str(n): round(statistics.median(join_cost_us(len(labels), n) for _ in range(3)), 1)
                for n in (0, 10_000, 100_000)
            },
            "ratio": round(throughput / limit, 3),
            # against the limit times every core (the broker shares them), and against the
            # same processes scoring with no Kafka in between
            "cores_ratio": round(throughput / (limit * (os.cpu_count() or 1)), 3),
            "no_kafka_throughput": round(shape, 1),
            "no_kafka_ratio": round(throughput / shape, 3),
            "cores": os.cpu_count(),
            "duplicates": sum(r.duplicates for r in everything),
            "missing": sum(r.missing for r in everything),
            "agreement": min(r.agreement for r in everything),
            "complete": min(r.complete for r in everything),
            "runs": [asdict(r) for r in runs],
            "half_rate_runs": [asdict(r) for r in half],
        }
    )


def _encoder_of(models: list[LoadedModel], threads: int | None) -> SentenceEncoder | None:
    identities = {m.manifest.encoder for m in models}
    if len(identities) > 1:
        raise DataError("bench runs heads of one input; these models read several")
    identity = identities.pop()
    if identity is None:
        return None
    encoder = load_encoder(identity.partition("@")[0], trained_on=identity)
    if threads is not None:
        encoder = SentenceEncoder(encoder.name, threads)
    return encoder


def default_path_labels(
    models: list[LoadedModel], texts: list[str], embeddings: np.ndarray | None = None
) -> list[str | None]:
    """Winners through each model's scikit-learn steps, without the fast scorer."""
    columns = {}
    for m in models:
        x = m.pipeline.named_steps["features"].transform(texts)
        x = with_embeddings(x, embeddings, m.manifest.embedding_weight)
        clf = m.pipeline.named_steps["clf"]
        columns[m.label] = clf.predict_proba(x)[:, list(clf.classes_).index(1)]
    return winners(columns)


def winners(columns: dict[str, Any]) -> list[str | None]:
    """The decision for every text, from each class's column of probabilities."""
    count = len(next(iter(columns.values()), []))
    return [decide({k: float(v[i]) for k, v in columns.items()}).label for i in range(count)]


def _accuracy(predicted: list[str | None], truth: list[str]) -> float:
    return round(sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth), 5)


def format_summary(report: dict) -> str:
    lines = [
        f"mode {report['mode']}, {report['classes']} classes, {report['messages']} texts, "
        f"rate {report['rate'] or 'max'}, {report['repeat']} runs (medians):",
        f"  throughput        {report['throughput']:.0f} texts/s end to end",
        f"  latency           p50 {report['p50_ms']:.0f} ms, p95 {report['p95_ms']:.0f} ms, "
        f"p99 {report['p99_ms']:.0f} ms",
        f"  CPU               {report['cpu_s_per_1000']:.2f} s per 1,000 texts (pipeline); "
        + ", ".join(f"{k} {v:.2f}" for k, v in report["cpu_s_per_1000_by_role"].items()),
        f"  in-process limit  {report['inprocess_throughput']:.0f} texts/s on one core "
        f"(ratio {report['ratio']:.2f}; {report['cores_ratio']:.2f} of it times "
        f"{report['cores']} cores)",
        f"  without Kafka     {report['no_kafka_throughput']:.0f} texts/s: the same classifier "
        f"processes scoring at once (ratio {report['no_kafka_ratio']:.2f})",
        "  aggregator join   "
        + ", ".join(
            f"{v} us/record at {k} pending"
            for k, v in report["join_us_per_record_by_pending"].items()
        ),
        f"  correctness       {report['missing']} missing, {report['duplicates']} duplicates, "
        f"agreement with offline {report['agreement']:.2%}, complete {report['complete']:.2%}",
        f"  accuracy          {report['accuracy']:.2%} through the pipeline, "
        f"{report['default_path_accuracy']:.2%} through scikit-learn's default path",
        f"  warm-up           {report['warmup']} texts before each measured run",
    ]
    if report.get("encoder"):
        lines.insert(
            5,
            f"  encoder           {report['encoder']}: {report['encoder_inprocess_throughput']:.0f}"
            f" texts/s in process on {report['encoder_threads']} thread(s), the limit; end to "
            f"end {report['encoder_ratio']:.2f} of it",
        )
        if "half_rate" in report:
            lines.insert(
                6,
                f"  at half of it     {report['half_rate']:.0f} texts/s offered: "
                f"{report['half_rate_throughput']:.0f} texts/s, "
                f"p50 {report['half_rate_p50_ms']:.0f} ms, p99 {report['half_rate_p99_ms']:.0f} ms",
            )
    if report.get("via") == "http":
        lines.insert(
            3,
            f"  via HTTP          request p50 {report['request_p50_ms']:.0f} ms, p95 "
            f"{report['request_p95_ms']:.0f} ms, p99 {report['request_p99_ms']:.0f} ms "
            f"(send to answer; the latency above is the pipeline's own, text to result); "
            f"{report['request_failures']} failed",
        )
    return "\n".join(lines)
