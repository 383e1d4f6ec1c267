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
request read from JSON or from the binary tensor data extension (the JSON part, then raw tensor
bytes), its texts and message ids, and the response, JSON or binary as each output was asked
for, or the one-line error for the outcomes.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from math import prod
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from triage.gateway.contract import ID_PATTERN, TEXT_RULES
from triage.gateway.results import TextOutcome
from triage.gateway.service import Answer

MODEL = "triage"
INPUT = "text"
# The model's one version: the contract of its tensors, not a classifier's version (those are
# the metadata's `parameters`). Clients given a version build `/v2/models/triage/versions/1/…`.
VERSION = "1"
# A class's column in `scores` when the result has no score for it (an incomplete result, or
# a class that joined between two texts of a request): no probability is negative.
NO_SCORE = -1.0
# The request id with "-<index>" must fit the 256 characters of a message id.
MAX_REQUEST_ID = 240
# The binary tensor data extension: the JSON part's length when raw tensor bytes follow it.
HEADER_LENGTH = "Inference-Header-Content-Length"
OutputName = Literal["label", "probability", "scores", "classes", "id"]
ParameterValue = str | int | float | bool


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
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    parameters: dict[str, str] = Field(
        default_factory=dict, description="class → the version that votes now"
    )


class InputParameters(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    __pydantic_extra__: dict[str, ParameterValue]
    binary_data_size: int | None = Field(
        default=None, ge=0, description="the input's bytes follow the JSON (binary extension)"
    )


class RequestInput(BaseModel):
    # `data` is required in JSON: a binary input's `binary_data_size` is the extension's, not
    # JSON's (its bytes follow the JSON part, which JSON Schema cannot describe).
    model_config = ConfigDict(
        strict=True, json_schema_extra={"required": ["name", "shape", "datatype", "data"]}
    )
    name: str = Field(description="any name when it is the only input, else 'text'")
    shape: list[int] = Field(description="the texts' count, or any shape holding that many")
    datatype: Literal["BYTES"]
    parameters: InputParameters | None = None
    data: list[str | list[Any]] | None = Field(
        default=None,
        min_length=1,
        json_schema_extra={
            "items": {"anyOf": [{"type": "string", **TEXT_RULES}, {"type": "array"}]}
        },
        description="the texts, flat or nested; absent when sent as binary (binary_data_size)",
    )


class OutputParameters(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    __pydantic_extra__: dict[str, ParameterValue]
    binary_data: bool | None = Field(default=None, description="answer it as raw bytes")


class RequestOutput(BaseModel):
    model_config = ConfigDict(strict=True)
    name: OutputName
    parameters: OutputParameters | None = None


class RequestParameters(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    __pydantic_extra__: dict[str, ParameterValue]
    wait: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="seconds to wait for the results (default and at most: max_wait_s)",
    )
    binary_data_output: bool = Field(default=False, description="every output as raw bytes")


class InferRequest(BaseModel):
    # strict: JSON's types as the schema says them ("5" is not a number, nor 1 a boolean)
    model_config = ConfigDict(strict=True)
    id: str | None = Field(
        default=None, min_length=1, max_length=MAX_REQUEST_ID, pattern=ID_PATTERN
    )
    parameters: RequestParameters | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseParameters(BaseModel):
    binary_data_size: int


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: ResponseParameters | None = None
    data: list[Any] | None = Field(default=None, description="absent when sent as binary")


class InferResponse(BaseModel):
    model_name: str
    id: str
    outputs: list[ResponseOutput]


class Refused(Exception):
    """A request or outcome that the v2 error shape answers: HTTP status and one line."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status, self.error = status, error


def read_request(body: bytes, header_length: str | None) -> InferRequest:
    """The request in `body`: JSON alone, or (binary extension) `header_length` bytes of JSON
    and then each binary input's bytes, in the inputs' order. Refused (400) with one line."""
    binary = b""
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise Refused(400, f"{HEADER_LENGTH} {header_length!r} is not a length in the body")
        body, binary = body[: int(header_length)], body[int(header_length) :]
    try:
        obj = json.loads(body, parse_constant=_no_constant)
    except RecursionError:
        raise Refused(400, "the body is not JSON this server reads: nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise Refused(400, f"the body is not JSON: {exc}") from None
    except UnicodeDecodeError:
        raise Refused(400, "the body is not JSON: it is not UTF-8") from None
    except ValueError as exc:  # a constant (NaN, Infinity) or an integer of 4,300+ digits
        why = str(exc) if "JSON number" in str(exc) else "a number too long to read"
        raise Refused(400, f"the body is not JSON this server reads: {why}") from None
    if not isinstance(obj, dict):
        raise Refused(400, "the body is not a JSON object")
    try:
        request = InferRequest.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Refused(400, f"{where}: {first['msg']}") from None
    _attach_binary(request, binary)
    return request


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _attach_binary(request: InferRequest, binary: bytes) -> None:
    """Each binary input's `data`, its texts read from `binary` (BYTES: 4-byte little-endian
    length, then that many bytes of UTF-8, per element)."""
    at = 0
    for tensor in request.inputs:
        size = tensor.parameters.binary_data_size if tensor.parameters else None
        if size is None:
            if tensor.data is None:
                raise Refused(400, f"input {tensor.name!r} has no data")
            continue
        if at + size > len(binary):
            raise Refused(
                400, f"input {tensor.name!r}: {size} binary bytes, {len(binary) - at} sent"
            )
        tensor.data = _bytes_elements(tensor.name, binary[at : at + size])
        at += size
    if at != len(binary):
        raise Refused(400, f"{len(binary) - at} bytes after the inputs' binary data")


def _bytes_elements(name: str, raw: bytes) -> list[str | list[Any]]:
    texts: list[str | list[Any]] = []
    at = 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise Refused(400, f"input {name!r}: binary data cut inside an element's length")
        (n,) = struct.unpack_from("<I", raw, at)
        element = raw[at + 4 : at + 4 + n]
        if len(element) != n:
            raise Refused(400, f"input {name!r}: binary element {len(texts)} is cut short")
        try:
            texts.append(element.decode("utf-8"))
        except UnicodeDecodeError:
            raise Refused(400, f"input {name!r}: element {len(texts)} is not UTF-8") from None
        at += 4 + n
    return texts


def model_metadata(versions: dict[str, str]) -> ModelMetadata:
    """`triage` as tensors, with the classes voting now (`versions`: class → version)."""
    k = len(versions) or -1
    return ModelMetadata(
        name=MODEL,
        versions=[VERSION],
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
    texts = list(_flat(tensor.data or []))
    if any(not isinstance(t, str) for t in texts):
        raise Refused(400, f"input {tensor.name!r} must hold strings")
    if any(d < 0 for d in tensor.shape) or prod(tensor.shape) != len(texts):
        raise Refused(400, f"input {tensor.name!r}: shape {tensor.shape} but {len(texts)} items")
    if not texts:
        raise Refused(400, f"input {tensor.name!r} holds no text")
    if len(texts) > max_texts:
        raise Refused(400, f"at most {max_texts} texts a request")
    for i, text in enumerate(texts):
        if not text.isascii():  # O(1) for ASCII: only other texts are encoded to check
            try:
                text.encode()
            except UnicodeEncodeError as exc:
                raise Refused(
                    400, f"input {tensor.name!r}: text {i}: {_unencodable(exc)}"
                ) from None
    return texts


def _unencodable(exc: UnicodeEncodeError) -> str:
    char = exc.object[exc.start]
    return f"holds {char!r} at {exc.start}, a lone UTF-16 surrogate that UTF-8 cannot carry"


def _flat(data: list[Any]) -> Iterator[Any]:
    """Tensor data in its nested form or flattened (the spec allows both), row-major."""
    for item in data:
        if isinstance(item, list):
            yield from _flat(item)
        else:
            yield item


def wait_s(request: InferRequest, max_wait_s: float) -> float:
    """The `wait` parameter, at most `max_wait_s` (its default: v2 clients do not poll)."""
    wait = request.parameters.wait if request.parameters else None
    return max_wait_s if wait is None else min(wait, max_wait_s)


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
    names = OUTPUTS if wanted is None else tuple(o.name for o in wanted)
    return InferResponse(
        model_name=MODEL,
        id=request_id,
        outputs=[_output(name, *outputs[name]) for name in names],
    )


def encode_response(request: InferRequest, response: InferResponse) -> tuple[bytes, int | None]:
    """The response's bytes, and the length of its JSON part when raw bytes follow (binary
    extension: the outputs asked for as binary, per output or all by `binary_data_output`,
    carry `binary_data_size` instead of `data`, their bytes in the outputs' order)."""
    asked: dict[str, bool | None] = {
        o.name: o.parameters.binary_data for o in request.outputs or () if o.parameters
    }
    everything = request.parameters.binary_data_output if request.parameters else False
    raw = []
    for output in response.outputs:
        binary = asked.get(output.name)
        if binary is None:
            binary = everything
        if binary and output.data is not None:
            data = _tensor_bytes(output.datatype, output.data)
            output.parameters, output.data = ResponseParameters(binary_data_size=len(data)), None
            raw.append(data)
    header = response.model_dump_json(exclude_none=True).encode()
    if not raw:
        return header, None
    return b"".join([header, *raw]), len(header)


def _tensor_bytes(datatype: str, data: list[Any]) -> bytes:
    if datatype == "FP32":
        return struct.pack(f"<{len(data)}f", *data)
    encoded = [str(item).encode() for item in data]
    return b"".join(struct.pack("<I", len(e)) + e for e in encoded)


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
