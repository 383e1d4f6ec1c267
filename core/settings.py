"""Configuration of every triage service, from flags and `TRIAGE_*` environment variables.

One frozen settings class per service, composed: `ConnectionSettings` (cluster and security)
is a part of `CommonSettings` (plus the topic names, `settings.topics`, whose fields the
topology in `triage.core.topology` declares, and the runtime's tuning), which every service's
settings extend with its own tuning, so every service reads the same variables the same way and
a tool passes settings objects around instead of writing the environment. Flags win
over the environment; the environment wins over defaults. Credentials are `SecretStr` and
never appear in logs, errors or `repr`.
"""

from __future__ import annotations

import socket
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, create_model, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from triage.core import topology
from triage.core.errors import ConfigError as ConfigError
from triage.core.errors import OperatorError as OperatorError

ENV_CONFIG = SettingsConfigDict(
    env_prefix="TRIAGE_", frozen=True, extra="ignore", hide_input_in_errors=True
)  # hide_input_in_errors: a rejected value may be a password; errors name the field only.


class ConnectionSettings(BaseSettings):
    """Where the cluster is and how to log in: the same for every service and tool."""

    model_config = ENV_CONFIG

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


# `topic_texts` ... `topic_monitor_state` (TRIAGE_TOPIC_TEXTS ...): one field per topic of the
# topology, generated from it, so adding a topic does not mean editing the runtime's settings.
if TYPE_CHECKING:
    _TopicNames = BaseSettings
else:
    _TopicNames = create_model("_TopicNames", __base__=BaseSettings, **topology.settings_fields())
_given_names = attrgetter(*topology.settings_fields())


# How long a service's idle loop sleeps between its checks (stalls, heartbeats, timers): a poll
# returns as soon as records arrive, so this is not latency. Each wake-up costs the loop and the
# client's threads a round of hand-offs.
POLL_TIMEOUT_MS = 1000


class CommonSettings(_TopicNames):
    """The connection, topic names and the runtime's tuning: what every service shares."""

    model_config = ENV_CONFIG

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
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication_factor: int | None = Field(default=None, ge=1)

    instance_id: str = Field(
        default_factory=socket.gethostname,
        description="stable per running instance: a restart with the same id fences its zombie",
    )

    # The broker answers a waiting fetch as soon as committed data arrives (the transaction's
    # markers complete it), so this bounds only how often an idle consumer asks, and every ask
    # is work for the consumer's threads and the broker's. Measured on 2 cores: see
    # docs/performance.md ("at rest").
    fetch_max_wait_ms: int = Field(
        default=1000, ge=0, description="longest a fetch waits for data before returning empty"
    )

    # Each service hands work between threads (its loop, the producer's sender, the client's
    # network thread) several times a hop; a thread woken while another runs Python code waits
    # up to this long for the interpreter (Python's default: 5 ms). Measured, `triage bench
    # --via http --rate 50` (20 classes, medians of 3, alternating): 1 ms gave request p99 73
    # and 61 ms against 82 and 100 at 5 ms, pipeline p99 59 and 50 against 72 and 87, and 5 %
    # less CPU a text.
    switch_interval_ms: float = Field(
        default=1.0,
        gt=0,
        description="longest a thread waits for the Python interpreter while another runs"
        " (Python's own default is 5)",
    )

    # A transaction costs the same whatever it holds (`Service.commit_interval_ms`): measured at
    # 50 requests/s through `triage serve` (20 classes, colocated, alternating runs on the busy
    # 2-core machine), 40 ms cut the stack's CPU a text from 30.6 to 18.8 and 37.0 to 27.0 ms.
    # A text after a quiet spell does not wait; under steady traffic one waits at most this long
    # a stage.
    commit_interval_ms: int = Field(
        default=30,
        ge=0,
        le=60_000,
        description="at most one transaction this often: records polled sooner wait for the"
        " rest of it and share its transaction (0: one transaction a poll)",
    )

    compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = Field(
        default=None,
        description="of every record a triage process produces; none by default (measured:"
        " on a broker next door the CPU it costs outweighs the bytes it saves)",
    )

    stall_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="a service whose main loop makes no progress this long restarts itself, and"
        " one whose input partition has committed records it has not read for this long starts"
        " a new session",
    )
    # Named early enough to see before a join timeout turns a stall into partial results, late
    # enough that a broker failover (a new leader elected within a few seconds, measured here)
    # is not one.
    stall_after_s: float = Field(
        default=15.0,
        gt=0,
        description="an input partition that stops moving this long is a stall: logged with its"
        " partition and exported as triage_stalled_seconds",
    )
    # Triage's own transactions time out after 10 s at their coordinator, which then aborts
    # them: a transaction holding a partition six times that long is one nothing will end.
    hung_transaction_s: float = Field(
        default=60.0,
        ge=0,
        description="an open transaction that holds an input partition this long is aborted, as"
        " `kafka-transactions.sh abort` would (0: never)",
    )

    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)

    @property
    def topics(self) -> topology.Topics[str]:
        """Every topic's name in this deployment: `settings.topics.texts`, ..."""
        return topology.names(self.topic_prefix, _given_names(self))

    def group(self, name: str) -> str:
        return self.topic_prefix + name
