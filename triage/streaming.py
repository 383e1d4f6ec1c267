"""The consume-transform-produce cycle every triage service runs, exactly once.

Outputs of a polled batch and the batch's input offsets are committed in one Kafka transaction
(KIP-98), with the consumer's group metadata so the broker fences a stale instance (KIP-447).
Any Kafka failure inside a session ends it: the open transaction is aborted and a new session
starts from the committed offsets, so a batch is either wholly visible or never was.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from triage import security
from triage.security import SecurityError
from triage.settings import ConfigError

log = logging.getLogger(__name__)

FATAL_ERRORS = (ConfigError,)


@dataclass(frozen=True, slots=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None


def next_offsets(batches: dict[TopicPartition, list]) -> dict[TopicPartition, int]:
    return {tp: records[-1].offset + 1 for tp, records in batches.items() if records}


def commit_batch(
    producer: KafkaProducer,
    consumer: KafkaConsumer | None,
    outputs: Iterable[Output],
    offsets: dict[TopicPartition, int],
) -> None:
    """Send `outputs` and commit `offsets` for `consumer`'s group in one transaction."""
    producer.begin_transaction()
    try:
        for out in outputs:
            producer.send(out.topic, key=out.key, value=out.value, partition=out.partition)
        if offsets and consumer is not None:
            producer.send_offsets_to_transaction(
                {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()},
                consumer.group_metadata(),
            )
        producer.commit_transaction()
    except BaseException:
        _abort_quietly(producer)
        raise


def _abort_quietly(producer: KafkaProducer) -> None:
    try:
        producer.abort_transaction()
    except Exception as exc:  # the session is ending anyway; the broker times it out
        log.debug("abort after failure also failed: %s", exc)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so loops finish their transaction and exit cleanly."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.info("received %s, stopping after the current batch", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def run_sessions(
    name: str, session: Callable[[threading.Event], None], stop: threading.Event
) -> None:
    """Run `session` until `stop`; restart it after a Kafka error, with growing backoff."""
    backoff = 0.5
    while not stop.is_set():
        started = time.monotonic()
        try:
            session(stop)
        except FATAL_ERRORS:
            raise
        except KafkaError as exc:
            if security.is_security_error(exc):
                # Retrying cannot fix credentials or a missing ACL: stop with one clear line.
                raise SecurityError(f"{name}: {security.describe(exc)}") from None
            if time.monotonic() - started > 30:
                backoff = 0.5
            log.warning("%s: Kafka error, restarting session in %.1fs: %r", name, backoff, exc)
            stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)
