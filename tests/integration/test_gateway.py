"""`triage serve` on a real pipeline: two gateway instances, concurrent requests, retries,
refusals, tokens, body limits, and a cluster that stops and comes back."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from email.message import Message

import pytest
from conftest import DEMO_STREAM, Processes, free_port, wait_for_registry, wait_until

from triage.core.model.artifacts import available_labels, load_models
from triage.core.model.decision import decide
from triage.core.model.scoring import Scorer
from triage.core.settings import CommonSettings
from triage.local import cluster as kafka_local
from triage.tools.results import read_labels
from triage.training.train import read_dataset

pytestmark = pytest.mark.integration

TOKEN = "gateway-test-token"


def call(
    url: str, body: object | None = None, token: str | None = TOKEN, raw: bytes | None = None
) -> tuple[int, dict, Message]:
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as err:  # headers: looked up without regard to case
        return err.code, json.loads(err.read() or b"{}"), err.headers


def start_gateway(procs: Processes, name: str, token_file) -> str:
    port = free_port()
    procs.start(name, "serve", "--port", str(port), "--token-file", str(token_file))
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _ready(base), 60, f"{name} ready", interval=0.3)
    return base


def _ready(base: str) -> bool:
    try:
        return call(f"{base}/readyz", token=None)[0] == 200
    except OSError:
        return False


def start_pipeline(procs: Processes, models) -> list[str]:
    labels = available_labels(models)
    args = ["classifier", "--models", str(models)]
    for label in labels:
        args += ["--label", label]
    procs.start("classifiers", *args)
    procs.start("aggregator", "aggregate")
    wait_for_registry(set(labels), timeout_s=120)
    return labels


def offline_labels(models, texts: list[str]) -> list[str | None]:
    scores = Scorer(load_models(models)).score(texts)
    return [decide({k: float(v[i]) for k, v in scores.items()}).label for i in range(len(texts))]


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"{TOKEN}\n")
    return path


def test_two_gateways_answer_concurrent_requests_retries_and_refusals(
    procs, demo_models, token_file
):
    start_pipeline(procs, demo_models)
    bases = [start_gateway(procs, f"serve-{i}", token_file) for i in range(2)]
    texts = read_dataset(DEMO_STREAM).texts
    run = f"g{int(time.time() * 1000)}"
    requests = [(f"{run}-{i:03d}", texts[i % len(texts)]) for i in range(200)]

    def ask(i: int):
        message_id, text = requests[i]
        return call(f"{bases[i % 2]}/v1/classify?wait=20", {"id": message_id, "text": text})

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(ask, range(len(requests))))
    expected = offline_labels(demo_models, [t for _, t in requests])
    assert [status for status, _, _ in answers] == [200] * len(requests)
    assert [body["id"] for _, body, _ in answers] == [i for i, _ in requests]
    assert [body["label"] for _, body, _ in answers] == expected

    # A retry of the same id and text, on the other instance: the same result, nothing new.
    first_id, first_text = requests[0]
    status, again, _ = call(f"{bases[1]}/v1/classify", {"id": first_id, "text": first_text})
    assert status == 200 and again == answers[0][1]
    status, polled, _ = call(f"{bases[1]}/v1/results/{first_id}")
    assert status == 200 and polled == answers[0][1]

    # A text the pipeline refuses is answered with its dead-letter reason.
    status, refused, _ = call(f"{bases[0]}/v1/classify", {"id": f"{run}-empty", "text": " "})
    assert status == 422 and refused["reason"] == "empty_text" and refused["id"] == f"{run}-empty"

    batch = [{"id": f"{run}-b{i}", "text": texts[i]} for i in range(3)]
    status, body, _ = call(f"{bases[1]}/v1/classify/batch?wait=20", {"texts": batch})
    assert status == 200
    assert [r["result"]["label"] for r in body["results"]] == offline_labels(demo_models, texts[:3])

    time.sleep(2)  # a would-be duplicate has time to show up
    counts = Counter(r.id for r in read_labels(CommonSettings()) if r.id.startswith(run))
    assert len(counts) == len(requests) + 3 and set(counts.values()) == {1}

    status, listing, _ = call(f"{bases[0]}/v1/classifiers")
    assert status == 200
    assert {c["label"] for c in listing["classifiers"]} == set(available_labels(demo_models))


def test_tokens_and_body_limits_on_a_running_gateway(procs, demo_models, token_file):
    start_pipeline(procs, demo_models)
    base = start_gateway(procs, "serve", token_file)
    assert call(f"{base}/v1/classify", {"text": "hi"}, token=None)[0] == 401
    status, body, _ = call(f"{base}/v1/classify", {"text": "hi"}, token="wrong")
    assert status == 403 and body == {"error": "this bearer token is not accepted"}
    status, body, _ = call(f"{base}/v1/classify", raw=b'{"text": "' + b"x" * 70_000 + b'"}')
    assert status == 413 and "larger than 65536 bytes" in body["error"]
    status, body, _ = call(f"{base}/v1/classify", raw=b"{not json")
    assert status == 422 and set(body) == {"error"}


@pytest.mark.fault
def test_a_stopped_cluster_is_503_then_served_again_without_restart(
    tmp_path, monkeypatch, demo_models, token_file
):
    state = tmp_path / "kafka"
    cluster = kafka_local.start(state_dir=state)
    env = {"TRIAGE_BOOTSTRAP_SERVERS": cluster.bootstrap, "TRIAGE_TOPIC_PREFIX": "down-"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    procs = Processes(env, tmp_path)
    try:
        start_pipeline(procs, demo_models)
        base = start_gateway(procs, "serve", token_file)
        text = read_dataset(DEMO_STREAM).texts[0]
        assert call(f"{base}/v1/classify?wait=20", {"text": text})[0] == 200

        kafka_local.kill_node(state, 1, signal.SIGTERM)
        status, body, headers = call(f"{base}/v1/classify?wait=20", {"text": text})
        assert status == 503 and headers.get("Retry-After") == "5" and "Kafka" in body["error"]
        kafka_local.start_node(state, 1)

        def served():
            status, body, _ = call(f"{base}/v1/classify?wait=20", {"id": "after", "text": text})
            return status == 200 and body

        result = wait_until(served, 180, "the gateway serving again", interval=2)
        assert result["label"] == offline_labels(demo_models, [text])[0]
        assert procs.running["serve"].poll() is None  # the same process throughout
    finally:
        procs.stop_all()
        kafka_local.stop(state)
