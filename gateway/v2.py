"""The Open Inference Protocol (KServe v2 REST) as triage speaks it: contracts and translation.

The v2 protocol (kserve/open-inference-protocol, `specification/protocol/inference_rest.md`)
describes a model as named tensors. Triage is one model, `triage`, with one input, `text`
(BYTES, shape `[-1]`: a batch of texts), and five outputs per request of N texts: `label`
(BYTES `[N]`, "" when the pipeline abstained), `probability` (FP32 `[N]`), `scores` (FP32
`[N, K]`, row-major, one column per class), `classes` (BYTES `[K]`, the columns' order,
alphabetical) and `id` (BYTES `[N]`, each text's message id). One scores tensor with its column
order beside it, rather than one output per class, because every v2 client (Triton's, KServe's,
MLServer's) turns one tensor into one array, and a class that is added or retired changes a
column count instead of the output names a client asks for. This module is pure logic: the
request's texts and message ids, and the response or the one-line error for the outcomes.
"""

from __future__ import annotations

from collections.abc import Iterator
from math import prod
from typing import Any

from pydantic import BaseModel, Field

from triage.gateway.results import TextOutcome
from triage.gateway.service import Answer

MODEL = "triage"
INPUT = "text"
# A class's column in `scores` when the result has no score for it (an incomplete result, or
# a class that joined between two texts of a request): no probability is negative.
NO_SCORE = -1.0
# The request id with "-<index>" must fit the 256 characters of a message id.
MAX_REQUEST_ID = 240

Parameters = dict[str, str | int | float | bool]


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ModelMetadata(BaseModel):
    name: str
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    parameters: dict[str, str] = Field(
        default_factory=dict, description="class → the version that votes now"
    )


class RequestInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any]


class RequestOutput(BaseModel):
    name: str
    parameters: Parameters | None = None


class InferRequest(BaseModel):
    id: str | None = Field(default=None, min_length=1, max_length=MAX_REQUEST_ID)
    parameters: Parameters | None = Field(
        default=None, description="`wait`: seconds to wait for the results (at most max_wait_s)"
    )
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferResponse(BaseModel):
    model_name: str
    id: str
    outputs: list[ResponseOutput]


class Refused(Exception):
    """A request or outcome that the v2 error shape answers: HTTP status and one line."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status, self.error = status, error


def model_metadata(versions: dict[str, str]) -> ModelMetadata:
    """`triage` as tensors, with the classes voting now (`versions`: class → version)."""
    k = len(versions) or -1
    return ModelMetadata(
        name=MODEL,
        platform="triage_kafka",
        inputs=[MetadataTensor(name=INPUT, datatype="BYTES", shape=[-1])],
        outputs=[
            MetadataTensor(name="label", datatype="BYTES", shape=[-1]),
            MetadataTensor(name="probability", datatype="FP32", shape=[-1]),
            MetadataTensor(name="scores", datatype="FP32", shape=[-1, k]),
            MetadataTensor(name="classes", datatype="BYTES", shape=[k]),
            MetadataTensor(name="id", datatype="BYTES", shape=[-1]),
        ],
        parameters=dict(sorted(versions.items())),
    )


OUTPUTS = tuple(t.name for t in model_metadata({}).outputs)


def request_texts(request: InferRequest, max_texts: int) -> list[str]:
    """The texts of `request`'s one BYTES input (refused with 400 when it is not that)."""
    inputs = request.inputs
    if len(inputs) > 1:
        inputs = [i for i in inputs if i.name == INPUT]
        if len(inputs) != 1:
            raise Refused(400, f"expected one input named {INPUT!r}, got several")
    tensor = inputs[0]  # one input: its name is not checked, as a text model's clients vary
    if tensor.datatype != "BYTES":
        raise Refused(400, f"input {tensor.name!r} must be BYTES, not {tensor.datatype}")
    texts = list(_flat(tensor.data))
    if any(not isinstance(t, str) for t in texts):
        raise Refused(400, f"input {tensor.name!r} must hold strings")
    if prod(tensor.shape) != len(texts) or any(d < 0 for d in tensor.shape):
        raise Refused(400, f"input {tensor.name!r}: shape {tensor.shape} but {len(texts)} items")
    if not texts:
        raise Refused(400, f"input {tensor.name!r} holds no text")
    if len(texts) > max_texts:
        raise Refused(400, f"at most {max_texts} texts a request")
    if request.outputs is not None:
        unknown = [o.name for o in request.outputs if o.name not in OUTPUTS]
        if unknown:
            raise Refused(400, f"no output {unknown[0]!r}; outputs are {', '.join(OUTPUTS)}")
    return texts


def _flat(data: list[Any]) -> Iterator[Any]:
    """Tensor data in its nested form or flattened (the spec allows both), row-major."""
    for item in data:
        if isinstance(item, list):
            yield from _flat(item)
        else:
            yield item


def wait_s(request: InferRequest, max_wait_s: float) -> float:
    """The `wait` parameter, at most `max_wait_s` (its default: v2 clients do not poll)."""
    wait = (request.parameters or {}).get("wait", max_wait_s)
    if isinstance(wait, bool) or not isinstance(wait, int | float) or wait < 0:
        raise Refused(400, "parameter 'wait' must be a number of seconds, 0 or more")
    return min(float(wait), max_wait_s)


def message_ids(request_id: str, n: int) -> list[str]:
    """Text i's message id: a retry of the request id gets the same ids, so the same results."""
    return [f"{request_id}-{i}" for i in range(n)]


def infer_response(
    request_id: str, answers: list[Answer], wanted: list[RequestOutput] | None, wait: float
) -> InferResponse:
    """The outputs for `answers`, or `Refused` for the first text without a label."""
    for i, answer in enumerate(answers):
        _check(i, answer, request_id, wait)
    results = [a.outcome.result for a in answers if a.outcome and a.outcome.result]
    classes = sorted({label for r in results for label in r.scores})
    n, k = len(results), len(classes)
    outputs: dict[str, tuple[str, list[int], list[Any]]] = {
        "label": ("BYTES", [n], [r.label or "" for r in results]),
        "probability": ("FP32", [n], [r.probability for r in results]),
        "scores": ("FP32", [n, k], [r.scores.get(c, NO_SCORE) for r in results for c in classes]),
        "classes": ("BYTES", [k], classes),
        "id": ("BYTES", [n], [r.id for r in results]),
    }
    names = OUTPUTS if wanted is None else [o.name for o in wanted]
    return InferResponse(
        model_name=MODEL,
        id=request_id,
        outputs=[_output(name, *outputs[name]) for name in names],
    )


def _output(name: str, datatype: str, shape: list[int], data: list[Any]) -> ResponseOutput:
    return ResponseOutput(name=name, datatype=datatype, shape=shape, data=data)


def _check(index: int, answer: Answer, request_id: str, wait: float) -> None:
    outcome: TextOutcome | None = answer.outcome
    where = f"text {index} (id {answer.id})"
    if outcome is None:
        retry = f"send the request again with id {request_id!r} for its results"
        raise Refused(504, f"{where} not decided within {wait:g} s: {retry}")
    if answer.conflict:
        raise Refused(409, f"{where} already has a result for another text: use a new id")
    if outcome.refused is not None:
        letter = outcome.refused
        raise Refused(400, f"{where} refused: {letter.reason}: {letter.detail}")
