"""Configuration of every triage service, from flags and `TRIAGE_*` environment variables.

One frozen settings class per service, composed: `ConnectionSettings` (cluster and security)
is a part of `CommonSettings` (plus topic names and the runtime's tuning), which every service's
settings extend with its own tuning, so every service reads the same variables the same way and
a tool passes settings objects around instead of writing the environment. Flags win
over the environment; the environment wins over defaults. Credentials are `SecretStr` and
never appear in logs, errors or `repr`.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.codec import DEFAULT_MAX_RECORD_BYTES, DEFAULT_MAX_TEXT_CHARS, TextLimits


class OperatorError(Exception):
    """A mistake an operator fixes (a setting, a missing model, an unreadable file): the CLI
    prints its message as one line and exits 2. Each package's errors derive from it, so the
    CLI need not import the packages (and scikit-learn) to catch them."""


class ConfigError(OperatorError):
    """An operator's mistake in configuration; the message says what to do."""


def _long_enough(key: SecretStr) -> SecretStr:
    if len(key.get_secret_value()) < 16:
        raise ValueError("a signing key needs at least 16 characters")
    return key


SigningKey = Annotated[SecretStr, AfterValidator(_long_enough)]


_ENV = SettingsConfigDict(
    env_prefix="TRIAGE_", frozen=True, extra="ignore", hide_input_in_errors=True
)  # hide_input_in_errors: a rejected value may be a password; errors name the field only.


class ConnectionSettings(BaseSettings):
    """Where the cluster is and how to log in: the same for every service and tool."""

    model_config = _ENV

    bootstrap_servers: str | None = Field(
        default=None, description="host:port[,host:port]; the CLI falls back to `triage kafka`'s"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = Field(
        default=None, description="first line is the SASL password (instead of sasl_password)"
    )
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = Field(
        default=None, description="decrypts ssl_keyfile when it is encrypted"
    )
    ssl_check_hostname: bool = True


class CommonSettings(BaseSettings):
    """The connection, topic names and the runtime's tuning: what every service shares."""

    model_config = _ENV

    connection: ConnectionSettings = Field(default_factory=ConnectionSettings)

    @model_validator(mode="before")
    @classmethod
    def _connection_fields(cls, data: Any) -> Any:
        """`CommonSettings(bootstrap_servers=...)` means the connection's field, not nothing."""
        if not isinstance(data, dict):
            return data
        flat = {k: data[k] for k in ConnectionSettings.model_fields.keys() & data.keys()}
        if not flat:
            return data
        given = data.get("connection")
        base = given.model_dump() if isinstance(given, ConnectionSettings) else dict(given or {})
        rest = {k: v for k, v in data.items() if k not in flat}
        return rest | {"connection": ConnectionSettings(**(base | flat))}

    topic_prefix: str = ""
    topic_texts: str = "texts"
    topic_scores: str = "scores"
    topic_labels: str = "labels"
    topic_registry: str = "triage-registry"
    topic_dead_letters: str = "triage-dead-letters"
    topic_aggregator_state: str = "triage-aggregator-state"
    topic_features: str = "features"
    topic_corrections: str = "corrections"
    topic_quality: str = "triage-quality"
    topic_monitor_state: str = "triage-monitor-state"
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication_factor: int | None = Field(default=None, ge=1)

    instance_id: str = Field(
        default_factory=socket.gethostname,
        description="stable per running instance: a restart with the same id fences its zombie",
    )

    # The broker answers a waiting fetch as soon as committed data arrives, so this bounds only
    # how often an idle consumer asks. Measured on 2 cores: at 200 texts/s p99 is the same at 25
    # and 100 ms (70 / 68 ms) and worse at 500 (93 ms); an idle classifier costs 5.7 % of a core
    # at 25 ms and 1.4 % at 500; one process per class for 20 classes does 275 texts/s at 25 ms
    # and 317 at 100 (their idle fetching competes with the scoring).
    fetch_max_wait_ms: int = Field(
        default=100, ge=0, description="longest a fetch waits for data before returning empty"
    )

    compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = Field(
        default=None,
        description="of every record a triage process produces; none by default (measured:"
        " on a broker next door the CPU it costs outweighs the bytes it saves)",
    )

    stall_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="a service whose main loop makes no progress this long restarts itself",
    )

    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)

    def topic(self, name: str) -> str:
        return self.topic_prefix + name

    @property
    def texts(self) -> str:
        return self.topic(self.topic_texts)

    @property
    def scores(self) -> str:
        return self.topic(self.topic_scores)

    @property
    def labels(self) -> str:
        return self.topic(self.topic_labels)

    @property
    def registry(self) -> str:
        return self.topic(self.topic_registry)

    @property
    def dead_letters(self) -> str:
        return self.topic(self.topic_dead_letters)

    @property
    def aggregator_state(self) -> str:
        return self.topic(self.topic_aggregator_state)

    @property
    def features(self) -> str:
        return self.topic(self.topic_features)

    @property
    def corrections(self) -> str:
        return self.topic(self.topic_corrections)

    @property
    def quality(self) -> str:
        return self.topic(self.topic_quality)

    @property
    def monitor_state(self) -> str:
        return self.topic(self.topic_monitor_state)

    def group(self, name: str) -> str:
        return self.topic_prefix + name


class ClassifierSettings(CommonSettings):
    max_batch: int = Field(default=500, ge=1, description="records polled and scored at once")
    poll_timeout_ms: int = Field(default=100, ge=1)
    max_record_bytes: int = Field(default=DEFAULT_MAX_RECORD_BYTES, ge=1)
    max_text_chars: int = Field(default=DEFAULT_MAX_TEXT_CHARS, ge=1)
    heartbeat_s: float = Field(default=10.0, gt=0)
    switch_delay_s: float = Field(
        default=5.0,
        ge=0,
        description="a new voter (new class, promote) votes on texts published this long after "
        "it is written to the registry, so every aggregator has read it before such a text",
    )
    start_from: Literal["since", "earliest", "latest"] = "earliest"
    model_signing_key: SigningKey | None = Field(
        default=None,
        description="HMAC key: when set, only models whose manifest it signed are loaded",
    )

    @property
    def limits(self) -> TextLimits:
        return TextLimits(self.max_record_bytes, self.max_text_chars)


class EncoderSettings(CommonSettings):
    """`triage encoder`: texts in, one embedding a text out on the features topic."""

    encoder: str = Field(default="default", description="which encoder (`triage encoder --list`)")
    threads: int | None = Field(
        default=None, ge=1, description="ONNX Runtime threads (default: the CPUs we may use)"
    )
    # Encoded 128 at a time, each 128 one transaction that commits while the next encode (a
    # service's `overlap_chunk`). Measured, `triage bench`, 77 heads, 2 threads: end to end 0.76
    # and 0.83 of the in-process rate at 128, 0.67 to 0.73 at 64 (fewer transactions: the
    # broker's CPU a text fell from 1.0-1.8 ms to 0.7). A small poll is one transaction.
    max_batch: int = Field(default=512, ge=1, description="texts polled at once")
    encode_batch: int = Field(
        default=128, ge=1, description="texts encoded at once, and committed in one transaction"
    )
    poll_timeout_ms: int = Field(default=100, ge=1)
    max_record_bytes: int = Field(default=DEFAULT_MAX_RECORD_BYTES, ge=1)
    max_text_chars: int = Field(default=DEFAULT_MAX_TEXT_CHARS, ge=1)

    @property
    def limits(self) -> TextLimits:
        return TextLimits(self.max_record_bytes, self.max_text_chars)


class AggregatorSettings(CommonSettings):
    join_timeout_s: float = Field(default=10.0, gt=0, description="wait for missing scores")
    threshold: float = Field(default=0.0, ge=0.0, le=1.0, description="abstain below this")
    dedupe_horizon_s: float = Field(
        default=3600.0,
        gt=0,
        description="how long a decision missing a voter waits for its late score; older texts"
        " not pending are stale",
    )
    retry_window_s: float = Field(
        default=900.0,
        gt=0,
        description="how long a decided id is remembered (32 bytes), so a re-published text"
        " stays one result and another text under the id one dead letter",
    )
    max_batch: int = Field(default=2000, ge=1)
    poll_timeout_ms: int = Field(default=100, ge=1)
    group_id: str = "triage-aggregator"


class MonitorSettings(CommonSettings):
    """`triage monitor`: results joined with corrections, live quality per class version."""

    correction_horizon_s: float = Field(
        default=86400.0,
        gt=0,
        description="how long a result is kept waiting for its correction; a correction for"
        " a result older than this finds nothing (unknown_id)",
    )
    correction_wait_s: float = Field(
        default=600.0,
        gt=0,
        description="how long a correction that arrived before its result waits for it, then"
        " unknown_id",
    )
    quality_window_s: float = Field(
        default=3600.0, gt=0, description="the sliding window of the live figures"
    )
    max_batch: int = Field(default=2000, ge=1)
    poll_timeout_ms: int = Field(default=100, ge=1)
    group_id: str = "triage-monitor"


class ProducerSettings(CommonSettings):
    linger_ms: int = Field(default=5, ge=0)


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
    # A linger of 0 sends a request's text at once: a gateway's texts arrive one by one.
    linger_ms: int = Field(default=0, ge=0)


class SigningSettings(BaseSettings):
    """The model signing key alone, for `triage train` and any other code that saves models."""

    model_config = _ENV

    model_signing_key: SigningKey | None = None
