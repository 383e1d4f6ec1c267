"""The runtime's Prometheus metrics, and the `/metrics` server that exposes every metric.

The loop's own counters (records in and out per service and topic, batch sizes) are defined once
here and updated after a batch's transaction committed, so they count what the rest of the
pipeline can see; a service defines its own metrics in its folder, on the same registry.
`serve` starts the HTTP server on `metrics_host:metrics_port` when a port is configured (0 picks
a free one); the address is logged so an operator can find it.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

from triage.core.settings import CommonSettings

if TYPE_CHECKING:
    from triage.core.runtime.stalls import Stall

log = logging.getLogger(__name__)

RECORDS_IN = Counter("triage_records_in", "Records consumed and committed", ["service", "topic"])
RECORDS_OUT = Counter(
    "triage_records_out", "Records produced in committed transactions", ["service", "topic"]
)
BATCH_SIZE = Histogram(
    "triage_batch_size",
    "Records per polled batch",
    ["service"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000),
)
# Where the time goes: each service observes the hop that ends where it sees a text, from the
# record timestamps (so the hops of one text add up to its end-to-end latency, clocks allowing).
# 1 ms .. 10 s: a hop on one machine costs a poll and a transaction commit, tens of ms at
# moderate rates (issue 25: pipeline p99 230 ms over four hops at 200 texts/s).
HOP_SECONDS = Histogram(
    "triage_hop_seconds",
    "Time from one stage seeing a text to the next: published, encoded, scored, decided, read",
    ["hop"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HOPS = (
    "published_to_encoded",
    "published_to_scored",
    "encoded_to_scored",
    "scored_to_decided",
    "decided_to_read",
)
# Counted by every service that refuses records (the aggregator, the monitor), by reason.
DEAD_LETTERS = Counter("triage_dead_letters", "Dead-letter records committed", ["reason"])


class _Stalls:
    """`triage_stalled_seconds`: how long each current stall has lasted, read at scrape time
    from the services' stall watchers (a series exists only while its stall does)."""

    def __init__(self) -> None:
        self._sources: dict[str, Callable[[], list[Stall]]] = {}

    def watch(self, service: str, current: Callable[[], list[Stall]]) -> None:
        self._sources[service] = current

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "triage_stalled_seconds",
            "How long an input partition has not moved: unread (committed records wait),"
            " held (an open transaction holds it), commit (its batch waits in a commit)",
            labels=["service", "topic", "partition", "reason"],
        )
        for service, current in list(self._sources.items()):
            for s in current():
                family.add_metric([service, s.topic, str(s.partition), s.reason], s.seconds)
        yield family


STALLS = _Stalls()
REGISTRY.register(STALLS)
_server_port: int | None = None


def serve(settings: CommonSettings, registry: CollectorRegistry = REGISTRY) -> int | None:
    """Serve `/metrics` when a port is configured; the bound port, or None. Once per process."""
    global _server_port
    if settings.metrics_port is None or _server_port is not None:
        return _server_port
    try:
        server, _thread = start_http_server(
            settings.metrics_port, addr=settings.metrics_host, registry=registry
        )
    except OSError as exc:  # a busy port must not stop the pipeline: say so, run without
        log.error(
            "cannot serve metrics on %s:%d: %s", settings.metrics_host, settings.metrics_port, exc
        )
        return None
    _server_port = server.server_address[1]
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, _server_port)
    return _server_port


def count_batch(service: str, batches: Mapping[Any, Sized], outputs: Iterable) -> None:
    """After a commit: the polled batch's size and records per topic, and what it produced."""
    consumed = Tally[str]()
    for tp, records in batches.items():
        consumed[tp.topic] += len(records)
    if consumed:
        BATCH_SIZE.labels(service).observe(consumed.total())
    for topic, n in consumed.items():
        RECORDS_IN.labels(service, topic).inc(n)
    for topic, n in Tally(out.topic for out in outputs).items():
        RECORDS_OUT.labels(service, topic).inc(n)


def observe_hop(hop: str, now_ms: int, since_ms: Iterable[int]) -> None:
    """One observation of `hop` per timestamp in `since_ms`: `now_ms` minus it (never below 0:
    another host's clock may run ahead)."""
    histogram = HOP_SECONDS.labels(hop)
    for ms in since_ms:
        histogram.observe(max(0, now_ms - ms) / 1000)


def result_hops(result: Any, read_ms: int | None = None) -> dict[str, int]:
    """The hops of one labelled result, in ms, from its stage timestamps: those it has (a result
    without `scored_at_ms` has none but `decided_to_read`), `decided_to_read` when `read_ms`."""
    hops: dict[str, int] = {}
    scored, encoded = result.scored_at_ms, result.encoded_at_ms
    if scored is not None:
        if encoded is not None:
            hops["published_to_encoded"] = encoded - result.text_timestamp_ms
            hops["encoded_to_scored"] = scored - encoded
        else:
            hops["published_to_scored"] = scored - result.text_timestamp_ms
        hops["scored_to_decided"] = result.decided_at_ms - scored
    if read_ms is not None:
        hops["decided_to_read"] = read_ms - result.decided_at_ms
    return {hop: max(0, ms) for hop, ms in hops.items()}


def count_dead_letters(reasons: list[str]) -> None:
    for reason, n in Tally(reasons).items():
        DEAD_LETTERS.labels(reason).inc(n)
