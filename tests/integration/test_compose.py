"""docker-compose.yml really up under podman: images built here, 200 texts in, 200 results out.

Builds the images (deploy/images/build.sh: no container registry), runs the compose file with
Debian's docker-compose against a `podman system service` socket of the test's own, publishes
200 demo texts from the host to the broker's published port and reads the results back (`triage
publish`, `triage results`: the commands docs/deploying.md shows), checks every result equals
the offline decision of the models baked into the image (copied out of it), then that Prometheus
reports every triage target up. The stack always goes down, volumes too. Skips only when podman
or docker-compose is absent (scripts/install-system-deps.sh installs both).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DEMO_STREAM, DEMO_TRAIN, ROOT, free_port, wait_until

from triage.core.model.artifacts import available_labels, load_models
from triage.core.model.decision import decide
from triage.core.model.scoring import Scorer
from triage.core.registry.store import wait_for_classifiers
from triage.core.settings import CommonSettings
from triage.schemas.models import TextRecord
from triage.training.train import read_dataset

pytestmark = [
    pytest.mark.compose,
    pytest.mark.timeout(1500),
    pytest.mark.skipif(
        not (shutil.which("podman") and shutil.which("docker-compose")),
        reason="podman or docker-compose is absent: scripts/install-system-deps.sh installs them",
    ),
]

TEXTS = 200


def run(*cmd: str, env: dict[str, str] | None = None, timeout: float = 1200) -> str:
    done = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{' '.join(cmd)}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def images() -> None:
    """The images, built (or found cached) as `make images` builds them."""
    env = os.environ | {"TRIAGE_PYTHON": sys.executable}  # resolves the broker's jars
    run("bash", "deploy/images/build.sh", env=env, timeout=1800)


@pytest.fixture
def podman_socket(tmp_path) -> Iterator[str]:
    """docker-compose's Docker API, served by podman on a socket of this test's own."""
    sock = tmp_path / "podman.sock"
    service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"])
    try:
        wait_until(sock.exists, 30, "podman's API socket")
        yield f"unix://{sock}"
    finally:
        service.terminate()
        service.wait(timeout=30)


@pytest.fixture
def stack(images, podman_socket) -> Iterator[dict[str, int]]:
    ports = {
        "TRIAGE_COMPOSE_KAFKA_PORT": free_port(),
        "TRIAGE_COMPOSE_GATEWAY_PORT": free_port(),
        "TRIAGE_COMPOSE_PROMETHEUS_PORT": free_port(),
    }
    env = os.environ | {k: str(v) for k, v in ports.items()} | {"DOCKER_HOST": podman_socket}
    compose = ["docker-compose", "-p", f"triage-test-{uuid.uuid4().hex[:8]}"]
    try:
        run(*compose, "up", "-d", env=env, timeout=600)
        yield ports
    finally:
        logs = subprocess.run(
            [*compose, "logs", "--no-color", "--tail=30"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        print(logs.stdout[-20000:])
        run(*compose, "down", "--volumes", "--timeout", "20", env=env, timeout=300)


def image_models(tmp_path: Path) -> Path:
    """The /models the triage image was built with, copied out to compute the offline labels."""
    container = run("podman", "create", "localhost/triage:0.1.0").strip()
    try:
        run("podman", "cp", f"{container}:/models", str(tmp_path))
    finally:
        run("podman", "rm", container)
    return tmp_path / "models"


def targets(port: int) -> list[dict]:
    with urllib.request.urlopen(f"http://localhost:{port}/api/v1/targets", timeout=5) as r:
        return json.load(r)["data"]["activeTargets"]


def demo_records() -> list[TextRecord]:
    """200 texts: the demo stream's 150, then the first of the training set's."""
    texts = read_dataset(DEMO_STREAM).texts + read_dataset(DEMO_TRAIN).texts
    return [TextRecord(id=f"c{i:03d}", text=t) for i, t in enumerate(texts[:TEXTS])]


def triage_cli(*args: str) -> str:
    return run(sys.executable, "-m", "triage.cli", *args, timeout=120)


def results(bootstrap: str) -> dict[str, dict] | None:
    """`triage results --json` (docs/deploying.md shows it): every committed result so far."""
    lines = triage_cli("results", "--json", "--bootstrap-servers", bootstrap).splitlines()
    found = [json.loads(line) for line in lines if line.strip()]
    assert len({r["id"] for r in found}) == len(found), "a text got two results"
    return {r["id"]: r for r in found} if len(found) >= TEXTS else None


def test_compose_stack_labels_200_texts_as_offline_and_prometheus_scrapes_every_service(
    stack, tmp_path
):
    bootstrap = f"localhost:{stack['TRIAGE_COMPOSE_KAFKA_PORT']}"
    models = image_models(tmp_path)
    labels = available_labels(models)
    wait_for_classifiers(CommonSettings(bootstrap_servers=bootstrap), set(labels), 180)
    records = demo_records()
    assert len(records) == TEXTS
    texts = tmp_path / "texts.csv"
    with texts.open("w", newline="") as f:
        csv.writer(f).writerows([("id", "text"), *((r.id, r.text) for r in records)])
    ids = triage_cli("publish", "--bootstrap-servers", bootstrap, str(texts)).split()
    assert ids == [r.id for r in records]

    by_id = wait_until(lambda: results(bootstrap), 180, f"{TEXTS} results", interval=3)
    assert set(by_id) == set(ids)
    offline = Scorer(load_models(models)).score([r.text for r in records])
    for i, record in enumerate(records):
        expected = decide({label: float(offline[label][i]) for label in labels})
        assert by_id[record.id]["label"] == expected.label, record.id
        assert by_id[record.id]["probability"] == pytest.approx(expected.probability, abs=1e-12)

    def every_target_up() -> list[dict] | None:
        found = targets(stack["TRIAGE_COMPOSE_PROMETHEUS_PORT"])
        return found if found and all(t["health"] == "up" for t in found) else None

    up = wait_until(every_target_up, 60, "every Prometheus target up", interval=2)
    jobs = {t["labels"]["job"] for t in up}
    assert jobs == {
        "triage-aggregator",
        "triage-classifier",
        "triage-monitor",
        "triage-gateway",
        "triage-lag-exporter",
    }
    assert sum(t["labels"]["job"] == "triage-classifier" for t in up) == len(labels)
