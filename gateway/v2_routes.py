"""The Open Inference Protocol's routes under `/v2`, beside `/v1`, on the same gateway.

`POST /v2/models/triage/infer` sends each text down the same path as `POST /v1/classify`
(published to `texts` under a message id, its committed result awaited), so the answers are the
labels on `labels`. Every error is the protocol's `{"error": ...}`: 400 for a request that is
not valid (where `/v1` says 422) or a text the pipeline refused, 409 for a request id reused
for other texts, 504 when `wait` ran out, 404 for another model or version; the app's own handlers
give 401/403 (tokens), 413 (body size) and 503 (Kafka) in the same shape. The health routes and
the server metadata need no token (probes do not carry one); the model's metadata and
inference need one whenever `/v1` does.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from triage.gateway.contract import GUARDED, WITH_BODY, Readiness, answers
from triage.gateway.service import Gateway
from triage.gateway.settings import GatewaySettings
from triage.gateway.v2 import (
    HEADER_LENGTH,
    MODEL,
    VERSION,
    InferRequest,
    InferResponse,
    ModelMetadata,
    Refused,
    ServerMetadata,
    encode_response,
    infer_response,
    message_ids,
    model_metadata,
    read_request,
    request_texts,
    wait_s,
)
from triage.producer.readers import new_id

RETRY_AFTER_S = 5
REF = "#/components/schemas/"
BINARY_EXTENSION = "binary_tensor_data"
BINARY = {"schema": {"type": "string", "format": "binary"}}
INFER_ANSWERS = answers(**GUARDED, **WITH_BODY, s404=True, s409=True, s503=True, s504=True) | {
    200: {"content": {"application/octet-stream": BINARY},
          "description": "JSON, or with outputs asked as binary: the JSON part"
          f" (`{HEADER_LENGTH}` bytes), then their raw bytes"}
}  # fmt: skip


class _V2Route(APIRoute):
    """A route whose errors are the v2 shape: `Refused` as it says, invalid bodies as 400."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Refused as exc:
                return JSONResponse({"error": exc.error}, exc.status)
            except RequestValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first.get("loc", ()))
                return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, 400)

        return answer


def add_v2_routes(
    app: FastAPI, settings: GatewaySettings, gateway: Gateway, authorized: list[Any]
) -> None:
    """`/v2`: health, server and model metadata, and inference on the model `triage`, each
    model route also under `/versions/{version}` (the path clients build given a version)."""
    router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (v2)"], route_class=_V2Route)

    @router.get("/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @router.get("/health/ready", response_model=Readiness, responses=answers(s503=Readiness))
    async def ready() -> JSONResponse:
        """Ready as `/readyz` is: Kafka reachable and classes voting (else 503)."""
        return _readiness(gateway, {})

    @router.get("", response_model=ServerMetadata)
    async def server_metadata() -> ServerMetadata:
        return ServerMetadata(name="triage", version=_version(), extensions=[BINARY_EXTENSION])

    async def metadata(model: str, request: Request) -> ModelMetadata:
        """The model's tensors; `parameters`: each voting class's version."""
        _known(model, request)
        return model_metadata(gateway.voting())

    async def model_ready(model: str, request: Request) -> JSONResponse:
        _known(model, request)
        return _readiness(gateway, {"name": MODEL})

    async def infer(model: str, request: Request) -> Response:
        """Classify the texts of the BYTES input; the same request id gets the same results.
        The body is JSON, with or without `Content-Type`, or the binary tensor data extension
        (`Inference-Header-Content-Length`); outputs asked as binary come back as raw bytes."""
        _known(model, request)
        body = read_request(await request.body(), request.headers.get(HEADER_LENGTH))
        texts = request_texts(body, settings.max_batch_texts)
        wait = wait_s(body, settings.max_wait_s)
        request_id = body.id or new_id()
        ids = message_ids(request_id, len(texts))
        sent = [{"id": i, "text": t} for i, t in zip(ids, texts, strict=True)]
        answers = await gateway.classify(sent, wait)
        content, header_length = encode_response(
            body, infer_response(request_id, answers, body.outputs, wait)
        )
        if header_length is None:
            return Response(content, media_type="application/json")
        headers = {HEADER_LENGTH: str(header_length)}
        return Response(content, media_type="application/octet-stream", headers=headers)

    # JSON alone: a body of the binary extension (the JSON part, then raw tensor bytes, sent
    # as application/octet-stream or with no Content-Type) has no JSON Schema to say it with.
    infer_doc = {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"{REF}InferRequest"}},
    }}}  # fmt: skip
    # The handlers read `version` from the path when it has one: declared to OpenAPI here.
    versioned = {"parameters": [{"name": "version", "in": "path", "required": True,
                                 "schema": {"type": "string", "enum": [VERSION]}}]}  # fmt: skip
    for prefix, extra in (
        ("/models/{model}", {}),
        ("/models/{model}/versions/{version}", versioned),
    ):
        router.get(
            prefix,
            dependencies=authorized,
            response_model=ModelMetadata,
            responses=answers(**GUARDED, s404=True),
            openapi_extra=extra,
        )(metadata)
        router.get(
            f"{prefix}/ready",
            response_model=Readiness,
            responses=answers(s404=True, s503=Readiness),
            openapi_extra=extra,
        )(model_ready)
        router.post(f"{prefix}/infer", dependencies=authorized, response_model=InferResponse,
                    responses=INFER_ANSWERS, openapi_extra=extra | infer_doc)(infer)  # fmt: skip

    app.include_router(router)
    _document_models(app, [InferRequest])


def _document_models(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Put `models` (a body read by hand, so unseen by FastAPI) in the OpenAPI components,
    take out the 422 FastAPI lists for every route with parameters from `/v2`'s, and name the
    one model a `{model}` may be."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                found = model.model_json_schema(ref_template=REF + "{model}")
                components.update(found.pop("$defs", {}))
                components[model.__name__] = found
            for path, operations in schema["paths"].items():
                if path.startswith("/v2"):  # its invalid requests are 400, documented so
                    for operation in operations.values():
                        operation["responses"].pop("422", None)
                        for parameter in operation.get("parameters", []):
                            if parameter["name"] == "model":  # another name is answered 404
                                parameter["schema"] = {"type": "string", "enum": [MODEL]}
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def _known(model: str, request: Request) -> None:
    version = request.path_params.get("version", VERSION)
    if model != MODEL:
        raise Refused(404, f"no model {model!r}: this server serves {MODEL!r}")
    if version != VERSION:
        raise Refused(404, f"no version {version!r} of {MODEL!r}: its one version is {VERSION!r}")


def _readiness(gateway: Gateway, body: dict[str, Any]) -> JSONResponse:
    why = gateway.not_ready
    if why is None:
        return JSONResponse(body | {"ready": True})
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    return JSONResponse(body | {"ready": False, "error": why}, 503, headers=headers)


def _version() -> str:
    try:
        return version("triage")
    except PackageNotFoundError:
        return "unknown"
