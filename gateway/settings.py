"""The HTTP gateway's settings, from flags and `TRIAGE_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from triage.producer.settings import ProducerSettings


class GatewaySettings(ProducerSettings):
    """`triage serve`: HTTP request-reply on the pipeline's topics."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    token_file: Path | None = Field(
        default=None, description="bearer tokens, one a line; when set, every /v1 call needs one"
    )
    tls_certfile: Path | None = Field(default=None, description="serve HTTPS with this cert")
    tls_keyfile: Path | None = None
    max_body_bytes: int = Field(default=65536, ge=1, description="larger requests get 413")
    max_batch_texts: int = Field(default=100, ge=1, description="texts a batch request may hold")
    max_wait_s: float = Field(default=30.0, gt=0, description="longest `wait` a request may ask")
    heartbeat_s: float = Field(default=10.0, gt=0, description="classifiers' heartbeat (STALE)")
    results_kept: int = Field(
        default=100_000, ge=1, description="recent results kept for retries and GET /v1/results"
    )
    keep_alive_s: float = Field(
        default=75.0,
        gt=0,
        description="an idle keep-alive connection is closed after this long: longer than a load"
        " balancer's idle timeout (60 s on the common ones), so none reuses a connection the"
        " gateway has just closed",
    )
    # Readiness: every class the deployment runs votes. The registry alone names only the
    # classes whose first process has started, so a deployment names the rest.
    expected_classes: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="classes /readyz waits for besides those with a class record (comma-separated)",
    )
    expected_models: Path | None = Field(
        default=None, description="every class of this models folder is expected too"
    )
    # A linger of 0 sends a request's text at once: a gateway's texts arrive one by one.
    linger_ms: int = Field(default=0, ge=0)

    @field_validator("expected_classes", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """`TRIAGE_EXPECTED_CLASSES=a,b`, and each flag's value, split at commas."""
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            return value
        names = (name.strip() for item in items for name in str(item).split(","))
        return tuple(name for name in names if name)
