"""Kafka client factories: the one place a kafka-python client is built.

Nothing outside the runtime builds a client: it asks here, so the connection, security
settings, idempotence and isolation level are decided in one place. Before the first client of
a process, and after any client fails to start, the connection is probed once (`security`) so
that refused credentials or an untrusted certificate end the command with one clear line
instead of a bootstrap timeout.
"""

from __future__ import annotations

import logging
import selectors
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.codec import has_gzip, has_lz4, has_snappy, has_zstd
from kafka.errors import KafkaError, TopicAuthorizationFailedError

from triage.core.errors import ConfigError
from triage.core.kafka import security
from triage.core.settings import CommonSettings, ConnectionSettings

log = logging.getLogger(__name__)


def bootstrap(settings: ConnectionSettings) -> str:
    """The configured cluster, or a clear error (library code never guesses one)."""
    if settings.bootstrap_servers:
        return settings.bootstrap_servers
    raise ConfigError(
        "no Kafka cluster: set TRIAGE_BOOTSTRAP_SERVERS (or --bootstrap-servers) "
        "or start a local one with `triage kafka start`"
    )


class _Selector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """The platform's selector, except that a file object it does not hold is a plain KeyError.

    kafka-python looks a socket up (`get_key`) before each wait on it, and not holding it is the
    usual answer; the standard library's KeyError formats the socket's repr, a getsockname and a
    getpeername system call and a string, for an error that is caught and dropped. Measured in a
    classifier at 50 texts/s: 8 of each system call a text.
    """

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        try:
            return self._fd_to_key[self._fileobj_lookup(fileobj)]  # type: ignore[attr-defined,no-any-return]
        except KeyError:
            raise KeyError(fileobj) from None


def connection(settings: ConnectionSettings) -> dict[str, Any]:
    """kafka-python keyword arguments for the connection and its security."""
    security.check_settings(settings)
    conf: dict[str, Any] = {
        "bootstrap_servers": bootstrap(settings).split(","),
        "selector": _Selector,
        "security_protocol": settings.security_protocol,
        # Java's client default; kafka-python's is 30 s. Its attempts to reach a broker that is
        # down back off exponentially to that, so a broker back after a restart was not tried
        # again for up to 30 s: measured, a single-node restart (the broker up again after
        # 34 s) cost every service 53-91 s before its first new output, the last 18 s of it
        # in a bootstrap waiting out its backoff.
        "reconnect_backoff_max_ms": 1000,
    }
    if settings.security_protocol.startswith("SASL_"):
        password = security.sasl_password(settings)
        conf["sasl_mechanism"] = settings.sasl_mechanism
        conf["sasl_plain_username"] = settings.sasl_username
        conf["sasl_plain_password"] = password.get_secret_value() if password else None
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        conf["ssl_check_hostname"] = settings.ssl_check_hostname
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(settings, key)
            if path is not None:
                conf[key] = str(path)
        if settings.ssl_key_password is not None:
            conf["ssl_password"] = settings.ssl_key_password.get_secret_value()
    return conf


_CONNECTION_KEYS = frozenset(
    ["bootstrap_servers", "security_protocol", "sasl_mechanism", "sasl_plain_username",
     "sasl_plain_password", "ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password",
     "ssl_check_hostname"]
)  # fmt: skip
_Client = TypeVar("_Client")
# Connections a probe of this process has seen accepted: probed once, not per client.
_accepted: set[tuple[tuple[str, str], ...]] = set()
_probe_lock = threading.Lock()


def _start(factory: Callable[..., _Client], conf: dict[str, Any]) -> _Client:
    """Build a client; a refused login or certificate becomes a `SecurityError`."""
    probe_conf = {k: v for k, v in conf.items() if k in _CONNECTION_KEYS}
    key = tuple(sorted((k, repr(v)) for k, v in probe_conf.items()))
    with _probe_lock:
        if key not in _accepted and security.check_connection(probe_conf):
            _accepted.add(key)
    try:
        return factory(**conf)
    except KafkaError:
        with _probe_lock:
            _accepted.discard(key)
            security.check_connection(probe_conf)  # raises if the cause was security
        raise


# kafka-python's own client metrics (sensors updated on every request and record) are read by
# nothing here: triage exports its own. Off, they no longer cost a share of every transaction
# (7 % of a transactional producer's samples, py-spy, one-record transactions back to back).
_NO_CLIENT_METRICS = {"metrics_enabled": False}


def producer(settings: CommonSettings, **overrides: Any) -> KafkaProducer:
    conf = connection(settings.connection) | {
        **_NO_CLIENT_METRICS,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "compression_type": _compression(settings.compression_type),
    }
    return _start(KafkaProducer, conf | overrides)


def _compression(codec: str | None) -> str | None:
    available = {"gzip": has_gzip, "snappy": has_snappy, "lz4": has_lz4, "zstd": has_zstd}
    if codec is not None and not available[codec]():
        package = {"snappy": "python-snappy", "zstd": "zstandard"}.get(codec, codec)
        raise ConfigError(
            f"TRIAGE_COMPRESSION_TYPE={codec} needs the {package} package in this environment"
        )
    return codec


def transactional_producer(
    settings: CommonSettings, transactional_id: str, **overrides: Any
) -> KafkaProducer:
    # A session that cannot reach its transaction coordinator ends soon and starts over with
    # fresh connections and metadata: after a broker failover kafka-python can keep waiting on
    # the old coordinator for the whole default timeout (30s a request, 60s for init).
    # Right after a commit the coordinator answers the next transaction's AddPartitionsToTxn
    # with CONCURRENT_TRANSACTIONS until its markers are written; kafka-python retries after
    # retry_backoff_ms, 100 ms by default, which was most of a hop's latency (measured: p95 of a
    # transaction 113 ms at 100 ms, 34 ms at 20 ms). Java's client retries that case after 20 ms;
    # kafka-python's sender sleeps the whole backoff before every transactional retry, and a
    # transaction begun right after the last (a hop under steady traffic) meets it almost every
    # time. Measured, 50 back-to-back one-record transactions with offsets on the busy 2-core
    # machine, medians of 3 alternating runs: p50 31 ms at 20 ms, 18 ms at 5 ms.
    conf = {"request_timeout_ms": 10_000, "max_block_ms": 20_000, "retry_backoff_ms": 5}
    conf |= overrides
    prod = producer(settings, transactional_id=transactional_id, **conf)
    # No KIP-360 epoch bump in the middle of a transaction: kafka-python 3.0.12 bumps the epoch
    # when a send fails with InvalidProducerEpoch (seen on the changelog after a broker restart),
    # fails that send, forgets the transaction's partitions and carries on with the rest; the
    # batch's results can then commit without its changelog and be decided again. Made fatal
    # instead, the error ends the session, and the next session's producer fences this one and
    # aborts the whole transaction.
    prod._transaction_manager._supports_epoch_bump = lambda: False
    try:
        prod.init_transactions()
    except KafkaError as exc:
        close_producer(prod, timeout_s=1)
        if security.is_security_error(exc):
            # kafka-python's error does not say which id: name it, and who was refused.
            line = security.describe(exc, settings.connection, resource=repr(transactional_id))
            raise security.SecurityError(line) from None
        raise
    return prod


def close_producer(producer: KafkaProducer, timeout_s: float = 5.0) -> None:
    """Close `producer`; when its pending requests cannot finish, stop its I/O thread anyway.

    kafka-python's close() flushes first and raises when the flush times out, before it stops
    the sender thread. A sender left running after its session ended keeps retrying that
    session's requests behind the back of the next session's producer.
    """
    try:
        producer.close(timeout=timeout_s)
        return
    except KafkaError as exc:
        log.warning(
            "producer did not close in %.0fs (%r): dropping what it had not sent", timeout_s, exc
        )
    sender = producer._sender
    if sender is not None:
        sender.force_close()
        sender.join(timeout_s)
    producer._closed = True  # its __del__ must not try (and fail) to flush again


def close_quietly(*clients: Any) -> None:
    """Close every client of an ending session; one failing close must not skip the others."""
    for client in clients:
        if client is None:
            continue
        try:
            if isinstance(client, KafkaProducer):
                # What a transactional producer has not sent belongs to a transaction that is
                # committed already or aborted: nothing worth the wait for a broker that is gone
                # (measured: 5 s of every session restart while the broker was down).
                close_producer(client, 1.0 if client.config.get("transactional_id") else 5.0)
            else:
                client.close()
        except Exception as exc:  # the session is over either way; say so and go on
            log.warning("closing %s failed: %r", type(client).__name__, exc)


class _Consumer(KafkaConsumer):
    """A KafkaConsumer that raises on a topic it may not even see, instead of waiting forever.

    kafka-python raises for a topic it may describe but not read; one it may not describe
    it only logs, at every metadata refresh, while the consumer waits for partitions.
    """

    def poll(self, *args: Any, **kwargs: Any) -> Any:
        records = super().poll(*args, **kwargs)
        wanted = self.subscription() or {tp.topic for tp in self.assignment()}
        # kafka-python 3 keeps the topics its last metadata response refused here.
        refused = wanted & self._cluster.unauthorized_topics
        if refused:
            raise TopicAuthorizationFailedError(", ".join(sorted(refused)))
        return records


def consumer(settings: CommonSettings, *topics: str, **overrides: Any) -> KafkaConsumer:
    conf = connection(settings.connection) | {
        **_NO_CLIENT_METRICS,
        "enable_auto_commit": False,
        "isolation_level": "read_committed",
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
    }
    return _start(lambda **kw: _Consumer(*topics, **kw), conf | overrides)


def admin(settings: CommonSettings) -> KafkaAdminClient:
    return _start(KafkaAdminClient, connection(settings.connection))
