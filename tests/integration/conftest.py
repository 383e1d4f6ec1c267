"""Integration fixtures: one real Kafka broker per test run, uuid-named topics per test.

The broker is started with the same code as `triage kafka start`. Pipeline processes are the
real `triage` commands, run as subprocesses with the test's environment.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from triage.core.kafka.topics import ensure_topics
from triage.core.registry.store import wait_for_classifiers
from triage.core.settings import CommonSettings
from triage.local import cluster as kafka_local
from triage.producer.publisher import Publisher
from triage.schemas.models import TextRecord
from triage.training.train import read_dataset, train

ROOT = Path(__file__).resolve().parents[2]
DEMO_TRAIN = ROOT / "demo" / "data" / "train.csv"
DEMO_STREAM = ROOT / "demo" / "data" / "stream.csv"


@pytest.fixture(scope="session")
def kafka_home(tmp_path_factory) -> Path:
    """The test run's broker's state dir (as TRIAGE_KAFKA_HOME, commands find its pids)."""
    return tmp_path_factory.mktemp("kafka")


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_home) -> Iterator[str]:
    cluster = kafka_local.start(state_dir=kafka_home, libs_dir=kafka_local.default_libs_dir())
    yield cluster.bootstrap
    kafka_local.stop(kafka_home)


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models")
    train(read_dataset(DEMO_TRAIN), out, n_jobs=1)
    return out


@pytest.fixture
def env(kafka_bootstrap, monkeypatch) -> dict[str, str]:
    """Environment of one test: the run's broker and topics no other test uses."""
    values = {
        "TRIAGE_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TRIAGE_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}-",
        "TRIAGE_TOPIC_PARTITIONS": "3",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    ensure_topics(CommonSettings())
    return values


class Processes:
    """Real `triage` subprocesses of one test, stopped (and checked) at its end."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = os.environ | env
        self.logs = logs
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str, extra_env: dict[str, str] | None = None):
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "triage.cli", *args],
            env=self.env | (extra_env or {}),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.running[name] = proc
        return proc

    def run(
        self, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        """One `triage` command to its end, with this test's environment; output captured."""
        return subprocess.run(
            [sys.executable, "-m", "triage.cli", *args],
            env=self.env | (extra_env or {}),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        proc = self.running.pop(name)
        proc.send_signal(sig)
        return proc.wait(timeout=timeout)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for name in list(self.running):
            try:
                self.stop(name)
            except subprocess.TimeoutExpired:
                self.running.get(name, None) and self.running[name].kill()


@pytest.fixture
def procs(env, tmp_path) -> Iterator[Processes]:
    processes = Processes(env, tmp_path)
    yield processes
    processes.stop_all()


def wait_for_registry(labels: set[str], timeout_s: float = 60) -> None:
    wait_for_classifiers(CommonSettings(), labels, timeout_s)


def stream(n: int) -> list[TextRecord]:
    texts = read_dataset(DEMO_STREAM).texts
    run = uuid.uuid4().hex[:6]
    return [TextRecord(id=f"{run}-{i:05d}", text=texts[i % len(texts)]) for i in range(n)]


class Streamer(threading.Thread):
    """Publishes records at a steady rate in the background, retrying through broker faults,
    until they are all published or `finish()` is called."""

    def __init__(self, records: list[TextRecord], rate: float) -> None:
        super().__init__(daemon=True)
        self.records, self.rate = records, rate
        self.published: list[TextRecord] = []
        self.error: BaseException | None = None
        self._finish = threading.Event()

    def run(self) -> None:
        try:
            with Publisher() as publisher:
                chunk = max(1, int(self.rate / 10))
                for i in range(0, len(self.records), chunk):
                    if self._finish.is_set():
                        return
                    publisher.publish(self.records[i : i + chunk])
                    self.published += self.records[i : i + chunk]
                    time.sleep(chunk / self.rate)
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def finish(self) -> list[TextRecord]:
        """Stop publishing; the records that were published."""
        self._finish.set()
        self.join()
        return self.published


def wait_until(condition, timeout_s: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout_s}s waiting for {what}"
        time.sleep(interval)


@pytest.fixture
def own_cluster(tmp_path, monkeypatch, request):
    """A cluster of this test alone (it will be broken): `request.param` is its node count,
    or (nodes, partitions per topic)."""
    nodes, partitions = getattr(request, "param", 1), None
    if isinstance(nodes, tuple):
        nodes, partitions = nodes
    state = tmp_path / "kafka"
    cluster = kafka_local.start(state_dir=state, nodes=nodes)
    monkeypatch.setenv("TRIAGE_BOOTSTRAP_SERVERS", cluster.bootstrap)
    monkeypatch.setenv("TRIAGE_TOPIC_PREFIX", f"f{uuid.uuid4().hex[:8]}-")
    if nodes > 1:
        monkeypatch.setenv("TRIAGE_TOPIC_REPLICATION_FACTOR", "3")
    if partitions:
        monkeypatch.setenv("TRIAGE_TOPIC_PARTITIONS", str(partitions))
    ensure_topics(CommonSettings())
    yield state
    kafka_local.stop(state)


@pytest.fixture
def own_procs(own_cluster, tmp_path):
    keys = (
        "TRIAGE_BOOTSTRAP_SERVERS",
        "TRIAGE_TOPIC_PREFIX",
        "TRIAGE_TOPIC_REPLICATION_FACTOR",
        "TRIAGE_TOPIC_PARTITIONS",
    )
    processes = Processes({k: os.environ[k] for k in keys if k in os.environ}, tmp_path)
    yield processes
    processes.stop_all()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
