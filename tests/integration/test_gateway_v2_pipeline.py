"""`/v2` (the Open Inference Protocol) on a real pipeline: a v2 client's batch of texts is
answered with the labels the pipeline committed to `labels`, equal to the offline decision.

The client is written to the protocol's published examples (kserve/open-inference-protocol,
`specification/protocol/inference_rest.md`: "Inference Request Examples" for the request and
its `Content-Type: application/json` POST to `/v2/models/<name>/infer`, "Inference Response
JSON Object" and "Response Output" for what is read back, "Inference Response JSON Error
Object" for a failure), with the BYTES input a text model takes: `{"name", "shape": [N],
"datatype": "BYTES", "data": [N strings]}`.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from conftest import DEMO_STREAM
from test_gateway import call, offline_labels, start_gateway, start_pipeline

from triage.core.settings import CommonSettings
from triage.tools.results import read_labels
from triage.training.train import read_dataset

pytestmark = pytest.mark.integration

TOKEN = "gateway-test-token"


def infer_body(request_id: str, texts: list[str]) -> dict:
    return {
        "id": request_id,
        "inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}],
        "outputs": [{"name": "label"}, {"name": "probability"}, {"name": "scores"},
                    {"name": "classes"}, {"name": "id"}],
    }  # fmt: skip


def tensors(response: dict) -> dict[str, dict]:
    return {output["name"]: output for output in response["outputs"]}


def test_a_v2_infer_request_gets_the_committed_labels(procs, demo_models, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN}\n")
    labels = start_pipeline(procs, demo_models)
    base = start_gateway(procs, "serve", tokens)
    assert call(f"{base}/v2/health/ready", token=None)[:2] == (200, {"ready": True})
    assert call(f"{base}/v2/models/triage/ready", token=None)[0] == 200
    status, metadata, _ = call(f"{base}/v2/models/triage")
    assert status == 200 and sorted(metadata["parameters"]) == sorted(labels)
    assert {"name": "scores", "datatype": "FP32", "shape": [-1, len(labels)]} in (
        metadata["outputs"]
    )

    texts = read_dataset(DEMO_STREAM).texts[:8]
    run = f"v2-{int(time.time() * 1000)}"
    status, body, _ = call(f"{base}/v2/models/triage/infer", infer_body(run, texts))
    assert status == 200, body
    assert body["model_name"] == "triage" and body["id"] == run
    out = tensors(body)
    ids = [f"{run}-{i}" for i in range(len(texts))]
    assert out["id"]["data"] == ids
    assert out["label"] == {
        "name": "label",
        "shape": [len(texts)],
        "datatype": "BYTES",
        "data": [label or "" for label in offline_labels(demo_models, texts)],
    }
    time.sleep(2)  # a would-be duplicate has time to show up
    committed = [r for r in read_labels(CommonSettings()) if r.id.startswith(run)]
    assert Counter(r.id for r in committed) == dict.fromkeys(ids, 1)
    by_id = {r.id: r for r in committed}
    classes = out["classes"]["data"]
    assert out["scores"]["shape"] == [len(texts), len(classes)] and sorted(labels) == classes
    for i, message_id in enumerate(ids):
        record = by_id[message_id]
        assert out["label"]["data"][i] == (record.label or "")
        assert out["probability"]["data"][i] == record.probability
        row = out["scores"]["data"][i * len(classes) : (i + 1) * len(classes)]
        assert row == [record.scores[c] for c in classes]

    # A retry of the same request: the same answer, and no second result on `labels`.
    assert call(f"{base}/v2/models/triage/infer", infer_body(run, texts))[:2] == (200, body)
    # A text the pipeline refuses fails its whole request, in the protocol's error shape.
    status, error, _ = call(f"{base}/v2/models/triage/infer", infer_body(f"{run}-bad", ["ok", " "]))
    assert status == 400 and set(error) == {"error"} and "empty_text" in error["error"]
    time.sleep(1)
    again = Counter(r.id for r in read_labels(CommonSettings()) if r.id in set(ids))
    assert again == dict.fromkeys(ids, 1)
