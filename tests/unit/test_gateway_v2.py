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

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as tritonclient
from fastapi.testclient import TestClient

from triage.core.settings import ConnectionSettings
from triage.gateway.app import create_app
from triage.gateway.results import TextOutcome
from triage.gateway.service import Gateway
from triage.gateway.settings import GatewaySettings
from triage.schemas.codec import encode, fingerprint
from triage.schemas.models import DeadLetter, LabelRecord, TextRecord

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


def refusal(message_id: str, text: str) -> DeadLetter:
    # Only what the gateway reads of a dead letter: its id, reason, detail and original bytes.
    value = encode(TextRecord(id=message_id, text=text))
    return DeadLetter.model_construct(
        id=message_id,
        reason="empty_text",
        detail="it is empty",
        original_value_b64=base64.b64encode(value).decode(),
    )


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
    gateway.index.add(TextOutcome(refused=refusal("bad-0", " ")))
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
    # The id again with another text: not that text's refusal, a conflict
    other = client(gateway).post("/v2/models/triage/infer", json=infer_request(["hi"], "bad"))
    assert other.status_code == 409 and "already has a result for another text" in other.text


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
        ({"datatype": "FP32"}, "inputs.0.datatype: Input should be 'BYTES'"),
        ({"shape": [2]}, "input 'text': shape [2] but 3 items"),
        ({"data": [1, 2, 3]}, "inputs.0.data.0.str: Input should be a valid string"),
        ({"data": [["a"], [1], ["c"]]}, "input 'text' must hold strings"),
        (
            {"data": ["a", "\udaf8", "c"]},
            "input 'text': text 1: holds '\\udaf8' at 0, a lone "
            "UTF-16 surrogate that UTF-8 cannot carry",
        ),
        (
            {"shape": [0], "data": []},
            "inputs.0.data: List should have at least 1 item after validation, not 0",
        ),
    ],
)
def test_inputs_that_are_not_a_batch_of_texts_are_400(gateway, change, error):
    body = infer_request(TEXTS)
    body["inputs"][0] |= change
    # json.dumps escapes a lone surrogate as JSON does ("\udaf8"); no Content-Type, as Triton's
    response = client(gateway).post("/v2/models/triage/infer", content=json.dumps(body))
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
    assert server["name"] == "triage" and server["version"]
    assert server["extensions"] == ["binary_tensor_data"]
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


def triton_request(texts: list[str], binary: bool, **options) -> tuple[bytes, dict[str, str]]:
    """The body and headers Triton's own client (`tritonclient.http`) sends for `texts`."""
    text = tritonclient.InferInput("text", [len(texts)], "BYTES")
    text.set_data_from_numpy(np.array(texts, dtype=object), binary_data=binary)
    body, header_length = tritonclient.InferenceServerClient.generate_request_body(
        [text], request_id="42", **options
    )
    headers = (
        {} if header_length is None else {"Inference-Header-Content-Length": str(header_length)}
    )
    return body, headers


@pytest.mark.parametrize("binary", [True, False])
def test_tritons_client_defaults_binary_tensors_no_content_type(gateway, binary):
    body, headers = triton_request(TEXTS, binary)
    response = client(gateway).post("/v2/models/triage/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    header = response.headers["inference-header-content-length"]
    result = tritonclient.InferResult.from_response_body(
        response.content, header_length=int(header)
    )
    assert result.as_numpy("label").tolist() == [b"card_arrival", b"", b"close_account"]
    assert result.as_numpy("id").tolist() == [b"42-0", b"42-1", b"42-2"]
    assert result.as_numpy("probability").dtype == np.float32
    assert result.as_numpy("scores").reshape(3, 2)[2].tolist() == [-1.0, pytest.approx(0.8)]
    assert [o["parameters"]["binary_data_size"] > 0 for o in result.get_response()["outputs"]]


def test_binary_per_output_and_the_versioned_paths(gateway):
    outputs = [tritonclient.InferRequestedOutput("label", binary_data=False),
               tritonclient.InferRequestedOutput("probability", binary_data=True)]  # fmt: skip
    body, headers = triton_request(TEXTS, True, outputs=outputs)
    c = client(gateway)
    response = c.post("/v2/models/triage/versions/1/infer", content=body, headers=headers)
    header = int(response.headers["inference-header-content-length"])
    result = tritonclient.InferResult.from_response_body(response.content, header_length=header)
    label, probability = result.get_response()["outputs"]
    assert label["data"] == ["card_arrival", "", "close_account"] and "parameters" not in label
    assert result.as_numpy("probability").tolist() == pytest.approx([0.9, 0.3, 0.8])
    assert c.get("/v2/models/triage/versions/1").json()["versions"] == ["1"]
    ready = c.get("/v2/models/triage/versions/1/ready")  # 503: no classifier votes here
    assert ready.status_code == 503 and ready.json()["name"] == "triage"
    other = c.post("/v2/models/triage/versions/2/infer", content=body, headers=headers)
    assert other.status_code == 404
    assert other.json() == {"error": "no version '2' of 'triage': its one version is '1'"}


BINARY_INPUT = (
    b'{"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES",'
    b' "parameters": {"binary_data_size": 6}}]}'
)
BINARY_HEADER = {"Inference-Header-Content-Length": str(len(BINARY_INPUT))}


@pytest.mark.parametrize(
    ("body", "headers", "error"),
    [
        (b'{"inputs": []}', {"Inference-Header-Content-Length": "99"},
         "Inference-Header-Content-Length '99' is not a length in the body"),
        (BINARY_INPUT, BINARY_HEADER,
         "input 't': 6 binary bytes, 0 sent"),
        (BINARY_INPUT + b"\x09\x00\x00\x00hi",
         BINARY_HEADER, "input 't': binary element 0 is cut short"),
        (BINARY_INPUT + b"\x02\x00\x00\x00\xff\xfe",
         BINARY_HEADER, "input 't': element 0 is not UTF-8"),
        (b'{"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES"}]}', {},
         "input 't' has no data"),
        (b'{"parameters": {"wait": NaN}, "inputs": []}', {},
         "the body is not JSON this server reads: NaN is not a JSON number"),
        (b'{"parameters": {"wait": 1e999}, "inputs": []}', {},
         "parameters.wait: Input should be a finite number"),
        (b'{"parameters": {"wait": 1' + b"0" * 5000 + b'}}', {},
         "the body is not JSON this server reads: a number too long to read"),
        (b'{"inputs": ' + b"[" * 20000 + b"]" * 20000 + b"}", {},
         "the body is not JSON this server reads: nested too deeply"),
        (b"\xff{}", {}, "the body is not JSON: it is not UTF-8"),
        (b"[]", {}, "the body is not a JSON object"),
        (b'{"parameters": {"wait": true}, "inputs": []}', {},
         "parameters.wait: Input should be a valid number"),
    ],
)  # fmt: skip
def test_bodies_that_are_not_a_request_are_400_with_one_line(gateway, body, headers, error):
    response = client(gateway).post("/v2/models/triage/infer", content=body, headers=headers)
    assert response.status_code == 400 and response.json() == {"error": error}


def test_openapi_documents_every_answer_of_every_route(gateway):
    """Each route's statuses, as its code can answer them, each with a body's schema."""
    spec = client(gateway).get("/openapi.json").json()
    statuses = {
        (path, method): sorted(int(s) for s in op["responses"])
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    }
    infer = [200, 400, 401, 403, 404, 409, 413, 503, 504]
    assert statuses[("/v2/models/{model}/infer", "post")] == infer
    assert statuses[("/v2/models/{model}/versions/{version}/infer", "post")] == infer
    assert statuses[("/v1/classify", "post")] == [200, 202, 400, 401, 403, 409, 413, 422, 503]
    assert statuses[("/v1/results/{message_id}", "get")] == [200, 202, 401, 403, 404, 409, 422]
    assert statuses[("/readyz", "get")] == [200, 503]
    for (path, method), codes in statuses.items():
        for code in codes:
            content = spec["paths"][path][method]["responses"][str(code)].get("content", {})
            assert any("schema" in c and c["schema"] for c in content.values()), (path, code)
    text = spec["components"]["schemas"]["TextIn"]["properties"]["text"]
    assert (text["minLength"], text["maxLength"], text["pattern"]) == (1, 10_000, r"\S")
    assert spec["components"]["schemas"]["BatchIn"]["properties"]["texts"]["maxItems"] == 100
    model = spec["paths"]["/v2/models/{model}/infer"]["post"]["parameters"][0]
    assert model["schema"]["enum"] == ["triage"]
    request = spec["components"]["schemas"]["InferRequest"]
    assert request["properties"]["id"]["anyOf"][0]["maxLength"] == 240
