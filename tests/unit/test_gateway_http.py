"""`triage serve`'s HTTP rules that need no broker: tokens, body limits, validation, and a
gateway that cannot reach Kafka answering 503 with `Retry-After` (its follower never started)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from fastapi.testclient import TestClient

from triage.core.errors import ConfigError
from triage.core.settings import ConnectionSettings
from triage.gateway.app import create_app
from triage.gateway.results import TextOutcome
from triage.gateway.service import Gateway
from triage.gateway.settings import GatewaySettings
from triage.schemas.codec import fingerprint
from triage.schemas.models import LabelRecord


def client(tmp_path, **fields) -> TestClient:
    settings = GatewaySettings(
        connection=ConnectionSettings(bootstrap_servers="127.0.0.1:1"), **fields
    )
    return TestClient(create_app(settings, Gateway(settings)), raise_server_exceptions=False)


@pytest.fixture
def tokens(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("first-token\n\n  second-token  \n")
    return path


def test_no_token_is_401_and_a_wrong_one_403_each_one_line(tmp_path, tokens):
    c = client(tmp_path, token_file=tokens)
    missing = c.post("/v1/classify", json={"text": "hi"})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json() == {"error": "a bearer token is required"}
    wrong = c.post("/v1/classify", json={"text": "hi"}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and set(wrong.json()) == {"error"}
    ok = c.post(
        "/v1/classify", json={"text": "hi"}, headers={"Authorization": "Bearer second-token"}
    )
    assert ok.status_code == 503  # past the token check; Kafka is what is missing here
    assert c.get("/healthz").status_code == 200  # probes need no token


def test_a_gateway_without_kafka_answers_503_with_retry_after(tmp_path):
    c = client(tmp_path)
    for response in (c.post("/v1/classify", json={"text": "hi"}), c.get("/readyz")):
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert "Kafka" in response.json()["error"]


def test_oversize_bodies_get_413_before_anything_else(tmp_path):
    c = client(tmp_path, max_body_bytes=100)
    big = c.post("/v1/classify", json={"text": "x" * 200})
    assert big.status_code == 413
    assert big.json() == {"error": "the request body is larger than 100 bytes"}

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"text": "'
        yield b"y" * 200
        yield b'"}'

    streamed = c.post(
        "/v1/classify", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413


def test_invalid_requests_get_422_with_one_line(tmp_path):
    c = client(tmp_path, max_batch_texts=2)
    missing = c.post("/v1/classify", json={"id": "a"})
    assert missing.status_code == 422 and missing.json() == {"error": "body.text: Field required"}
    not_json = c.post("/v1/classify", content=b"{", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 422 and set(not_json.json()) == {"error"}
    many = c.post("/v1/classify/batch", json={"texts": [{"text": "a"}] * 3})
    assert many.status_code == 422 and many.json() == {"error": "at most 2 texts a batch"}
    assert c.get("/v1/results/nope").status_code == 404


def test_the_page_the_api_description_and_metrics_are_served(tmp_path):
    c = client(tmp_path)
    page = c.get("/")
    assert page.status_code == 200 and "<title>triage</title>" in page.text
    assert c.get("/static/app.js").status_code == 200
    paths = c.get("/openapi.json").json()["paths"]
    assert {"/v1/classify", "/v1/classify/batch", "/v1/results/{message_id}"} <= set(paths)
    assert "triage_gateway_requests_total" in c.get("/metrics").text


def test_a_token_file_without_tokens_is_an_operator_error(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="holds no token"):
        client(tmp_path, token_file=empty)


def test_an_id_whose_result_is_for_another_text_is_409(tmp_path):
    settings = GatewaySettings(connection=ConnectionSettings(bootstrap_servers="127.0.0.1:1"))
    gateway = Gateway(settings)
    gateway.follower.ready.set()  # as if it had read the results: this one is known
    result = _label("x", fingerprint(b"my card has not arrived"))
    gateway.index.add(TextOutcome(result=result))
    c = TestClient(create_app(settings, gateway), raise_server_exceptions=False)
    same = c.post("/v1/classify", json={"id": "x", "text": "my card has not arrived"})
    assert same.status_code == 200 and same.json()["label"] == "a"  # a retry: its result
    other = c.post("/v1/classify", json={"id": "x", "text": "how do I close my account"})
    assert other.status_code == 409 and "another text" in other.json()["error"]
    batch = c.post("/v1/classify/batch", json={"texts": [{"id": "x", "text": "other"}]})
    assert batch.json()["results"][0]["status"] == "conflict"


def test_outcomes_from_the_follower_thread_answer_waiters_in_the_event_loop(tmp_path):
    settings = GatewaySettings(connection=ConnectionSettings(bootstrap_servers="127.0.0.1:1"))
    gateway = Gateway(settings)
    done = _label("x")

    async def wait_for_x() -> TextOutcome:
        gateway._loop = asyncio.get_running_loop()
        waiter = gateway._loop.create_future()
        assert gateway.index.wait("x", waiter) is None
        # as the follower does: from its own thread, one call for a poll's outcomes
        threading.Thread(target=gateway._deliver, args=([TextOutcome(result=done)],)).start()
        return await asyncio.wait_for(waiter, 5)

    assert asyncio.run(wait_for_x()).result == done
    assert gateway.lookup("x").result == done and not gateway.index.waiting("x")


def _label(message_id: str, text_fingerprint: str | None = None) -> LabelRecord:
    return LabelRecord(
        id=message_id,
        label="a",
        probability=0.9,
        scores={"a": 0.9},
        complete=True,
        missing=[],
        versions={"a": "1"},
        text_timestamp_ms=1,
        decided_at_ms=2,
        fingerprint=text_fingerprint,
    )
