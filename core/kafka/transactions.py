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
from kafka.structs import ConsumerGroupMetadata, MemberState, OffsetAndMetadata, TopicPartition

from triage.core.liveness import beat
from triage.core.records import Output, Partition

log = logging.getLogger(__name__)

TRANSACTION_STEP_TIMEOUT_S = 20.0


def commit_batch(
    producer: KafkaProducer,
    consumer: KafkaConsumer | None,
    outputs: Iterable[Output],
    offsets: Mapping[Partition, int],
    timeout_s: float = TRANSACTION_STEP_TIMEOUT_S,
) -> None:
    """Send `outputs` and commit `offsets` for `consumer`'s group in one transaction.

    Each step is bounded by `timeout_s`: kafka-python waits without limit for the offset and
    commit requests, and after a broker restart such a request can stay unanswered forever.
    A timeout raises, the session ends, and the next session's producer (same transactional
    id) fences this one and aborts the open transaction.
    """
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
                timeout_s,
            )
        _check_sent(producer, sent, timeout_s)
        _await(producer, producer._transaction_manager.begin_commit(), "committing", timeout_s)
    except BaseException:
        _abort_quietly(producer)
        raise


def release_stale_offsets(
    producer: KafkaProducer, group_id: str, timeout_s: float = TRANSACTION_STEP_TIMEOUT_S
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


def _await(producer: KafkaProducer, result, what: str, timeout_s: float) -> None:
    beat()  # every wait here is bounded: a step that starts one is progress
    producer._sender.wakeup()
    if not result.wait(timeout_ms=timeout_s * 1000):
        raise KafkaTimeoutError(f"{what} took longer than {timeout_s:.0f}s")


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


def finish_stranded_join(consumer: KafkaConsumer) -> bool:
    """Rejoin a group whose join kafka-python 3.0.12 started and then stopped collecting.

    A join that the metadata check started is left in flight when a poll's time runs out; its
    own assignment then makes `need_rejoin()` false, so no later poll awaits it: the member
    stays REBALANCING with heartbeats off until the coordinator expires it, and never rejoins.
    Seen in CI, read in the broker logs: "re-joining group during Stable", the SyncGroup
    answered, then "removing it from the group on heartbeat expiration" 10 s later, and every
    classifier of a fault test out of its group for minutes. Asking for a rejoin makes the next
    poll await the join (or send a new one). Returns whether it asked."""
    coordinator = getattr(consumer, "_coordinator", None)
    if (
        coordinator is None
        or coordinator.state is not MemberState.REBALANCING
        or getattr(coordinator, "_join_task", None) is None
        or coordinator.need_rejoin()
    ):
        return False
    log.warning(
        "group %s: a join was left uncollected by the client; rejoining",
        coordinator.config["group_id"],
    )
    coordinator.request_rejoin()
    return True


class PositionWatch:
    """Ends a session whose consumer has gone `limit_s` without a start position somewhere, or
    without being a stable member of its group.

    kafka-python retries an offset fetch that keeps failing (UNSTABLE_OFFSET_COMMIT, for one)
    silently and forever; a new session releases stale offsets first and asks again. It can
    also go on polling without ever joining its group (seen: one of three classifier processes
    started at once spun in the coordinator lookup for over ten minutes, its group with no
    member); a new session with new clients joins.
    """

    def __init__(self, limit_s: float = 60.0) -> None:
        self.limit_s = limit_s
        self._since: float | None = None
        self._unjoined_since: float | None = None

    def check(self, consumer: KafkaConsumer) -> None:
        self._check_member(consumer)
        missing = consumer._subscription.missing_fetch_positions()
        if not missing:
            self._since = None
            return
        now = time.monotonic()
        if self._since is None:
            self._since = now
        elif now - self._since > self.limit_s:
            names = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(missing))
            raise KafkaTimeoutError(
                f"no start position for {names} after {self.limit_s:.0f}s"
                " (is a committed offset stuck unstable?)"
            )

    def _check_member(self, consumer: KafkaConsumer) -> None:
        coordinator = getattr(consumer, "_coordinator", None)
        if coordinator is None or not consumer.subscription() or coordinator.stable():
            self._unjoined_since = None
            return
        now = time.monotonic()
        if self._unjoined_since is None:
            self._unjoined_since = now
        elif now - self._unjoined_since > self.limit_s:
            raise KafkaTimeoutError(
                f"not a member of group {coordinator.config['group_id']} after {self.limit_s:.0f}s"
                " (coordinator not found, or the join never completed)"
            )
