"""`triage serve`'s HTTP API and page, on FastAPI.

FastAPI because the request and response bodies are the pydantic contracts we already have,
and it gives the OpenAPI page and request validation for free; uvicorn serves it (TLS through
its own options). Every error is one JSON line `{"error": ...}` with the right status: 401 and
403 for tokens, 413 for a body over the limit, 422 for a request that is not valid or a text the
pipeline refused (with its dead-letter reason), 409 for an id whose result is for another text,
503 with `Retry-After` when Kafka cannot be reached. Never a stack trace.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from triage.core.errors import ConfigError
from triage.core.registry.lifecycle import classifier_rows, row_json
from triage.core.runtime.clock import now_ms
from triage.gateway.contract import (
    GUARDED,
    ID_PATTERN,
    TEXT_RULES,
    WITH_BODY,
    Conflict,
    Error,
    Health,
    Pending,
    Ready,
    Refusal,
    answers,
)
from triage.gateway.results import TextOutcome
from triage.gateway.service import Answer, Gateway, Unavailable, Unsendable
from triage.gateway.settings import GatewaySettings
from triage.gateway.v2_routes import add_v2_routes
from triage.schemas.codec import DEFAULT_MAX_TEXT_CHARS
from triage.schemas.models import LabelRecord

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
RETRY_AFTER_S = 5

REQUESTS = Counter("triage_gateway_requests", "HTTP requests answered", ["route", "code"])
REQUEST_SECONDS = Histogram(
    "triage_gateway_request_seconds",
    "From a request's arrival to its answer",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class TextIn(BaseModel):
    text: str = Field(
        description="the support message: not blank, at most the classifiers' max_text_chars"
        f" ({DEFAULT_MAX_TEXT_CHARS:,} by default) characters",
        json_schema_extra=TEXT_RULES,
    )
    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=ID_PATTERN,
        description="message id: no control character, no lone UTF-16 surrogate; default a new one",
    )
    metadata: dict[str, Any] | None = None


class BatchText(TextIn):
    text: str = Field(
        description="the support message; one against the pipeline's rules (blank, too long) is"
        " refused in its own item, with its dead-letter reason, and the batch still answers 200"
    )


class BatchIn(BaseModel):
    texts: list[BatchText] = Field(min_length=1, description="at most max_batch_texts")


class LabelledItem(BaseModel):
    id: str
    status: Literal["labelled"]
    result: LabelRecord


class PendingItem(Pending):
    location: str


class RefusedItem(Refusal):
    status: Literal["refused"]


class ConflictItem(Conflict):
    status: Literal["conflict"]


class BatchOut(BaseModel):
    results: list[LabelledItem | PendingItem | RefusedItem | ConflictItem]


class RecentOut(BaseModel):
    results: list[LabelRecord]


class ClassifiersOut(BaseModel):
    classifiers: list[dict[str, Any]] = Field(description="as `triage classifiers --json`")


class Problem(Exception):
    """An answer other than success: status, one line, and headers."""

    def __init__(self, status: int, error: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.headers = status, error, headers or {}


def read_tokens(path: Path | None) -> list[bytes] | None:
    """The bearer tokens of `path`, one a line (None: no authentication)."""
    if path is None:
        return None
    try:
        tokens = [line.strip().encode() for line in path.read_text().splitlines()]
    except OSError as exc:
        raise ConfigError(f"cannot read the token file {path}: {exc.strerror}") from None
    tokens = [t for t in tokens if t]
    if not tokens:
        raise ConfigError(f"the token file {path} holds no token")
    return tokens


def create_app(settings: GatewaySettings, gateway: Gateway) -> FastAPI:
    tokens = read_tokens(settings.token_file)
    app = FastAPI(
        title="triage",
        version="1",
        description="Classify support messages on the triage pipeline: publish, wait, answer.",
        # A JSON body is read as JSON whatever its Content-Type says, or without one (Triton's
        # client sends none): a body that is not JSON is refused for what it is.
        strict_content_type=False,
    )
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    _add_error_handlers(app)
    _add_request_metrics(app)
    authorized = [Depends(_authorizer(tokens))]
    # Registered in this order, which is the OpenAPI page's.
    _add_classify_routes(app, settings, gateway, authorized)
    _add_status_routes(app, settings, gateway, authorized)
    add_v2_routes(app, settings, gateway, authorized)  # the Open Inference Protocol
    _add_page_routes(app)
    _document_limits(app, settings)
    return app


def _document_limits(app: FastAPI, settings: GatewaySettings) -> None:
    """The limits this instance's settings set, in its OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        batch = schema["components"]["schemas"]["BatchIn"]["properties"]["texts"]
        batch["maxItems"] = settings.max_batch_texts
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _authorizer(tokens: list[bytes] | None) -> Callable[[Request], Awaitable[None]]:
    """The dependency that lets a request in only with one of `tokens` (all when None)."""

    # `async`, as every dependency here: FastAPI runs a plain `def` in a worker thread, a hop
    # that every request waited on (two a request, seen in py-spy under 20 clients).
    async def authorized(request: Request) -> None:
        if tokens is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise Problem(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
        if not any(hmac.compare_digest(given.encode(), t) for t in tokens):
            raise Problem(403, "this bearer token is not accepted")

    return authorized


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as one JSON line `{"error": ...}`, never a stack trace."""

    @app.exception_handler(Problem)
    async def _problem(_request: Request, exc: Problem) -> JSONResponse:
        return JSONResponse({"error": exc.error}, exc.status, headers=exc.headers)

    @app.exception_handler(Unavailable)
    async def _unavailable(_request: Request, exc: Unavailable) -> JSONResponse:
        headers = {"Retry-After": str(RETRY_AFTER_S)}
        return JSONResponse({"error": str(exc)}, 503, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, 422)

    @app.exception_handler(Unsendable)
    async def _unsendable(_request: Request, exc: Unsendable) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, 422)

    @app.exception_handler(ClientDisconnect)
    async def _gone(_request: Request, _exc: ClientDisconnect) -> JSONResponse:
        # Nobody reads this answer; it is counted as the client's fault, not the gateway's.
        return JSONResponse({"error": "the client closed the connection inside its body"}, 400)

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _crash(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the log"}, 500)


def _add_request_metrics(app: FastAPI) -> None:
    """Count every answer and time it, by route template and status code.

    Added after `BodyLimit`, so outside it: its 413s are counted too (as "other").
    """
    app.add_middleware(RequestMetrics)


def _add_classify_routes(
    app: FastAPI, settings: GatewaySettings, gateway: Gateway, authorized: list[Any]
) -> None:
    """POST /v1/classify (and /batch) and GET /v1/results: texts in, their results out."""

    async def wait_param(
        wait: float = Query(
            5.0,
            ge=0,
            allow_inf_nan=False,
            description=f"seconds to wait for the result; more than max_wait_s"
            f" ({settings.max_wait_s:g}) waits max_wait_s",
        ),
    ):
        return min(wait, settings.max_wait_s)

    single = answers(**GUARDED, **WITH_BODY, s409=Conflict, s422=Refusal | Error, s503=True)
    single[202] = {"model": Pending, "description": "not decided within `wait`: poll Location"}

    @app.post("/v1/classify", dependencies=authorized, response_model=LabelRecord,
              responses=single)  # fmt: skip
    async def classify(body: TextIn, wait: float = Depends(wait_param)) -> JSONResponse:
        """Publish one text and wait up to `wait` seconds for its committed result: 200 with
        the label record, 202 with a `Location` to poll, or 422 with the refusal's reason."""
        (answer,) = await gateway.classify([body.model_dump()], wait)
        return _single(answer)

    @app.post("/v1/classify/batch", dependencies=authorized, response_model=BatchOut,
              responses=answers(**GUARDED, **WITH_BODY, s422=True, s503=True))  # fmt: skip
    async def classify_batch(body: BatchIn, wait: float = Depends(wait_param)) -> JSONResponse:
        """Several texts at once (up to the configured count); one item per text, in order."""
        if len(body.texts) > settings.max_batch_texts:
            raise Problem(422, f"at most {settings.max_batch_texts} texts a batch")
        answers = await gateway.classify([t.model_dump() for t in body.texts], wait)
        return JSONResponse({"results": [_item(a) for a in answers]})

    found = answers(**GUARDED, s404=True, s409=Conflict, s422=Refusal)
    found[202] = single[202]

    # `:path`: an id may hold "/" (sent as %2F), as the pipeline's ids may
    @app.get("/v1/results/{message_id:path}", dependencies=authorized, response_model=LabelRecord,
             responses=found)  # fmt: skip
    async def result(message_id: str) -> JSONResponse:
        """The outcome of a text: 200, 422 (refused), 202 (published here, pending) or 404."""
        outcome = gateway.lookup(message_id)
        if outcome is not None:
            return _single(Answer(message_id, outcome))
        if message_id in gateway.pending:
            return _single(Answer(message_id, None))
        raise Problem(404, f"no result for {message_id} (not decided yet, or too old)")

    @app.get("/v1/results", dependencies=authorized, response_model=RecentOut,
             responses=answers(**GUARDED, s422=True))  # fmt: skip
    async def recent(limit: int = Query(20, ge=1, le=200)) -> JSONResponse:
        """The latest results this gateway has seen, newest first."""
        found = gateway.index.recent(limit)  # the index is the event loop's alone: no lock
        return JSONResponse({"results": [r.model_dump(mode="json") for r in found]})


def _add_status_routes(
    app: FastAPI, settings: GatewaySettings, gateway: Gateway, authorized: list[Any]
) -> None:
    """The registry listing, liveness, readiness and the Prometheus metrics."""

    @app.get("/v1/classifiers", dependencies=authorized, response_model=ClassifiersOut,
             responses=answers(**GUARDED))  # fmt: skip
    async def classifiers() -> JSONResponse:
        """The registry listing (as `triage classifiers --json`)."""
        now = now_ms()
        with gateway.follower.lock:
            rows = classifier_rows(gateway.follower.view, now, settings.heartbeat_s)
        return JSONResponse({"classifiers": [row_json(row, now) for row in rows]})

    @app.get("/healthz", response_model=Health)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=Ready, responses=answers(s503=True))
    async def readyz() -> JSONResponse:
        """Ready when Kafka is reachable and every expected class votes; else 503, and
        `missing`: each expected class that does not vote yet, with why."""
        if (why := gateway.not_ready) is not None:
            body = {"error": why, "missing": gateway.missing()}
            return JSONResponse(body, 503, headers={"Retry-After": str(RETRY_AFTER_S)})
        return JSONResponse({"status": "ready", "voting_classes": len(gateway.voting())})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _add_page_routes(app: FastAPI) -> None:
    """The page for people at / and its static files."""

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def _single(answer: Answer) -> JSONResponse:
    outcome = answer.outcome
    if outcome is None:
        body = {"id": answer.id, "status": "pending"}
        return JSONResponse(body, 202, headers={"Location": _location(answer.id)})
    if answer.conflict:
        return JSONResponse({"error": _CONFLICT.format(answer.id), "id": answer.id}, 409)
    if outcome.refused is not None:
        return JSONResponse(_refusal(outcome), 422)
    assert outcome.result is not None
    return JSONResponse(outcome.result.model_dump(mode="json"))


def _location(message_id: str) -> str:
    """Where to poll: the id percent-encoded (a header holds ASCII, a path no bare "/")."""
    return f"/v1/results/{quote(message_id, safe='')}"


_CONFLICT = "id {!r} already has a result for another text: send this text under a new id"


def _item(answer: Answer) -> dict[str, Any]:
    outcome = answer.outcome
    if outcome is None:
        return {"id": answer.id, "status": "pending", "location": _location(answer.id)}
    if answer.conflict:
        return {"id": answer.id, "status": "conflict", "error": _CONFLICT.format(answer.id)}
    if outcome.refused is not None:
        return {"id": answer.id, "status": "refused"} | _refusal(outcome)
    assert outcome.result is not None
    return {"id": answer.id, "status": "labelled", "result": outcome.result.model_dump(mode="json")}


def _refusal(outcome: TextOutcome) -> dict[str, Any]:
    letter = outcome.refused
    assert letter is not None
    return {
        "error": f"refused: {letter.reason}: {letter.detail}",
        "id": letter.id,
        "reason": letter.reason,
    }


class BodyLimit:
    """Answers 413 to a request whose body is larger than `limit` bytes, announced or read.

    A body without a length is counted as it arrives; past the limit the app is told the client
    went away (FastAPI would turn an exception while reading into a 400) and its answer dropped.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._too_large(send)
        seen, refused = 0, False

        async def counted() -> dict:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                refused = True
                await self._too_large(send)
                return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: dict) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, unless_refused)

    async def _too_large(self, send: Any) -> None:
        error = f"the request body is larger than {self.limit} bytes"
        body = json.dumps({"error": error}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class RequestMetrics:
    """Counts every answer in REQUESTS and times it in REQUEST_SECONDS, by the matched route's
    template (`scope["route"]`, which FastAPI sets while routing; "other" when none matched) and
    the status sent.

    A plain ASGI middleware, not `@app.middleware("http")`: that one (Starlette's
    BaseHTTPMiddleware) runs the rest of the app in a task of its own and passes the answer
    through memory streams, per request, which showed in py-spy under 20 clients. Inside
    Starlette's ServerErrorMiddleware, so an exception no handler took passes through here: it
    is counted as the 500 that ServerErrorMiddleware then answers, and raised on.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.monotonic()
        status = 500  # unless a response starts

        async def noting_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        except Exception:
            status = 500
            raise
        finally:
            route = getattr(scope.get("route"), "path_format", "other")  # no ":path"
            REQUESTS.labels(route, str(status)).inc()
            REQUEST_SECONDS.labels(route).observe(time.monotonic() - started)


def serve(settings: GatewaySettings) -> None:
    """Serve until SIGTERM or Ctrl-C (uvicorn finishes the requests in flight)."""
    import uvicorn

    if (settings.tls_certfile is None) != (settings.tls_keyfile is None):
        raise ConfigError("HTTPS needs both --tls-certfile and --tls-keyfile")
    sys.setswitchinterval(settings.switch_interval_ms / 1000)  # as every service: see there
    gateway = Gateway(settings)
    app = create_app(settings, gateway)
    scheme = "https" if settings.tls_certfile else "http"
    log.info("serving on %s://%s:%d/ (API at /v1, docs at /docs)", scheme, settings.host,
             settings.port)  # fmt: skip
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=settings.tls_certfile,
        ssl_keyfile=settings.tls_keyfile,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
        # uvicorn's own default is 5 s: a client pausing longer found its connection closed
        # (the open loop's clients at 20 requests/s did, and lost a request to it)
        timeout_keep_alive=round(settings.keep_alive_s),
        # Named, not "auto": uvicorn would take uvloop and httptools whenever they happen to be
        # installed (a dev install has them, through kserve), so the measured gateway and the
        # deployed one would differ by what else sits in the environment.
        loop="asyncio",
        http="h11",
    )

    async def run() -> None:
        gateway.start(asyncio.get_running_loop())  # outcomes are handed to this loop
        await uvicorn.Server(config).serve()

    try:
        asyncio.run(run())
    finally:
        gateway.stop()
