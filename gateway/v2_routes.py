"""The Open Inference Protocol's routes under `/v2`, beside `/v1`, on the same gateway.

`POST /v2/models/triage/infer` sends each text down the same path as `POST /v1/classify`
(published to `texts` under a message id, its committed result awaited), so the answers are the
labels on `labels`. Every error is the protocol's `{"error": ...}`: 400 for a request that is
not valid (where `/v1` says 422) or a text the pipeline refused, 409 for a request id reused
for other texts, 504 when `wait` ran out, 404 for another model's name; the app's own handlers
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

from triage.gateway.service import Gateway
from triage.gateway.settings import GatewaySettings
from triage.gateway.v2 import (
    MODEL,
    InferRequest,
    InferResponse,
    ModelMetadata,
    Refused,
    ServerMetadata,
    infer_response,
    message_ids,
    model_metadata,
    request_texts,
    wait_s,
)
from triage.producer.readers import new_id

RETRY_AFTER_S = 5


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
    """`/v2`: health, server and model metadata, and inference on the model `triage`."""
    router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (v2)"], route_class=_V2Route)

    @router.get("/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @router.get("/health/ready")
    async def ready() -> JSONResponse:
        """Ready as `/readyz` is: Kafka reachable and classes voting (else 503)."""
        return _readiness(gateway, {})

    @router.get("", response_model=ServerMetadata)
    async def server_metadata() -> ServerMetadata:
        return ServerMetadata(name="triage", version=_version(), extensions=[])

    @router.get("/models/{model}", dependencies=authorized, response_model=ModelMetadata)
    async def metadata(model: str) -> ModelMetadata:
        """The model's tensors; `parameters`: each voting class's version."""
        _known(model)
        return model_metadata(gateway.voting())

    @router.get("/models/{model}/ready")
    async def model_ready(model: str) -> JSONResponse:
        _known(model)
        return _readiness(gateway, {"name": MODEL})

    @router.post("/models/{model}/infer", dependencies=authorized, response_model=InferResponse)
    async def infer(model: str, body: InferRequest) -> InferResponse:
        """Classify the texts of the BYTES input; the same request id gets the same results."""
        _known(model)
        texts = request_texts(body, settings.max_batch_texts)
        wait = wait_s(body, settings.max_wait_s)
        request_id = body.id or new_id()
        ids = message_ids(request_id, len(texts))
        sent = [{"id": i, "text": t} for i, t in zip(ids, texts, strict=True)]
        answers = await gateway.classify(sent, wait)
        return infer_response(request_id, answers, body.outputs, wait)

    app.include_router(router)


def _known(model: str) -> None:
    if model != MODEL:
        raise Refused(404, f"no model {model!r}: this server serves {MODEL!r}")


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
