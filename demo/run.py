"""`make demo`: a fresh machine to labelled results, on a real local Kafka broker.

Starts the local broker (or uses TRIAGE_BOOTSTRAP_SERVERS), trains the demo classifiers on
`demo/data/train.csv`, runs the pipeline with `triage up` (one process per classifier plus the
aggregator), publishes `demo/data/stream.csv`, prints each result beside the true class, the
accuracy, and shuts everything down; with `--serve` (`make serve`) it first keeps the pipeline
running behind `triage serve` and prints the page's address. Every run uses fresh topics, so
reruns do not mix.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from triage.core.kafka.topics import ensure_topics
from triage.core.registry.store import wait_for_classifiers
from triage.core.settings import CommonSettings, ConnectionSettings
from triage.local import cluster as kafka_local
from triage.producer.publisher import Publisher
from triage.producer.settings import ProducerSettings
from triage.schemas.models import TextRecord
from triage.tools.results import read_labels
from triage.tools.supervisor import connection_env
from triage.training.train import read_dataset, train

HERE = Path(__file__).parent
DATA = HERE / "data"
log = logging.getLogger("demo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.run", description=__doc__)
    parser.add_argument(
        "--serve",
        action="store_true",
        help="after the demo, keep the pipeline running with `triage serve`'s page until Ctrl-C",
    )
    parser.add_argument("--port", type=int, default=8080, help="the page's port (--serve)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s demo: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    started_broker = False
    connection = ConnectionSettings()
    if not connection.bootstrap_servers:
        running = kafka_local.status() is not None
        cluster = kafka_local.start()
        started_broker = not running
        connection = connection.model_copy(update={"bootstrap_servers": cluster.bootstrap})
    settings = CommonSettings(connection=connection, topic_prefix=f"demo-{int(time.time())}-")
    try:
        return run_demo(settings, args.port if args.serve else None)
    finally:
        if started_broker:
            log.info("stopping the local broker")
            kafka_local.stop()


def run_demo(settings: CommonSettings, serve_port: int | None = None) -> int:
    log.info(
        "broker %s, topics prefixed %r",
        settings.connection.bootstrap_servers,
        settings.topic_prefix,
    )
    models = Path(".triage/demo-models")
    manifests = train(read_dataset(DATA / "train.csv"), models)
    labels = [m.label for m in manifests]
    log.info("trained %d classifiers into %s", len(labels), models)
    ensure_topics(settings)
    up = subprocess.Popen(
        [sys.executable, "-m", "triage.cli", "up", "--models", str(models)],
        env=os.environ | connection_env(settings),
    )
    try:
        wait_for_classifiers(settings, set(labels), timeout_s=120)
        log.info("all %d classifiers announced on the registry", len(labels))
        stream = list(csv.DictReader((DATA / "stream.csv").open(encoding="utf-8")))
        records = [TextRecord(id=f"demo-{i:04d}", text=row["text"]) for i, row in enumerate(stream)]
        truth = {r.id: row["category"] for r, row in zip(records, stream, strict=True)}
        with Publisher(ProducerSettings(**dict(settings))) as publisher:
            publisher.publish(records)
        log.info("published %d messages; waiting for their results", len(records))
        results = collect(settings, set(truth), timeout_s=120)
        code = report(records, truth, results)
        if serve_port is not None:
            serve(settings, serve_port)
        else:
            print("to try messages in a browser on this pipeline: make serve")
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=30)
    return code


def serve(settings: CommonSettings, port: int) -> None:
    """`triage serve` beside the running demo pipeline, until Ctrl-C."""
    argv = [sys.executable, "-m", "triage.cli", "serve", "--port", str(port)]
    gateway = subprocess.Popen(argv, env=os.environ | connection_env(settings))
    print(f"\nopen http://127.0.0.1:{port}/ to try a message (Ctrl-C stops the demo)", flush=True)
    try:
        gateway.wait()
    except KeyboardInterrupt:
        pass
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=30)


def collect(settings: CommonSettings, ids: set[str], timeout_s: float) -> dict:
    results: dict = {}
    deadline = time.monotonic() + timeout_s
    while len(results) < len(ids) and time.monotonic() < deadline:
        results = {r.id: r for r in read_labels(settings) if r.id in ids}
        time.sleep(1)
    return results


def report(records: list[TextRecord], truth: dict[str, str], results: dict) -> int:
    print(f"\n{'text':60} {'true class':22} {'label':22} {'p':>5}")
    correct = 0
    for record in records:
        result = results.get(record.id)
        label = "(no result)" if result is None else (result.label or "(abstained)")
        p = f"{result.probability:.2f}" if result else ""
        mark = "" if label == truth[record.id] else "  ✗"
        correct += label == truth[record.id]
        print(f"{record.text[:58]:60} {truth[record.id]:22} {label:22} {p:>5}{mark}")
    print(
        f"\n{len(results)}/{len(records)} messages labelled; accuracy {correct / len(records):.1%}"
    )
    return 0 if len(results) == len(records) else 1


if __name__ == "__main__":
    sys.exit(main())
