"""Kafka client factories and topic setup shared by every triage service.

Services never build a kafka-python client themselves: they ask here, so bootstrap discovery,
security settings, idempotence and isolation level are decided in one place.
"""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import TopicAlreadyExistsError

from triage import kafka_local
from triage.settings import CommonSettings, ConfigError

log = logging.getLogger(__name__)


def bootstrap(settings: CommonSettings) -> str:
    """The configured cluster, else the one `triage kafka start` runs, else a clear error."""
    if settings.bootstrap_servers:
        return settings.bootstrap_servers
    local = kafka_local.read_bootstrap()
    if local:
        return local
    raise ConfigError(
        "no Kafka cluster: set TRIAGE_BOOTSTRAP_SERVERS (or --bootstrap-servers) "
        "or start a local one with `triage kafka start`"
    )


def connection(settings: CommonSettings) -> dict[str, Any]:
    """kafka-python keyword arguments for the connection and its security."""
    conf: dict[str, Any] = {
        "bootstrap_servers": bootstrap(settings).split(","),
        "security_protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism:
        conf["sasl_mechanism"] = settings.sasl_mechanism
        conf["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            conf["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        conf["ssl_check_hostname"] = settings.ssl_check_hostname
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(settings, key)
            if path is not None:
                conf[key] = str(path)
    return conf


def producer(settings: CommonSettings, **overrides: Any) -> KafkaProducer:
    conf = connection(settings) | {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "batch_size": 256 * 1024,
    }
    return KafkaProducer(**(conf | overrides))


def transactional_producer(
    settings: CommonSettings, transactional_id: str, **overrides: Any
) -> KafkaProducer:
    prod = producer(settings, transactional_id=transactional_id, **overrides)
    prod.init_transactions()
    return prod


def consumer(settings: CommonSettings, *topics: str, **overrides: Any) -> KafkaConsumer:
    conf = connection(settings) | {
        "enable_auto_commit": False,
        "isolation_level": "read_committed",
        "auto_offset_reset": "earliest",
    }
    return KafkaConsumer(*topics, **(conf | overrides))


def admin(settings: CommonSettings) -> KafkaAdminClient:
    return KafkaAdminClient(**connection(settings))


def ensure_topics(settings: CommonSettings) -> None:
    """Create triage's topics when missing; the registry and the state changelog are compacted."""
    rf = settings.topic_replication_factor or -1
    parts = settings.topic_partitions
    compacted = {"cleanup.policy": "compact"}
    wanted: dict[str, dict[str, Any]] = {
        name: {"num_partitions": parts, "replication_factor": rf}
        for name in (settings.texts, settings.scores, settings.labels, settings.dead_letters)
    }
    wanted[settings.registry] = {"num_partitions": 1, "replication_factor": rf,
                                 "configs": compacted}
    wanted[settings.aggregator_state] = {"num_partitions": parts, "replication_factor": rf,
                                         "configs": compacted}
    client = admin(settings)
    try:
        existing = set(client.list_topics())
        missing = {name: opts for name, opts in wanted.items() if name not in existing}
        if missing:
            try:
                client.create_topics(missing, wait_for_metadata=True)
            except TopicAlreadyExistsError:
                pass  # another service created it first
            log.info("created topics %s", ", ".join(missing))
    finally:
        client.close()
