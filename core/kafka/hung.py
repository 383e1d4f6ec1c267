"""Open transactions on a partition: the offsets they hold, who holds them, and their abort.

A `read_committed` reader stops at a partition's last stable offset: the first offset of the
oldest transaction still open there. A transaction whose producer died keeps that offset until
its coordinator times it out (triage's own producers: 10 s), and one the coordinator lost
track of keeps it for good, stalling every reader of the partition. `holders` asks the
partition's leader which producers have a transaction open there (DescribeProducers) and the
coordinators which transactional ids those producers are (ListTransactions); `abort` writes the
abort marker the way Kafka's `kafka-transactions.sh abort` does (WriteTxnMarkers to the leader
with the producer's id and epoch), which moves the last stable offset past it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec
from kafka.admin._transactions import AbortTransactionSpec
from kafka.protocol.consumer.offsets import IsolationLevel

from triage.core.records import Partition

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OpenTransaction:
    """A transaction open on one partition, as its leader describes it."""

    tp: Partition
    producer_id: int
    producer_epoch: int
    start_offset: int  # the first offset it wrote here: the last stable offset while it is open
    last_write_ms: int  # when the producer last wrote to this partition (its clock)
    coordinator_epoch: int  # of the last marker its coordinator wrote here (-1: none yet)
    transactional_id: str | None = None  # None: no coordinator knows the producer id

    def describe(self, now_ms: int | None = None) -> str:
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        who = repr(self.transactional_id) if self.transactional_id else "no transactional id"
        return (
            f"{self.tp.topic}[{self.tp.partition}] from offset {self.start_offset}: producer"
            f" {self.producer_id} epoch {self.producer_epoch} ({who}), last write"
            f" {max(0, now_ms - self.last_write_ms) / 1000:.0f}s ago"
        )


def stable_and_end(
    admin: KafkaAdminClient, partitions: Iterable[Partition], timeout_ms: int = 5_000
) -> dict[Partition, tuple[int, int]]:
    """Each partition's last stable offset and end (high watermark), from its leader."""
    latest = {TopicPartition(*tp): OffsetSpec.LATEST for tp in partitions}
    if not latest:
        return {}
    stable = admin.list_partition_offsets(
        latest, isolation_level=IsolationLevel.READ_COMMITTED, timeout_ms=timeout_ms
    )
    end = admin.list_partition_offsets(
        latest, isolation_level=IsolationLevel.READ_UNCOMMITTED, timeout_ms=timeout_ms
    )
    return {Partition(*tp): (stable[tp].offset, end[tp].offset) for tp in latest}


def holders(admin: KafkaAdminClient, partitions: Iterable[Partition]) -> list[OpenTransaction]:
    """Every transaction open on `partitions`, oldest first per partition."""
    wanted = [TopicPartition(*tp) for tp in partitions]
    if not wanted:
        return []
    found = [
        OpenTransaction(
            Partition(*tp),
            p.producer_id,
            p.producer_epoch,
            p.current_transaction_start_offset,
            p.last_timestamp,
            p.coordinator_epoch,
        )
        for tp, state in admin.describe_producers(wanted).items()
        for p in state.active_producers
        if p.current_transaction_start_offset >= 0
    ]
    names = _transactional_ids(admin, {t.producer_id for t in found})
    named = (replace(t, transactional_id=names.get(t.producer_id)) for t in found)
    return sorted(named, key=lambda t: (t.tp, t.start_offset))


def abort(admin: KafkaAdminClient, txn: OpenTransaction) -> None:
    """Write the abort marker of `txn` on its partition. The leader checks the producer's id
    and epoch, and refuses a marker older than the last its coordinator wrote there: so the
    marker carries that coordinator epoch (0 when none), as Kafka's own tool sends it."""
    spec = AbortTransactionSpec(
        TopicPartition(*txn.tp),
        txn.producer_id,
        txn.producer_epoch,
        max(txn.coordinator_epoch, 0),
    )
    admin.abort_transaction(spec)
    log.warning("aborted the transaction on %s", txn.describe())


def _transactional_ids(admin: KafkaAdminClient, producer_ids: set[int]) -> dict[int, str]:
    """Producer id → transactional id, for those a coordinator lists (best effort: a listing
    that fails leaves them unnamed, which is how a hung transaction looks anyway)."""
    if not producer_ids:
        return {}
    try:
        listed = admin.list_transactions(producer_id_filters=sorted(producer_ids))
    except Exception as exc:  # naming is a courtesy; the abort does not depend on it
        log.debug("listing transactions failed: %r", exc)
        return {}
    return {t.producer_id: t.transactional_id for rows in listed.values() for t in rows}
