"""`/v2` through the Open Inference Protocol's own clients, unchanged, on a real pipeline.

NVIDIA's `tritonclient.http` with its defaults (binary tensors both ways, no Content-Type) and
with JSON tensors, and KServe's Python SDK REST client (`kserve.InferenceRESTClient`, the v2
protocol, JSON tensors as it sends them) each classify 100 texts of the demo's classes (all
10 the demo data has); their labels equal `/v1`'s for the same texts, and a request sent again
under its id gets the same labels with one result per text on `labels`. Then inputs that no
client should send (lone surrogates, NaN, deep JSON, a body cut off, a non-ASCII id) are each
answered 4xx in one line, the gateway counts no 500, and every text it accepted has exactly one
result on `labels`.
"""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
from collections import Counter
from urllib.parse import urlsplit

import numpy as np
import pytest
import tritonclient.http as triton
from conftest import DEMO_STREAM
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from test_gateway import TOKEN, call, start_gateway, start_pipeline

from triage.core.settings import CommonSettings
from triage.tools.results import read_labels
from triage.training.train import read_dataset

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {TOKEN}"}
N = 100


def demo_texts(n: int) -> list[str]:
    texts = read_dataset(DEMO_STREAM).texts
    return [texts[i % len(texts)] for i in range(n)]


def v1_labels(base: str, texts: list[str], run: str) -> list[str]:
    body = {"texts": [{"id": f"{run}-v1-{i}", "text": t} for i, t in enumerate(texts)]}
    status, answer, _ = call(f"{base}/v1/classify/batch?wait=30", body)
    assert status == 200, answer
    assert [item["status"] for item in answer["results"]] == ["labelled"] * len(texts)
    return [item["result"]["label"] or "" for item in answer["results"]]


def triton_labels(base: str, texts: list[str], request_id: str, binary: bool) -> list[str]:
    client = triton.InferenceServerClient(urlsplit(base).netloc, network_timeout=60)
    text = triton.InferInput("text", [len(texts)], "BYTES")
    text.set_data_from_numpy(np.array(texts, dtype=object), binary_data=binary)
    outputs = None if binary else [triton.InferRequestedOutput(name, binary_data=False)
                                   for name in ("label", "id")]  # fmt: skip
    result = client.infer(
        "triage", [text], request_id=request_id, outputs=outputs, headers=dict(AUTH)
    )
    client.close()
    ids = [_text(i) for i in result.as_numpy("id").tolist()]
    assert ids == [f"{request_id}-{i}" for i in range(len(texts))]
    return [_text(label) for label in result.as_numpy("label").tolist()]


def _text(item: bytes | str) -> str:
    """An element of a BYTES tensor: bytes when it came as binary, str from JSON."""
    return item.decode() if isinstance(item, bytes) else item


def kserve_labels(base: str, texts: list[str], request_id: str) -> list[str]:
    async def infer() -> list[str]:
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
        request = InferRequest(
            model_name="triage",
            infer_inputs=[InferInput("text", [len(texts)], "BYTES", texts)],
            request_id=request_id,
        )
        response = await client.infer(base, request, model_name="triage", headers=dict(AUTH))
        await client.close()
        outputs = {o.name: o for o in response.outputs}
        return [str(x) for x in outputs["label"].data]

    return asyncio.run(infer())


def committed(prefix: str) -> Counter:
    return Counter(r.id for r in read_labels(CommonSettings()) if r.id.startswith(prefix))


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"{TOKEN}\n")
    return path


def test_triton_and_kserve_clients_get_v1s_labels(procs, demo_models, token_file):
    labels = start_pipeline(procs, demo_models)
    base = start_gateway(procs, "serve", token_file)
    texts = demo_texts(N)
    run = f"c{int(time.time() * 1000)}"
    expected = v1_labels(base, texts, run)
    assert len(set(expected) - {""}) == len(labels) == 10  # every demo class among the labels

    assert triton_labels(base, texts, f"{run}-tb", binary=True) == expected
    assert triton_labels(base, texts, f"{run}-tj", binary=False) == expected
    assert kserve_labels(base, texts, f"{run}-ks") == expected
    # Sent again under the same ids: the same labels, and still one result per text.
    assert triton_labels(base, texts, f"{run}-tb", binary=True) == expected
    assert kserve_labels(base, texts, f"{run}-ks") == expected
    time.sleep(1)  # a would-be second result has time to show up
    for client in ("tb", "tj", "ks"):
        ids = [f"{run}-{client}-{i}" for i in range(N)]
        assert committed(f"{run}-{client}-") == dict.fromkeys(ids, 1)


def raw_post(base: str, path: str, head: bytes, body: bytes, close_early: bool = False) -> int:
    """Send bytes as they are; the status, or 0 when the request was cut off on purpose."""
    host, port = urlsplit(base).hostname, urlsplit(base).port
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path.encode(), head) + body)
        if close_early:
            return 0
        return int(s.recv(4096).split(b" ", 2)[1])


def test_bad_input_gets_4xx_no_500_and_no_text_lost(procs, demo_models, token_file):
    start_pipeline(procs, demo_models)
    base = start_gateway(procs, "serve", token_file)
    run = f"b{int(time.time() * 1000)}"
    auth = b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n" % TOKEN.encode()
    bad = [
        ("/v1/classify", b'{"id": "%s-s", "text": "a\\udaf8b"}' % run.encode(), 422),
        ("/v1/classify", b'{"id": "\\udaf8", "text": "hello"}', 422),
        # a metadata key is carried as JSON escapes it: labelled, not refused
        ("/v1/classify", b'{"text": "hi", "metadata": {"\\udaf8": 1}}', 200),
        ("/v1/classify?wait=nan", b'{"text": "hi"}', 422),
        ("/v1/classify", b'{"id": "a\\nb", "text": "hi"}', 422),
        ("/v1/classify", b'{"text": ' + b"[" * 10000 + b"]" * 10000 + b"}", 400),
        ("/v1/classify", b'{"text": 1' + b"0" * 5000 + b"}", 400),
        ("/v1/classify", b'{"text": ["not", "a", "string"]}', 422),
        ("/v2/models/triage/infer", b'{"id": "%s-n", "parameters": {"wait": NaN}}' % run.encode(),
         400),
        ("/v2/models/triage/infer", b'{"inputs": [{"name": "text", "shape": [1],'
         b' "datatype": "BYTES", "data": ["\\udaf8"]}]}', 400),
    ]  # fmt: skip
    for path, body, status in bad:
        head = auth + b"Content-Length: %d\r\n" % len(body)
        assert raw_post(base, path, head, body) == status, (path, body[:60])
    # A body announced longer than sent, then the connection closed.
    head = auth + b"Content-Length: 500\r\n"
    raw_post(base, "/v1/classify", head, b'{"id": "%s-cut", "text": "he' % run.encode(), True)
    # An id that a header cannot carry as it is: its Location is percent-encoded.
    odd = f"{run}-é漢/x"
    status, pending, headers = call(f"{base}/v1/classify?wait=0", {"id": odd, "text": "hello"})
    assert status in (200, 202), pending
    if status == 202:
        assert headers["Location"].startswith("/v1/results/") and headers["Location"].isascii()
        assert call(f"{base}{headers['Location']}")[0] in (200, 202)

    # Good texts beside the bad ones: each labelled once, none lost.
    texts = demo_texts(20)
    body = {"texts": [{"id": f"{run}-ok-{i}", "text": t} for i, t in enumerate(texts)]}
    status, answer, _ = call(f"{base}/v1/classify/batch?wait=30", body)
    assert status == 200 and {r["status"] for r in answer["results"]} == {"labelled"}
    time.sleep(1)
    ok = committed(f"{run}-ok-")
    assert ok == {f"{run}-ok-{i}": 1 for i in range(20)}
    assert committed(odd) == {odd: 1}
    # Nothing published from the refused requests, and no 500 counted.
    assert not committed(f"{run}-s") and not committed(f"{run}-n") and not committed(f"{run}-cut")
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    answered = [line for line in metrics.splitlines() if line.startswith("triage_gateway_requests")]
    assert answered and not [line for line in answered if 'code="500"' in line], answered
