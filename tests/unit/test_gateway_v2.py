"""`/v2`, the Open Inference Protocol, without a broker: shapes, ids and every error shape.

The requests are written as the protocol's published examples write them
(kserve/open-inference-protocol, `specification/protocol/inference_rest.md`): "Inference
Request Examples" (`{"id": "42", "inputs": [{"name", "shape", "datatype", "data"}],
"outputs": [{"name"}]}` posted to `/v2/models/<name>/infer`), "Tensor Data" (data nested in
its natural shape or flattened, row-major) and the error objects (`{"error": <string>}` with an
HTTP error status). Outcomes are put in the gateway's index as if its follower had read them,
so the gateway answers without publishing (a retry of known ids, as on a live gateway).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from triage.core.settings import ConnectionSettings
from triage.gateway.app import create_app
from triage.gateway.results import TextOutcome
from triage.gateway.service import Gateway
from triage.gateway.settings import GatewaySettings
from triage.schemas.codec import fingerprint
from triage.schemas.models import DeadLetter, LabelRecord

TEXTS = ["my card has not arrived", "hello there", "close my account"]


def result(message_id: str, text: str, label: str | None, scores: dict[str, float]) -> LabelRecord:
    return LabelRecord(
        id=message_id,
        label=label,
        probability=max(scores.values()),
        scores=scores,
        complete=True,
        missing=[],
        versions={c: "1" for c in scores},
        text_timestamp_ms=1,
        decided_at_ms=2,
        fingerprint=fingerprint(text.encode()),
    )


def refusal(message_id: str) -> DeadLetter:
    # Only what the gateway reads of a dead letter: its id, reason and detail.
    return DeadLetter.model_construct(id=message_id, reason="empty_text", detail="it is empty")


def ready_gateway() -> Gateway:
    settings = GatewaySettings(connection=ConnectionSettings(bootstrap_servers="127.0.0.1:1"))
    gateway = Gateway(settings)
    gateway.follower.ready.set()  # as if it had read the results it is given
    return gateway


@pytest.fixture
def gateway() -> Gateway:
    gateway = ready_gateway()
    outcomes = [
        result("42-0", TEXTS[0], "card_arrival", {"card_arrival": 0.9, "close_account": 0.1}),
        result("42-1", TEXTS[1], None, {"card_arrival": 0.2, "close_account": 0.3}),
        result("42-2", TEXTS[2], "close_account", {"close_account": 0.8}),  # one missing
    ]
    for outcome in outcomes:
        gateway.index.add(TextOutcome(result=outcome))
    gateway.index.add(TextOutcome(refused=refusal("bad-0")))
    return gateway


def client(gateway: Gateway, **fields) -> TestClient:
    settings = gateway.settings.model_copy(update=fields)
    return TestClient(create_app(settings, gateway), raise_server_exceptions=False)


def infer_request(texts: list[str], request_id: str | None = "42", **extra) -> dict:
    body = {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
    return ({"id": request_id} if request_id else {}) | body | extra


def test_infer_answers_every_output_in_the_request_order(gateway):
    response = client(gateway).post("/v2/models/triage/infer", json=infer_request(TEXTS))
    assert response.status_code == 200
    assert response.json() == {
        "model_name": "triage",
        "id": "42",
        "outputs": [
            {"name": "label", "shape": [3], "datatype": "BYTES",
             "data": ["card_arrival", "", "close_account"]},
            {"name": "probability", "shape": [3], "datatype": "FP32", "data": [0.9, 0.3, 0.8]},
            {"name": "scores", "shape": [3, 2], "datatype": "FP32",
             "data": [0.9, 0.1, 0.2, 0.3, -1.0, 0.8]},
            {"name": "classes", "shape": [2], "datatype": "BYTES",
             "data": ["card_arrival", "close_account"]},
            {"name": "id", "shape": [3], "datatype": "BYTES", "data": ["42-0", "42-1", "42-2"]},
        ],
    }  # fmt: skip


def test_nested_data_and_requested_outputs_as_the_spec_allows(gateway):
    nested = infer_request(TEXTS, outputs=[{"name": "label"}])
    nested["inputs"][0] |= {"shape": [3, 1], "data": [[t] for t in TEXTS]}
    response = client(gateway).post("/v2/models/triage/infer", json=nested)
    assert response.status_code == 200
    assert response.json()["outputs"] == [
        {"name": "label", "shape": [3], "datatype": "BYTES",
         "data": ["card_arrival", "", "close_account"]}
    ]  # fmt: skip


def test_a_refused_text_fails_the_request_with_400_and_its_reason(gateway):
    response = client(gateway).post("/v2/models/triage/infer", json=infer_request([" "], "bad"))
    assert response.status_code == 400
    assert response.json() == {"error": "text 0 (id bad-0) refused: empty_text: it is empty"}


def test_a_reused_id_with_other_texts_is_409_and_an_undecided_one_504(gateway):
    c = client(gateway)
    other = c.post("/v2/models/triage/infer", json=infer_request(["another text"]))
    assert other.status_code == 409 and "another text" in other.json()["error"]
    gateway.pending["late-0"] = None  # published before: not published again
    late = infer_request(["x"], "late", parameters={"wait": 0})
    response = c.post("/v2/models/triage/infer", json=late)
    assert response.status_code == 504
    assert response.json() == {
        "error": "text 0 (id late-0) not decided within 0 s: "
        "send the request again with id 'late' for its results"
    }


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"datatype": "FP32"}, "input 'text' must be BYTES, not FP32"),
        ({"shape": [2]}, "input 'text': shape [2] but 3 items"),
        ({"data": [1, 2, 3]}, "input 'text' must hold strings"),
        ({"shape": [0], "data": []}, "input 'text' holds no text"),
    ],
)
def test_inputs_that_are_not_a_batch_of_texts_are_400(gateway, change, error):
    body = infer_request(TEXTS)
    body["inputs"][0] |= change
    response = client(gateway).post("/v2/models/triage/infer", json=body)
    assert response.status_code == 400 and response.json() == {"error": error}


def test_requests_the_gateway_refuses_all_answer_the_v2_error_shape(gateway, tmp_path):
    c = client(gateway, max_batch_texts=2)
    assert c.post("/v2/models/triage/infer", json=infer_request(TEXTS)).json() == {
        "error": "at most 2 texts a request"
    }
    infer = "/v2/models/triage/infer"
    json_body = {"Content-Type": "application/json"}
    cases = [
        (c.post("/v2/models/other/infer", json=infer_request(TEXTS[:1])), 404),
        (c.post(infer, json={"inputs": "no"}), 400),
        (c.post(infer, json=infer_request(TEXTS[:1], outputs=[{"name": "x"}])), 400),
        (c.post(infer, json=infer_request(TEXTS[:1], parameters={"wait": "soon"})), 400),
        (c.post(infer, content=b"{", headers=json_body), 400),
    ]
    for response, status in cases:
        assert response.status_code == status and set(response.json()) == {"error"}

    tokens = tmp_path / "tokens"
    tokens.write_text("t0ken\n")
    guarded = client(gateway, token_file=tokens, max_body_bytes=200)
    assert guarded.post("/v2/models/triage/infer", json=infer_request(TEXTS)).status_code == 401
    assert guarded.get("/v2/models/triage").status_code == 401
    assert guarded.get("/v2/health/live").status_code == 200  # probes carry no token
    bearer = {"Authorization": "Bearer t0ken"}
    big = guarded.post("/v2/models/triage/infer", json=infer_request(["x" * 300]), headers=bearer)
    assert big.status_code == 413 and set(big.json()) == {"error"}
    ok = guarded.post("/v2/models/triage/infer", json=infer_request(TEXTS), headers=bearer)
    assert ok.status_code == 200


def test_health_and_metadata_without_kafka(gateway):
    gateway.follower.ready.clear()
    gateway.follower.error = "cannot reach Kafka"
    c = client(gateway)
    assert c.get("/v2/health/live").json() == {"live": True}
    ready = c.get("/v2/health/ready")
    assert ready.status_code == 503 and ready.headers["retry-after"] == "5"
    assert ready.json() == {"ready": False, "error": "cannot reach Kafka"}
    model_ready = c.get("/v2/models/triage/ready")
    assert model_ready.status_code == 503 and model_ready.json()["name"] == "triage"
    server = c.get("/v2").json()
    assert server["name"] == "triage" and server["extensions"] == [] and server["version"]
    metadata = c.get("/v2/models/triage").json()
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert [o["name"] for o in metadata["outputs"]] == [
        "label", "probability", "scores", "classes", "id"
    ]  # fmt: skip
    infer = c.post("/v2/models/triage/infer", json=infer_request(["new text"], "n"))
    assert infer.status_code == 503 and set(infer.json()) == {"error"}


HTTP_API = Path(__file__).resolve().parents[2] / "docs" / "http-api.md"


def test_the_docs_example_is_what_the_gateway_answers():
    """The curl request of docs/http-api.md, sent as written, answered with the response shown
    there when the pipeline's results are the ones the page shows."""
    section = HTTP_API.read_text(encoding="utf-8").split("## The Open Inference Protocol")[1]
    request = json.loads(re.search(r"-d '(\{.*?\})'", section, re.S).group(1))
    shown = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))
    out = {o["name"]: o["data"] for o in shown["outputs"]}
    classes, gateway = out["classes"], ready_gateway()
    for i, text in enumerate(request["inputs"][0]["data"]):
        row = out["scores"][i * len(classes) : (i + 1) * len(classes)]
        scores = dict(zip(classes, row, strict=True))
        label = out["label"][i] or None
        gateway.index.add(TextOutcome(result=result(out["id"][i], text, label, scores)))
    response = client(gateway).post("/v2/models/triage/infer", json=request)
    assert response.status_code == 200 and response.json() == shown
