"""One run of the benchmark: the stack's processes as `triage up` starts them, monitor included
(and, with `via="http"`, a gateway) started on fresh topics, warmed up (rounds of traffic until
the latency settles, or an asked count of texts), then the measured texts published as fast as
possible or at a fixed rate while a `read_committed` reader of the labels topic records when
each result arrives, and last the stack left at rest a while; the run's throughput, latencies,
CPU per text and at rest by role, and correctness summarised as a `RunResult`.
"""

from __future__ import annotations

import bisect
import logging
import os
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from triage.core.kafka.reader import TopicReader
from triage.core.kafka.topics import ensure_topics
from triage.core.registry.store import wait_for_classifiers
from triage.core.runtime.metrics import result_hops
from triage.core.settings import CommonSettings
from triage.producer.publisher import Publisher
from triage.producer.settings import ProducerSettings
from triage.schemas.codec import Rejected, decode_label
from triage.schemas.models import TextRecord
from triage.tools import supervisor
from triage.tools.arrivals import due_offsets
from triage.tools.bench import warmup as warming
from triage.tools.bench.costs import (
    CpuMeter,
    jit_cpu_seconds,
    less_rest,
    per_text_ms,
    percent_of_core,
    roles,
    stack_total,
)
from triage.tools.http_load import HttpLoad

log = logging.getLogger(__name__)

# After the last result the stack is left this long before its CPU is read. The monitor, which
# nothing waits for, has its fetches answered and commits at most once a second, so its work on
# the last texts lands up to two seconds after them: that work is the texts' (counted in their
# CPU, less what the stack spends at rest over the same seconds), not the stack's at rest.
SETTLE_S = 2.5


@dataclass
class RunResult:
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    # CPU milliseconds per measured text of the stack: every process of it, the broker's when
    # its pids are known (`broker_counted`), never the bench's own
    cpu_ms_per_text: float
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
    request_rate: float = float("nan")  # answers a second (closed loop: what N clients got)
    # where the time goes: each hop's p50 and p99 over the measured results, from their stage
    # timestamps (decided_to_read: to this process reading the result)
    hop_p50_ms: dict[str, float] = field(default_factory=dict)
    hop_p99_ms: dict[str, float] = field(default_factory=dict)
    # CPU milliseconds per text of each role: classifiers (or the encoder), aggregator,
    # monitor, gateway, broker (when its pids are known) and bench (this process, publishing
    # and reading the results: reported, not counted in the stack's total)
    cpu_ms_per_text_by_role: dict[str, float] = field(default_factory=dict)
    broker_counted: bool = False
    # the stack at rest after the measured texts, no texts at all: percent of one core
    rest_s: float = 0.0
    rest_cpu_pct: float = float("nan")
    rest_cpu_pct_by_role: dict[str, float] = field(default_factory=dict)
    # the warm-up before the measured texts: how long, how many texts, each round's p99
    warmup_s: float = 0.0
    warmup_texts: int = 0
    warmup_round_p99_ms: list[float] = field(default_factory=list)
    warmup_round_jit_pct: list[float] = field(default_factory=list)
    warmup_settled: bool = True


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """What every run of a series shares: the cluster's settings, the models, the texts and
    their expected labels (by id), and how the pipeline is deployed and fed."""

    base: CommonSettings
    models_dir: Path
    labels: list[str]
    texts: list[str]
    expected: dict[str, str | None]
    colocated: bool
    timeout_s: float
    via: str = "kafka"
    broker_pids: Sequence[int] = ()
    threads: int | None = None  # the encoder's (no other service has threads to set)
    # --via http: concurrent clients. At a fixed rate (an open loop) enough that none waits for
    # a free client (rate × latency; 32 could not hold 50/s at main's 1.2 s p99); at full speed
    # (a closed loop) the N clients whose answers a second are measured.
    clients: int = 64
    fused: bool = True  # an encoder's heads in its process, as `triage up` runs them
    monitor: bool = True  # the monitor too, as `triage up` runs it
    rest_s: float = 0.0  # seconds of the stack at rest measured after the texts (0: none)
    arrivals: str = "even"  # at a rate: texts evenly spaced, or at Poisson times (tools/arrivals)


def series(spec: RunSpec, rate: float | None, warmup: int | None, repeat: int) -> list[RunResult]:
    """`repeat` runs of `spec` at `rate` (None: as fast as possible), one after the other;
    `warmup` texts before each (None: until the latency settles)."""
    runs = []
    for i in range(repeat):
        result = run_once(spec, rate, warmup)
        log.info("run %d/%d (rate %s): %s", i + 1, repeat, rate or "max", result)
        runs.append(result)
    return runs


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

    def __init__(self, settings: CommonSettings) -> None:
        super().__init__(settings)
        # id -> every arrival: (wall clock, label, latency ms, complete)
        self.arrivals: dict[str, list[tuple[float, str | None, int, bool]]] = {}
        self.hops: dict[str, dict[str, int]] = {}  # id -> its first result's hops (ms)

    def wait_for(self, ids: list[str], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        for message_id in ids:  # each id looked up until it arrives, then never again
            while message_id not in self.arrivals:
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
            if result.id not in self.hops:
                self.hops[result.id] = result_hops(result, int(now * 1000))
            self.arrivals.setdefault(result.id, []).append(
                (now, result.label, int(latency_ms), result.complete)
            )


def run_once(spec: RunSpec, rate: float | None, warmup: int | None = 0) -> RunResult:
    """One run on fresh topics. Warm-up texts (at the same rate) are published and their
    results awaited before anything is measured: `warmup` of them, or (None) rounds until the
    latency settles. Until then the consumer groups are still joining, the clients fetching
    metadata and the broker's JIT compiling, which is start-up, not the pipeline's speed.
    `via="http"` sends the texts as requests to a `triage serve` of the run instead."""
    settings = spec.base.model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:8]}-"})
    ensure_topics(settings)
    env = _children_env(settings, spec.threads)
    inputs = supervisor.inputs_of(spec.models_dir, spec.labels)
    children = supervisor.plan(
        spec.models_dir, inputs, spec.colocated, None, env, monitor=spec.monitor, fused=spec.fused
    )
    gateway = None
    if spec.via == "http":
        gateway = _gateway_child(env)
        children.append(gateway.child)
    for child in children:
        child.start()
    try:
        wait_for_classifiers(settings, set(spec.labels), timeout_s=180)
        if gateway is not None:
            gateway.wait_ready(timeout_s=60)
        measured = _measure(settings, spec, children, gateway, rate, warmup)
    finally:
        supervisor.shutdown(children)
    return measured.result(spec.expected)


def _children_env(settings: CommonSettings, threads: int | None) -> dict[str, str]:
    env = {
        "TRIAGE_TOPIC_PREFIX": settings.topic_prefix,
        # Measure complete joins: a classifier running behind must not be decided without.
        "TRIAGE_JOIN_TIMEOUT_S": os.environ.get("TRIAGE_JOIN_TIMEOUT_S", "600"),
        # Every process serves its metrics, as under `triage up` (a free port each: several
        # benches or stacks may share the machine)
        "TRIAGE_METRICS_PORT": "0",
    } | supervisor.connection_env(settings)
    if threads is not None:  # the encoder's (no other service has threads to set)
        env["TRIAGE_THREADS"] = str(threads)
    return env


@dataclass
class _Measured:
    """What one run collected, summarised once its processes are shut down."""

    collector: ResultCollector
    records: list[TextRecord]
    warm: list[TextRecord]
    warm_up: warming.WarmUp
    first_publish: float
    used_s: dict[str, float]  # CPU seconds by role while the measured texts went through
    rest: dict[str, float]  # percent of one core by role at rest (empty: not measured)
    rest_s: float
    broker_counted: bool
    load: HttpLoad | None

    def result(self, expected: dict[str, str | None]) -> RunResult:
        by_role = per_text_ms(self.used_s, len(self.records))
        result = _summarise(
            self.collector,
            self.records,
            expected,
            self.first_publish,
            stack_total(by_role),
            self.warm,
        )
        result = replace(
            result,
            cpu_ms_per_text_by_role=by_role,
            broker_counted=self.broker_counted,
            rest_s=self.rest_s,
            rest_cpu_pct=stack_total(self.rest) if self.rest else float("nan"),
            rest_cpu_pct_by_role=self.rest,
            warmup_s=round(self.warm_up.seconds, 2),
            warmup_texts=self.warm_up.texts,
            warmup_round_p99_ms=self.warm_up.round_p99_ms,
            warmup_round_jit_pct=self.warm_up.round_jit_pct,
            warmup_settled=self.warm_up.settled,
        )
        if self.load is None:
            return result
        requests = sorted(self.load.latencies_ms)
        return replace(
            result,
            request_p50_ms=round(_percentile(requests, 50), 1),
            request_p95_ms=round(_percentile(requests, 95), 1),
            request_p99_ms=round(_percentile(requests, 99), 1),
            request_failures=len(self.load.failures),
            request_rate=round(len(requests) / max(self.load.elapsed_s, 1e-9), 1),
        )


def _measure(
    settings: CommonSettings,
    spec: RunSpec,
    children: list[supervisor.Child],
    gateway: _Gateway | None,
    rate: float | None,
    warmup: int | None,
) -> _Measured:
    """Warm up, publish the measured texts and wait for their results (or `timeout_s`), let the
    stack settle (`SETTLE_S`), then leave it at rest `spec.rest_s` (the bench's reader stopped:
    it is no user's)."""
    records = [TextRecord(id=f"b{i:07d}", text=t) for i, t in enumerate(spec.texts)]
    collector = ResultCollector(settings)
    collector.start()
    collector.ready.wait(30)
    by_role = roles([(c.name, c.process.pid) for c in children if c.process], spec.broker_pids)
    with Publisher(ProducerSettings(**dict(settings))) as publisher:
        load = (
            None
            if gateway is None
            else HttpLoad(gateway.url, clients=spec.clients, wait_s=spec.timeout_s)
        )
        send = _sender(publisher, load, rate, spec.arrivals)
        warm, warm_up = _warm_up(
            spec, collector, send, load, rate, warmup, by_role.get("broker", [])
        )
        if load is not None:
            load.latencies_ms.clear()
            load.failures.clear()
            load.failed_ids.clear()
        cpu = CpuMeter(by_role)
        first_publish = time.time()
        send(records)
    collector.wait_for(_answered(records, load), spec.timeout_s)
    answered = time.monotonic()
    time.sleep(0.5)  # let duplicates, if any, show up
    collector.stop.set()
    collector.join(10)
    time.sleep(max(0.0, answered + SETTLE_S - time.monotonic()))
    used_s = cpu.used()  # from the first text sent until the stack settled after the last result
    settle_s = time.monotonic() - answered
    rest = {}
    if spec.rest_s > 0:
        at_rest = CpuMeter(by_role)
        time.sleep(spec.rest_s)
        rest = percent_of_core(at_rest.used(), spec.rest_s)
        used_s = less_rest(used_s, rest, settle_s)
    return _Measured(
        collector,
        records,
        warm,
        warm_up,
        first_publish,
        used_s,
        rest,
        spec.rest_s,
        "broker" in by_role,
        load,
    )


def _warm_up(
    spec: RunSpec,
    collector: ResultCollector,
    send: Callable[[list[TextRecord]], None],
    load: HttpLoad | None,
    rate: float | None,
    count: int | None,
    broker_pids: Sequence[int] = (),
) -> tuple[list[TextRecord], warming.WarmUp]:
    """`count` texts at `rate`, results awaited; or (None) rounds of `warming.ROUND_S` of
    traffic until a round's pipeline p99 settles and the broker's JIT with it. Every warm-up
    text, and what it took."""
    texts = spec.texts
    size = warming.round_size(rate) if count is None else count
    warm: list[TextRecord] = []
    took = warming.WarmUp()
    started = time.monotonic()
    while size and (
        not took.round_p99_ms
        if count is not None
        else warming.another_round(
            took.round_p99_ms, time.monotonic() - started, took.round_jit_pct
        )
    ):
        n = len(warm)
        batch = [
            TextRecord(id=f"w{n + i:07d}", text=texts[(n + i) % len(texts)]) for i in range(size)
        ]
        round_started, jit_before = time.monotonic(), jit_cpu_seconds(broker_pids)
        send(batch)
        if not collector.wait_for(_answered(batch, load), spec.timeout_s):
            raise TimeoutError(f"warm-up: not every result arrived in {spec.timeout_s:.0f}s")
        if broker_pids:
            jit_s = jit_cpu_seconds(broker_pids) - jit_before
            took.round_jit_pct.append(
                round(jit_s / max(time.monotonic() - round_started, 1e-9) * 100, 1)
            )
        warm += batch
        latencies = sorted(
            collector.arrivals[r.id][0][2] for r in batch if r.id in collector.arrivals
        )
        took.round_p99_ms.append(_percentile(latencies, 99))
    took.texts = len(warm)
    took.seconds = time.monotonic() - started
    took.settled = count is not None or warming.settled(took.round_p99_ms, took.round_jit_pct)
    if not took.settled:
        log.warning(
            "warm-up: not settled after %.0fs: p99 %s ms, the broker's JIT %s %% of a core",
            took.seconds,
            took.round_p99_ms,
            took.round_jit_pct,
        )
    return warm, took


def _answered(records: list[TextRecord], load: HttpLoad | None) -> list[str]:
    """The ids of `records` whose results to wait for: all but those whose request failed (its
    text may never have been published; the run reports them as failed and missing)."""
    if load is None or not load.failed_ids:
        return [r.id for r in records]
    log.warning("%d requests failed, e.g. %s", len(load.failures), load.failures[0])
    return [r.id for r in records if r.id not in load.failed_ids]


def _sender(
    publisher: Publisher, load: HttpLoad | None, rate: float | None, arrivals: str
) -> Callable[[list[TextRecord]], None]:
    def send(batch: list[TextRecord]) -> None:
        if load is None:
            _publish(publisher, batch, rate, arrivals)
        else:
            load.run(batch, rate, arrivals)

    return send


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


def _summarise(collector, records, expected, first_publish, cpu_ms_per_text, warm=()) -> RunResult:
    arrivals = {r.id: collector.arrivals[r.id] for r in records if r.id in collector.arrivals}
    firsts = [a[0] for a in arrivals.values()]
    last = max((a[0] for a in firsts), default=first_publish)
    latencies = sorted(a[2] for a in firsts)
    agree = sum(1 for r in records if r.id in arrivals and arrivals[r.id][0][1] == expected[r.id])
    every = [a for each in arrivals.values() for a in each]
    n = len(records)
    hops = _hop_percentiles([collector.hops[i] for i in arrivals if i in collector.hops])
    return RunResult(
        throughput=round(len(arrivals) / max(last - first_publish, 1e-9), 1),
        p50_ms=_percentile(latencies, 50),
        p95_ms=_percentile(latencies, 95),
        p99_ms=_percentile(latencies, 99),
        cpu_ms_per_text=cpu_ms_per_text,
        results=len(every),
        duplicates=len(every) - len(arrivals),
        missing=n - len(arrivals),
        agreement=round(agree / n, 5),
        complete=round(sum(a[3] for a in every) / max(1, len(every)), 5),
        warmup_p99_ms=_percentile(
            sorted(collector.arrivals[r.id][0][2] for r in warm if r.id in collector.arrivals), 99
        ),
        hop_p50_ms=hops[50],
        hop_p99_ms=hops[99],
    )


def _hop_percentiles(hops: list[dict[str, int]]) -> dict[int, dict[str, float]]:
    """p50 and p99 of every hop over the results that have it: {50: {hop: ms}, 99: {...}}."""
    by_hop: dict[str, list[int]] = {}
    for each in hops:
        for hop, ms in each.items():
            by_hop.setdefault(hop, []).append(ms)
    ordered = {hop: sorted(values) for hop, values in by_hop.items()}
    return {q: {hop: _percentile(v, q) for hop, v in ordered.items()} for q in (50, 99)}


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    index = min(len(values) - 1, max(0, round(q / 100 * len(values)) - 1))
    return float(values[index])


def _publish(
    publisher: Publisher, records: list[TextRecord], rate: float | None, arrivals: str
) -> None:
    if not rate:
        publisher.publish(records)
        return
    # evenly spaced, above 100 texts/s they go a 10 ms tick's worth at a time
    ahead_s = (max(1, int(rate / 100)) - 1) / rate if arrivals == "even" else 0.0
    _publish_when_due(publisher, records, due_offsets(len(records), rate, arrivals), ahead_s)


def _publish_when_due(
    publisher: Publisher, records: list[TextRecord], due: list[float], ahead_s: float = 0.0
) -> None:
    """Each record at its offset from now, with those due by then (or within `ahead_s` of it)."""
    started, i = time.monotonic(), 0
    while i < len(records):
        delay = started + due[i] - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        end = bisect.bisect_right(due, time.monotonic() - started + ahead_s, lo=i + 1)
        publisher.publish(records[i:end])
        i = end
