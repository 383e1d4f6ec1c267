"""The bodies of the gateway's answers other than its results, as OpenAPI documents them.

The routes answer with `JSONResponse`s built by hand (no response validation on the hot path);
these models only tell `/openapi.json` what each status carries, so that a client generated
from it reads every answer the gateway can give. `answers` turns a route's statuses into
FastAPI's `responses=`; every error is the one shape `{"error": "<one line>"}`, some with the
message id beside it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import JsonDict

from triage.schemas.codec import DEFAULT_MAX_TEXT_CHARS

# A message id: no control character (one could not be polled at GET /v1/results/{id}, nor
# go in a Location header). Checked in the request's own validation: ~0.5 µs an id, measured.
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"


# The pipeline's own rules for a text, enforced by its classifiers (a text against them is
# answered with its dead-letter reason): documented, not checked twice.
TEXT_RULES: JsonDict = {"minLength": 1, "maxLength": DEFAULT_MAX_TEXT_CHARS, "pattern": r"\S"}


class Error(BaseModel):
    error: str = Field(description="what is wrong, in one line")


class Refusal(Error):
    """A text the pipeline refused: its dead letter's reason."""

    id: str
    reason: str = Field(description="the dead-letter reason, e.g. empty_text, text_too_long")


class Conflict(Error):
    id: str


class Pending(BaseModel):
    id: str
    status: Literal["pending"]


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    voting_classes: int = Field(ge=1)


class Readiness(BaseModel):
    """`/v2/health/ready` and a model's readiness (`name` then): 200 ready, 503 not."""

    name: str | None = None
    ready: bool
    error: str | None = Field(default=None, description="why not ready")


_WHY = {
    400: "the request is not valid (the body not JSON, or against the protocol)",
    401: "no bearer token (`WWW-Authenticate: Bearer`)",
    403: "this bearer token is not accepted",
    404: "no such resource",
    409: "the id already has a result for another text",
    413: "the request body is larger than the configured limit",
    422: "the request is not valid, or the pipeline refused the text (its dead-letter reason)",
    503: "Kafka cannot be reached, or no classifier votes yet (`Retry-After`)",
    504: "not decided within `wait`: send the same request id again for the results",
}


def answers(**by_status: Any) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: `s404=Error` documents 404 with that body (True: `Error`)."""
    out: dict[int | str, dict[str, Any]] = {}
    for key, model in by_status.items():
        status = int(key.removeprefix("s"))
        out[status] = {"model": Error if model is True else model, "description": _WHY[status]}
    return out


GUARDED = {"s401": True, "s403": True}  # a route that needs a token (when tokens are set)
WITH_BODY = {"s400": True, "s413": True}  # a route that reads a body
