"""Kafka transactions: a batch's outputs and its input offsets committed together, exactly once.

Outputs of a polled batch and the batch's input offsets are committed in one Kafka transaction
(KIP-98), with the consumer's group metadata so the broker fences a stale instance (KIP-447).
Every step waits a bounded time: a timeout raises, the session ends, and the next session's
producer (same transactional id) fences this one and aborts the open transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.structs import ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition

from triage.core.liveness import beat
from triage.core.records import Output, Partition

log = logging.getLogger(__name__)

# Measured in the 3-node leader-kill test (tests/integration/test_faults.py): after a partition
# leader or coordinator is killed -9, kafka-python 3.0.12's transaction steps in flight (sending
# offsets, committing) do not complete even once the controller has moved leadership (5 s on
# the local cluster). With 20 s a step, every unit's first new score came 21-28 s after the
# kill, and the new session each then started was ready in 1-3 s; with 8 s a step, 8-20 s, the
# worst where the sends, the offsets and the commit each waited their 8 s in turn. So the 8 s
# bound the whole transaction: past the transaction's own 10 s timeout its coordinator fences
# it anyway. In steady traffic a transaction takes milliseconds (seconds on an overloaded
# machine), so this ends only one that is stuck.
TRANSACTION_TIMEOUT_S = 8.0


def commit_batch(
    producer: KafkaProducer,
    consumer: KafkaConsumer | None,
    outputs: Iterable[Output],
    offsets: Mapping[Partition, int],
    timeout_s: float = TRANSACTION_TIMEOUT_S,
) -> None:
    """Send `outputs` and commit `offsets` for `consumer`'s group in one transaction.

    The transaction is bounded by `timeout_s`, every step taking what is left: kafka-python
    waits without limit for the offset and commit requests, and after a broker failure such a
    request can stay unanswered forever. A timeout raises, the session ends, and the next
    session's producer (same transactional id) fences this one and aborts the transaction.
    """
    deadline = time.monotonic() + timeout_s
    producer.begin_transaction()
    try:
        sent = [
            producer.send(out.topic, key=out.key, value=out.value, partition=out.partition)
            for out in outputs
        ]
        if offsets and consumer is not None:
            manager = producer._transaction_manager
            _await(
                producer,
                manager.send_offsets_to_transaction(
                    {
                        TopicPartition(*tp): OffsetAndMetadata(offset, "", -1)
                        for tp, offset in offsets.items()
                    },
                    consumer.group_metadata(),
                ),
                "sending offsets to the transaction",
                _left(deadline),
            )
        _check_sent(producer, sent, _left(deadline))
        _await(
            producer, producer._transaction_manager.begin_commit(), "committing", _left(deadline)
        )
    except BaseException:
        _abort_quietly(producer)
        raise


def release_stale_offsets(
    producer: KafkaProducer, group_id: str, timeout_s: float = TRANSACTION_TIMEOUT_S
) -> None:
    """Abort one empty transaction that holds `group_id`'s offsets, before consuming.

    The abort marker this transactional id writes to the group's offsets partition discards
    any offset commit a previous session of the same id left pending there. Across a broker
    restart such a commit can outlive its transaction; the group's next consumer then waits on
    UNSTABLE_OFFSET_COMMIT for as long as it stays, and nothing else clears it.
    """
    producer.begin_transaction()
    try:
        _await(
            producer,
            producer._transaction_manager.send_offsets_to_transaction(
                {}, ConsumerGroupMetadata(group_id, -1, "", None)
            ),
            "adding the group's offsets to the transaction",
            timeout_s,
        )
    finally:
        _await(producer, producer._transaction_manager.begin_abort(), "aborting", timeout_s)


def _left(deadline: float) -> float:
    """Seconds left before `deadline`, at least a moment (a step is always tried)."""
    return max(0.05, deadline - time.monotonic())


def _await(producer: KafkaProducer, result, what: str, timeout_s: float) -> None:
    beat()  # every wait here is bounded: a step that starts one is progress
    producer._sender.wakeup()
    if not result.wait(timeout_ms=timeout_s * 1000):
        raise KafkaTimeoutError(
            f"{what}: not done in the {timeout_s:.1f}s its transaction had left"
        )


def _check_sent(producer: KafkaProducer, sent: list, timeout_s: float) -> None:
    """Raise unless every output of the transaction was written.

    kafka-python commits a transaction even when one of its sends failed for good (a batch
    past its delivery timeout fails without any change of transaction state): the outputs
    would commit with a part missing. Java's producer refuses to commit then; so do we."""
    beat()
    producer.flush(timeout=timeout_s)
    failed = [future for future in sent if not future.is_done or future.failed()]
    if not failed:
        return
    errors = [future.exception for future in failed if future.is_done]
    log.warning(
        "%d of %d outputs not written (%r): not committing", len(failed), len(sent), errors[:1]
    )
    if errors and isinstance(errors[0], KafkaError):
        raise errors[0]  # as it is: an authorization error must stay one
    raise KafkaTimeoutError(f"{len(failed)} of {len(sent)} outputs not acknowledged in time")


def _abort_quietly(producer: KafkaProducer) -> None:
    try:
        _await(producer, producer._transaction_manager.begin_abort(), "aborting", 5)
    except Exception as exc:  # the session is ending anyway; the broker times it out
        log.debug("abort after failure also failed: %s", exc)
