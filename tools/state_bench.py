"""`triage bench-state`: the aggregator's memory and restart time as traffic accumulates.

Runs the co-located pipeline on fresh topics of a real broker and publishes texts as fast as it
takes them. At each point (say 100,000, 300,000 and 1,000,000 texts) it waits for every result,
then reads the aggregator's resident memory and its changelog's size, kills the aggregator with
SIGKILL, starts it again and times kill → the first result of a text published after the kill:
what a crash costs once that much traffic has gone through. Every text is checked to have
exactly one result at the end.

A script beside `triage bench` rather than a mode of it: it measures one process's state
through crashes, not the pipeline's speed.
"""

from __future__ import annotations

import logging
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from triage.core.kafka.admin import end_offsets
from triage.core.kafka.topics import ensure_topics
from triage.core.registry.store import wait_for_classifiers
from triage.core.settings import CommonSettings
from triage.producer.publisher import Publisher
from triage.producer.settings import ProducerSettings
from triage.schemas.models import TextRecord
from triage.tools import supervisor
from triage.tools.bench.offline import prepare_models, select_classes
from triage.tools.bench.running import LabelFollower
from triage.training.train import read_dataset

log = logging.getLogger(__name__)

CHUNK = 20_000  # texts per publish call: bounded memory in the publisher
PROBES = 20


class _Arrivals(LabelFollower):
    """Keeps the ids of the results (keys only: no JSON decoding)."""

    def __init__(self, settings: CommonSettings) -> None:
        super().__init__(settings)
        self.seen: set[bytes] = set()
        self.duplicates = 0
        self.first_at: dict[bytes, float] = {}
        self.watch: set[bytes] = set()

    def received(self, records: list[Any], now: float) -> None:
        for record in records:
            key = record.key or b""
            if key in self.seen:
                self.duplicates += 1
            self.seen.add(key)
            if key in self.watch:
                self.first_at.setdefault(key, now)

    def wait_for(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.seen) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.seen)} of {count} results after {timeout_s:.0f}s")
            time.sleep(0.2)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def state_bench(
    base: CommonSettings,
    data_path: Path,
    classes: int | None,
    points: list[int],
    models_dir: Path | None,
    timeout_s: float = 1800,
) -> dict:
    data = select_classes(read_dataset(data_path), classes)
    models_dir, held_out, _ = prepare_models(data, models_dir)
    labels = sorted(set(data.labels))
    settings = base.model_copy(update={"topic_prefix": f"state-{uuid.uuid4().hex[:8]}-"})
    ensure_topics(settings)
    env = {"TRIAGE_JOIN_TIMEOUT_S": "600"} | supervisor.connection_env(settings)
    children = supervisor.plan(
        models_dir, supervisor.inputs_of(models_dir, labels), True, None, env, monitor=False
    )
    aggregator = children[-1]
    for child in children:
        child.start()
    arrivals = _Arrivals(settings)
    rows: list[dict] = []
    published = 0
    try:
        wait_for_classifiers(settings, set(labels), timeout_s=180)
        arrivals.start()
        arrivals.ready.wait(30)
        with Publisher(ProducerSettings(**dict(settings))) as publisher:
            for point in points:
                started = time.monotonic()
                while published < point:
                    n = min(CHUNK, point - published)
                    publisher.publish(
                        TextRecord(id=f"s{i:08d}", text=held_out[i % len(held_out)])
                        for i in range(published, published + n)
                    )
                    published += n
                arrivals.wait_for(published + len(rows) * PROBES, timeout_s)
                rate = (point - (rows[-1]["texts"] if rows else 0)) / (time.monotonic() - started)
                row = _crash(settings, aggregator, arrivals, publisher, point, held_out, timeout_s)
                row["texts_per_s"] = round(rate, 1)
                log.info("after %d texts: %s", point, row)
                rows.append(row)
        arrivals.wait_for(published + len(rows) * PROBES, timeout_s)
        time.sleep(1.0)  # let a duplicate, if any, arrive
    finally:
        arrivals.stop.set()
        supervisor.shutdown(children)
    return {
        "classes": len(labels),
        "points": rows,
        "results": len(arrivals.seen),
        "expected": published + len(rows) * PROBES,
        "duplicates": arrivals.duplicates,
    }


def _crash(settings, aggregator, arrivals, publisher, point, texts, timeout_s) -> dict:
    """Memory and changelog now; then SIGKILL, restart, and time to a new text's result."""
    pid = aggregator.process.pid
    memory = rss_mb(pid)
    changelog = sum(end_offsets(settings, settings.topics.aggregator_state).values())
    aggregator.process.send_signal(signal.SIGKILL)
    aggregator.process.wait()
    killed = time.time()
    aggregator.start()
    probes = [TextRecord(id=f"p{point}-{i}", text=texts[i]) for i in range(PROBES)]
    arrivals.watch = {r.id.encode() for r in probes}
    publisher.publish(probes)
    deadline = time.monotonic() + timeout_s
    while not arrivals.first_at.keys() & arrivals.watch:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no result {timeout_s:.0f}s after the aggregator's restart")
        time.sleep(0.05)
    first = min(arrivals.first_at[k] for k in arrivals.first_at.keys() & arrivals.watch)
    return {
        "texts": point,
        "aggregator_rss_mb": round(memory, 1),
        "changelog_offsets": changelog,
        "kill_to_first_result_s": round(first - killed, 2),
    }


def format_report(report: dict) -> str:
    lines = [f"{report['classes']} classes co-located; per point, before the kill -9:"]
    for row in report["points"]:
        lines.append(
            f"  {row['texts']:>9,} texts ({row['texts_per_s']:,.0f}/s): aggregator"
            f" {row['aggregator_rss_mb']:.0f} MB, changelog {row['changelog_offsets']:,} offsets,"
            f" kill -9 → first new result {row['kill_to_first_result_s']:.1f} s"
        )
    lines.append(
        f"results {report['results']:,} of {report['expected']:,},"
        f" duplicates {report['duplicates']}"
    )
    return "\n".join(lines)
