"""`make demo`: a fresh machine to labelled results, on a real local Kafka broker.

Tells its story in five steps on stdout: starts the local broker (or uses
TRIAGE_BOOTSTRAP_SERVERS), trains the demo classifiers on `demo/data/train.csv`, runs the
pipeline with `triage up` (one process per classifier, the aggregator and the monitor) and waits
until every class votes, publishes `demo/data/stream.csv` with a progress bar while the results
come back, then prints each result beside the true class, the accuracy beside the same models'
offline, and what to try next. The services log to files under `.triage/demo-logs/` (the path
is printed); the console shows an ERROR or WARNING line only when something is wrong. With
`--serve` (`make serve`) it then keeps the pipeline running behind `triage serve` and prints the
page's address. Every run uses fresh topics, so reruns do not mix.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from triage.core.kafka.noise import quiet_harmless_noise
from triage.core.kafka.reader import TopicReader
from triage.core.kafka.topics import ensure_topics
from triage.core.model.artifacts import load_models
from triage.core.model.decision import decide
from triage.core.model.scoring import Scorer
from triage.core.registry.store import wait_for_classifiers
from triage.core.settings import CommonSettings, ConnectionSettings
from triage.local import cluster as kafka_local
from triage.producer.publisher import Publisher
from triage.producer.settings import ProducerSettings
from triage.schemas.codec import Rejected, decode_label
from triage.schemas.models import LabelRecord, TextRecord
from triage.tools.supervisor import connection_env
from triage.training.progress import ProgressBar
from triage.training.train import read_dataset, train

HERE = Path(__file__).parent
DATA = HERE / "data"
MODELS = Path(".triage/demo-models")
LOGS = Path(".triage/demo-logs")
STEPS = 5
INDENT = " " * 6  # under a step's text
TRY_NEXT = """
What to try next:
  make serve                   this pipeline behind `triage serve`: type a message in a browser
  .venv/bin/triage evaluate --models {models} --data demo/data/stream.csv
                               each classifier's precision and recall, offline
  .venv/bin/triage --help      every command: train your own classes, shadow, promote, monitor
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.run", description=__doc__)
    parser.add_argument(
        "--serve",
        action="store_true",
        help="after the demo, keep the pipeline running with `triage serve`'s page until Ctrl-C",
    )
    parser.add_argument("--port", type=int, default=8080, help="the page's port (--serve)")
    args = parser.parse_args(argv)
    # The story is printed; only what is wrong is logged here, and the services log to files.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_harmless_noise()
    LOGS.mkdir(parents=True, exist_ok=True)
    print("triage demo: support messages on Kafka, each scored by one independent binary")
    print("classifier a class (one consumer group each), joined into one label.\n", flush=True)
    connection = ConnectionSettings()
    started_broker = False
    if not connection.bootstrap_servers:
        step(1, "starting a local Kafka broker (Apache Kafka 4.3, KRaft, on loopback)")
        running = kafka_local.status() is not None
        started = time.monotonic()
        cluster = kafka_local.start()
        started_broker = not running
        log_file = shown(cluster.state_dir / "node-1" / "server.log")
        detail(f"{cluster.bootstrap}, ready in {time.monotonic() - started:.1f}s; log: {log_file}")
        connection = connection.model_copy(update={"bootstrap_servers": cluster.bootstrap})
    else:
        step(1, f"using the Kafka cluster at {connection.bootstrap_servers}")
    settings = CommonSettings(connection=connection, topic_prefix=f"demo-{int(time.time())}-")
    try:
        code = run_demo(settings, args.port if args.serve else None)
    finally:
        if started_broker:
            kafka_local.stop()
        print("stopped the pipeline" + (" and the broker" if started_broker else ""), flush=True)
    if not args.serve:
        print(TRY_NEXT.format(models=MODELS).rstrip(), flush=True)
    return code


def run_demo(settings: CommonSettings, serve_port: int | None = None) -> int:
    data = read_dataset(DATA / "train.csv")
    step(2, f"training one classifier a class on {shown(DATA)}/train.csv ({len(data.texts)} texts)")
    started = time.monotonic()
    labels = [m.label for m in train(data, MODELS, progress=False)]
    detail(f"{len(labels)} classes in {time.monotonic() - started:.1f}s, saved in {MODELS}")
    ensure_topics(settings)
    log_file = LOGS / "pipeline.log"
    step(3, f"starting the pipeline (`triage up`): {len(labels)} classifier processes, the")
    detail(f"aggregator that joins their votes, and the monitor; their logs: {log_file}")
    with pipeline(settings, len(labels) + 2, log_file):
        wait_until_every_class_votes(settings, labels)
        stream = list(csv.DictReader((DATA / "stream.csv").open(encoding="utf-8")))
        records = [TextRecord(id=f"demo-{i:04d}", text=row["text"]) for i, row in enumerate(stream)]
        truth = {r.id: row["category"] for r, row in zip(records, stream, strict=True)}
        step(4, f"publishing {len(records)} support messages ({shown(DATA)}/stream.csv)")
        with Publisher(ProducerSettings(**dict(settings))) as publisher:
            publisher.publish(records)
        results = collect(settings, set(truth), timeout_s=120)
        step(5, "the results, beside the true class (✗: wrong)")
        offline = offline_accuracy(records, truth)
        code = report(records, truth, results, offline)
        if serve_port is not None:
            serve(settings, serve_port)
        print("\nstopping the pipeline (each process ends its current batch)", flush=True)
    return code


def step(n: int, what: str) -> None:
    print(f"[{n}/{STEPS}] {what}", flush=True)


def detail(what: str) -> None:
    print(f"{INDENT}{what}", flush=True)


@contextmanager
def pipeline(settings: CommonSettings, processes: int, log_file: Path) -> Iterator[None]:
    """`triage up` on this demo's models and topics, its output to `log_file`; stopped on exit
    as Ctrl-C stops it (each process finishes its batch)."""
    argv = [sys.executable, "-m", "triage.cli", "up", "--models", str(MODELS)]
    argv += ["--metrics-base-port", str(free_ports(processes))]
    with log_file.open("w") as log:
        up = subprocess.Popen(
            argv, env=os.environ | connection_env(settings), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=60)


def free_ports(n: int, first: int = 9400) -> int:
    """The first of `n` consecutive free ports from `first` on: the pipeline's metrics ports,
    clear of another pipeline running on this machine."""
    base = first
    while not all(_free(port) for port in range(base, base + n)):
        base += n
    return base


def shown(path: Path) -> Path:
    """`path` from the current folder when it is below it: what a reader types."""
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_until_every_class_votes(settings: CommonSettings, labels: list[str]) -> None:
    bar = ProgressBar(len(labels), "classes vote", sys.stdout, width=20, indent=INDENT)

    def show(waiting: dict[str, str]) -> None:
        bar.update(len(labels) - len(waiting))

    wait_for_classifiers(settings, set(labels), timeout_s=180, voting=True, waiting_for=show)


def collect(settings: CommonSettings, ids: set[str], timeout_s: float) -> dict[str, LabelRecord]:
    """The results of `ids` as the aggregator commits them, a progress bar meanwhile."""
    bar = ProgressBar(len(ids), "labelled", sys.stdout, width=20, indent=INDENT)
    results: dict[str, LabelRecord] = {}
    deadline = time.monotonic() + timeout_s
    with TopicReader(settings, settings.topics.labels) as reader:
        while len(results) < len(ids) and time.monotonic() < deadline:
            for record in reader.poll(timeout_ms=200):
                label = decode_label(record.value)
                if not isinstance(label, Rejected) and label.id in ids:
                    results[label.id] = label
            bar.update(len(results))
    if len(results) < len(ids):
        print(f"{INDENT}{len(ids) - len(results)} results missing after {timeout_s:.0f}s")
    return results


def offline_accuracy(records: list[TextRecord], truth: dict[str, str]) -> float:
    """The same models deciding the same texts in this process, no Kafka: what the pipeline's
    accuracy should equal."""
    scores = Scorer(load_models(MODELS)).score([r.text for r in records])
    decided = [decide({k: float(v[i]) for k, v in scores.items()}) for i in range(len(records))]
    right = sum(d.label == truth[r.id] for d, r in zip(decided, records, strict=True))
    return right / len(records)


def report(
    records: list[TextRecord],
    truth: dict[str, str],
    results: dict[str, LabelRecord],
    offline: float,
    out: TextIO = sys.stdout,
) -> int:
    print(f"\n{'text':60} {'true class':22} {'label':22} {'p':>5}", file=out)
    correct = 0
    for record in records:
        result = results.get(record.id)
        label = "(no result)" if result is None else (result.label or "(abstained)")
        p = f"{result.probability:.2f}" if result else ""
        mark = "" if label == truth[record.id] else "  ✗"
        correct += label == truth[record.id]
        print(f"{record.text[:58]:60} {truth[record.id]:22} {label:22} {p:>5}{mark}", file=out)
    print(
        f"\n{len(results)}/{len(records)} messages labelled; accuracy {correct / len(records):.1%}"
        f" (the same models offline, without Kafka: {offline:.1%})",
        file=out,
        flush=True,
    )
    return 0 if len(results) == len(records) else 1


def serve(settings: CommonSettings, port: int) -> None:
    """`triage serve` beside the running demo pipeline, until Ctrl-C."""
    argv = [sys.executable, "-m", "triage.cli", "serve", "--port", str(port)]
    argv += ["--expected-models", str(MODELS)]  # ready once every class of the demo votes
    log_file = LOGS / "serve.log"
    with log_file.open("w") as log:
        gateway = subprocess.Popen(
            argv, env=os.environ | connection_env(settings), stdout=log, stderr=subprocess.STDOUT
        )
        print(
            f"\nopen http://127.0.0.1:{port}/ to try a message; the API's pages at /docs;"
            f" its log: {log_file}. Ctrl-C stops the demo.",
            flush=True,
        )
        try:
            gateway.wait()
        except KeyboardInterrupt:
            pass
        finally:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
