"""The one run loop under every service: consume → step → produce and commit, exactly once.

A service says what it consumes and what it does to a batch (`Service.process`); the
`Application` owns everything else, the same for every service: the Kafka clients of a session,
fencing by transactional id, the release of stale offset commits, one transaction per polled
batch holding the outputs and the input offsets, per-partition state restored from a compacted
changelog on assignment and written back in the batch's transaction, the position watch, the
liveness watchdog, signals, and the loop's metrics. Any Kafka error ends the session: its
transaction is aborted and a new session starts from the committed offsets, so a batch is either
wholly visible or never was. A credential or ACL error stops the service with one line.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

from threadpoolctl import threadpool_limits

from triage.core import topology
from triage.core.errors import ConfigError
from triage.core.kafka import (
    KafkaError,
    KafkaTimeoutError,
    clients,
    group_health,
    security,
    topics,
    transactions,
)
from triage.core.kafka.reader import TopicReader
from triage.core.kafka.security import SecurityError
from triage.core.liveness import beat, settle_heap, watch
from triage.core.records import Batch, Output, Partition, Record, chunks_of, next_offsets
from triage.core.runtime import metrics
from triage.core.runtime.clock import now_ms
from triage.core.runtime.watcher import StallWatcher
from triage.core.settings import CommonSettings

log = logging.getLogger(__name__)

# A changelog partition that stops delivering records this long before its end ends the session
# (and so the restore is retried from scratch): deciding with part of the state could double.
RESTORE_STALL_S = 30.0


class PartitionState(Protocol):
    """A service's state of one input partition, backed by the same partition of its changelog."""

    def restore(self, key: bytes, value: bytes | None) -> None:
        """Apply one changelog record (replayed in order on assignment)."""

    def changes(self) -> Mapping[bytes, bytes | None]:
        """What changed since the last call, to write to the changelog (None: a tombstone)."""


class Session:
    """What a service may use while its session lasts; closed with it."""

    def __init__(self, settings: CommonSettings, producer: Any) -> None:
        self.settings = settings
        self._producer = producer
        self._readers: list[TopicReader] = []

    def write(self, outputs: list[Output]) -> None:
        """Produce `outputs` in a transaction of their own (outside any batch)."""
        transactions.commit_batch(self._producer, None, outputs, {})

    def reader(self, topic: str, partitions: Iterable[int] | None = None) -> TopicReader:
        """A reader of `topic` from its start, closed when the session ends."""
        reader = TopicReader(self.settings, topic, partitions)
        self._readers.append(reader)
        return reader

    def close(self) -> None:
        clients.close_quietly(*self._readers)
        self._readers.clear()


class Service:
    """A step on the runtime. Override what applies; the defaults do nothing.

    `inputs` are consumed as one consumer group (`group_id`); `outputs` are the topics the
    steps produce to (their metadata is fetched before the first batch). A stateful service
    names a compacted `changelog` topic with as many partitions as its inputs and returns a
    `PartitionState` from `assign`. A stateless service whose step costs far more than a commit
    sets `overlap_chunk`: a polled batch larger than that is processed a chunk at a time, one
    transaction a chunk, and each chunk's transaction commits in a thread of its own while the
    next chunk is processed. A `static_member` keeps its partitions through a restart
    under the same instance id (Kafka's static membership): no rebalance, no wait for the dead
    process's session to expire, but a clean stop does not hand its partitions on until then.
    """

    name = "service"
    group_id = ""
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    changelog: str | None = None
    max_batch = 500
    poll_timeout_ms = 1000
    # At most one transaction with records this often (0: one a poll); records polled sooner
    # wait for the rest of the interval (`Gathering`). A transaction costs the same whatever it
    # holds (five client round trips, markers, two transaction-log writes), as under Kafka
    # Streams' `commit.interval.ms`; unlike it, a text after a quiet spell does not wait.
    commit_interval_ms = 0
    producer_overrides: Mapping[str, Any] = {}
    consumer_overrides: Mapping[str, Any] = {}
    static_member = False
    overlap_chunk: int | None = None

    def open(self, session: Session) -> None:
        """A session starts: before the first poll (announce, open side readers)."""

    def process(self, batch: Batch, now_ms: int) -> list[Output]:
        """The step: one polled batch (maybe empty) → what to produce in its transaction."""
        return []

    def committed(self) -> None:
        """The outputs of a `process` call are committed: count them in the metrics. Called
        once for every `process` call, in order, but with `overlap_chunk` only after the next
        chunk's `process` ran."""

    def close(self) -> None:
        """The session ended (its clients are closed)."""

    def assign(self, partition: int) -> PartitionState | None:
        """A partition is now ours: its state, to be restored from the changelog."""
        return None

    def revoke(self, partition: int) -> None:
        """A partition is no longer ours: drop its state."""


class Application:
    def __init__(self, service: Service, settings: CommonSettings) -> None:
        self.service = service
        self.settings = settings
        self.states: dict[int, PartitionState] = {}
        # Assigned in the last poll's rebalance listener, changelog not replayed yet (the
        # listener only notes them: kafka-python logs and swallows what a listener raises).
        self._unrestored: dict[int, PartitionState] = {}
        if service.overlap_chunk is not None and service.changelog is not None:
            raise ValueError(f"{service.name}: a service with a changelog cannot overlap commits")
        self._committer: ThreadPoolExecutor | None = None
        self._stalls = StallWatcher(service.name, settings)
        self._gathering = Gathering(service.commit_interval_ms, service.max_batch)

    def run(self, stop: threading.Event) -> None:
        """Serve until `stop`, in sessions; returns after the batch in flight is committed."""
        # One BLAS thread: a service's matrix products are a batch's worth (77 heads over 64
        # texts' embeddings), and OpenBLAS's second thread only waits for the first, spinning
        # while another process holds the core it needs. Measured, 64 × 896 × 77 in float64
        # beside one busy process: 1.4 ms of CPU on two BLAS threads, 0.28 ms on one.
        self._blas = threadpool_limits(limits=1, user_api="blas")
        sys.setswitchinterval(self.settings.switch_interval_ms / 1000)
        metrics.serve(self.settings)
        topics.ensure_topics(self.settings)
        self._stalls.start()
        try:
            run_sessions(self.service.name, self._session, stop, self.settings.stall_timeout_s)
        finally:
            self._stalls.stop()

    def _session(self, stop: threading.Event) -> None:
        s, svc = self.settings, self.service
        member_id = topology.member_id(svc.group_id, s.instance_id)
        producer = clients.transactional_producer(
            s, member_id, transaction_timeout_ms=10_000, **svc.producer_overrides
        )
        member = {"group_instance_id": member_id} if svc.static_member else {}
        consumer = clients.consumer(
            s,
            client_id=member_id,  # names the instance in the group's description
            group_id=svc.group_id,
            max_poll_records=svc.max_batch,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
            **member,
            **svc.consumer_overrides,
        )
        session = Session(s, producer)
        positions = group_health.PositionWatch()
        if svc.overlap_chunk is not None:
            self._committer = ThreadPoolExecutor(1, thread_name_prefix=f"{svc.name} commits")
        try:
            transactions.release_stale_offsets(producer, svc.group_id)
            topics.know_topics(producer, *svc.outputs, *filter(None, [svc.changelog]))
            svc.open(session)
            topics.subscribe(
                consumer, list(svc.inputs), topics.listener(self._assigned, self._revoked)
            )
            log.info("%s joined group %s, consuming %s", svc.name, svc.group_id, svc.inputs)
            while not stop.is_set():
                beat()
                wait_ms = self._gathering.wait_ms(svc.poll_timeout_ms, time.monotonic())
                polled = consumer.poll(timeout_ms=wait_ms)
                group_health.finish_stranded_join(consumer)
                self._stalls.polled(consumer)
                if self._stalls.restart_reason:
                    raise KafkaTimeoutError(f"{self._stalls.restart_reason}; a new session")
                self._restore_assigned()
                if not polled:
                    positions.check(consumer)
                batch = self._gathering.add(polled, time.monotonic())
                if batch is not None:
                    self._step(batch, producer, consumer)
            if self._gathering.pending:  # stopping: what was gathered is committed, not dropped
                self._step(self._gathering.take(), producer, consumer)
        finally:
            self._gathering.take()  # a failed session's batch is read again by the next one
            if self._committer is not None:
                self._committer.shutdown()  # a commit in flight ends before the clients close
                self._committer = None
            clients.close_quietly(consumer, producer)
            self._stalls.session_ended()
            session.close()
            svc.close()
            for partition in [*self.states, *self._unrestored]:
                self._revoked([Partition("", partition)])

    def _step(self, batch: Batch, producer: Any, consumer: Any) -> None:
        svc = self.service
        if svc.changelog is not None:
            # Revoked during this poll: the next owner replays it from the committed offsets.
            batch = {tp: rs for tp, rs in batch.items() if tp.partition in self.states}
        chunk = svc.overlap_chunk
        if self._committer is not None and chunk and sum(map(len, batch.values())) > chunk:
            self._step_overlapped(batch, producer, consumer)
            return
        outputs = svc.process(batch, now_ms())
        outputs += self._changelog()
        self._commit(batch, outputs, producer, consumer)
        svc.committed()

    def _step_overlapped(self, batch: Batch, producer: Any, consumer: Any) -> None:
        """A batch a chunk at a time: the committer thread commits each chunk while this thread
        processes the next. No poll happens before the last chunk is committed, so the group
        cannot move the batch's partitions under a commit in flight."""
        svc, committer = self.service, self._committer
        assert svc.overlap_chunk is not None and committer is not None
        pending: Future[None] | None = None
        try:
            for chunk in chunks_of(batch, svc.overlap_chunk):
                outputs = svc.process(chunk, now_ms())
                if pending is not None:
                    pending.result()  # raises what the commit raised: the session ends
                    svc.committed()
                pending = committer.submit(self._commit, chunk, outputs, producer, consumer)
            assert pending is not None
            pending.result()
            svc.committed()
        finally:
            if pending is not None:
                wait([pending])  # never leave a commit running into the next session

    def _commit(self, batch: Batch, outputs: list[Output], producer: Any, consumer: Any) -> None:
        offsets = next_offsets(batch)
        if outputs or offsets:
            self._stalls.committing(batch)
            try:
                transactions.commit_batch(producer, consumer, outputs, offsets)
            finally:
                self._stalls.committing(None)
            metrics.count_batch(self.service.name, batch, outputs)

    def _changelog(self) -> list[Output]:
        topic = self.service.changelog
        if topic is None:
            return []
        return [
            Output(topic, key, value, partition)
            for partition, state in self.states.items()
            for key, value in state.changes().items()
        ]

    def _assigned(self, partitions: list[Partition]) -> None:
        """In kafka-python's rebalance listener: only note the new partitions' states."""
        known = self.states.keys() | self._unrestored.keys()
        for partition in sorted({tp.partition for tp in partitions} - known):
            state = self.service.assign(partition)
            if state is not None:
                self._unrestored[partition] = state

    def _restore_assigned(self) -> None:
        """Replay the changelog of the partitions the last poll assigned, before any of their
        records is processed. Here, not in the rebalance listener, where kafka-python's
        heartbeats wait for it: measured there, restoring 1,000,000 decisions took 14 s, past
        the 10 s session timeout; the group expelled the aggregator and it restored again,
        forever. A failure raises, and the session starts over."""
        if not self._unrestored:
            return
        new, self._unrestored = self._unrestored, {}
        try:
            restored = self._restore(new)
        except BaseException:
            for partition in new:
                self.service.revoke(partition)
            raise
        for partition, state in new.items():
            self.states[partition] = state
            log.info(
                "%s: partition %d assigned, %d changelog records restored (%s)",
                self.service.name,
                partition,
                restored[partition],
                state,
            )

    def _revoked(self, partitions: list[Partition]) -> None:
        self._gathering.drop(partitions)
        for partition in sorted({tp.partition for tp in partitions}):
            self.states.pop(partition, None)
            self._unrestored.pop(partition, None)
            self.service.revoke(partition)

    def _restore(self, states: dict[int, PartitionState]) -> dict[int, int]:
        """Replay the changelog partitions of `states`, all through one reader (measured: a
        reader per partition spent ~150 ms each opening, six partitions ~1 s)."""
        assert self.service.changelog is not None
        counts = dict.fromkeys(states, 0)
        with TopicReader(self.settings, self.service.changelog, list(states)) as reader:
            for record in reader.read_to_end(stall_s=RESTORE_STALL_S):
                if record.key is not None:
                    states[record.partition].restore(record.key, record.value)
                    counts[record.partition] += 1
        return counts


class Gathering:
    """At most one step with records an `interval_ms`: records polled sooner after the last such
    step are held and stepped (and committed) together when the interval is over, or as soon as
    `limit` are held. A text after a quiet spell goes at once; under steady traffic the texts of
    an interval share one transaction, so its cost stops growing with the rate before the
    machine saturates. No Kafka here; time is passed in."""

    def __init__(self, interval_ms: int, limit: int) -> None:
        self.interval_ms, self.limit = interval_ms, limit
        self.pending: dict[Partition, list[Record]] = {}
        self._count = 0
        self._last_s = float("-inf")  # when the last step with records was handed on

    def wait_ms(self, poll_ms: int, now_s: float) -> int:
        """How long the next poll may wait: no longer than the held records may."""
        if not self.pending:
            return poll_ms
        return max(0, min(poll_ms, round(self._left_ms(now_s))))

    def add(self, polled: Batch, now_s: float) -> Batch | None:
        """The batch to step now, or None while holding. An empty poll with nothing held is
        stepped as it is: a service's timers run on it."""
        if self.interval_ms <= 0:
            return polled
        for tp, records in polled.items():
            if records:
                self.pending.setdefault(Partition(*tp), []).extend(records)
                self._count += len(records)
        if not self.pending:
            return polled
        if self._left_ms(now_s) >= 0.5 and self._count < self.limit:  # to the ms
            return None
        self._last_s = now_s
        return self.take()

    def _left_ms(self, now_s: float) -> float:
        return self.interval_ms - (now_s - self._last_s) * 1000

    def take(self) -> dict[Partition, list[Record]]:
        """What is held, now handed on (or dropped)."""
        batch, self.pending, self._count = self.pending, {}, 0
        return batch

    def drop(self, partitions: Iterable[Partition]) -> None:
        """Forget what was gathered from partitions the group took away: their next owner
        reads them again from the committed offsets."""
        for tp in {Partition(*tp) for tp in partitions} & self.pending.keys():
            self._count -= len(self.pending.pop(tp))


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
    name: str,
    session: Callable[[threading.Event], None],
    stop: threading.Event,
    stall_limit_s: float | None = None,
) -> None:
    """Run `session` until `stop`; restart it after a Kafka error, with growing backoff.

    With `stall_limit_s`, a `Liveness` watchdog restarts the whole process when the loop makes
    no progress (no `beat()`) for that long. One such loop per process.
    """
    settle_heap()
    if stall_limit_s is not None:
        watch(name, stall_limit_s, stop)
    backoff = 0.5
    while not stop.is_set():
        started = time.monotonic()
        beat()
        try:
            session(stop)
        except ConfigError:
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
