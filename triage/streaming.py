"""The consume-transform-produce cycle every triage service runs, exactly once.

Outputs of a polled batch and the batch's input offsets are committed in one Kafka transaction
(KIP-98), with the consumer's group metadata so the broker fences a stale instance (KIP-447).
Any Kafka failure inside a session ends it: the open transaction is aborted and a new session
starts from the committed offsets, so a batch is either wholly visible or never was.
"""

from __future__ import annotations

import faulthandler
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.structs import ConsumerGroupMetadata, OffsetAndMetadata

from triage import security
from triage.security import SecurityError
from triage.settings import ConfigError

log = logging.getLogger(__name__)

TRANSACTION_STEP_TIMEOUT_S = 20.0

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
        for out in outputs:
            producer.send(out.topic, key=out.key, value=out.value, partition=out.partition)
        if offsets and consumer is not None:
            manager = producer._transaction_manager
            _await(
                producer,
                manager.send_offsets_to_transaction(
                    {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()},
                    consumer.group_metadata(),
                ),
                "sending offsets to the transaction",
                timeout_s,
            )
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


def _abort_quietly(producer: KafkaProducer) -> None:
    try:
        _await(producer, producer._transaction_manager.begin_abort(), "aborting", 5)
    except Exception as exc:  # the session is ending anyway; the broker times it out
        log.debug("abort after failure also failed: %s", exc)


class PositionWatch:
    """Ends a session whose consumer has gone `limit_s` without a start position somewhere.

    kafka-python retries an offset fetch that keeps failing (UNSTABLE_OFFSET_COMMIT, for one)
    silently and forever; a new session releases stale offsets first and asks again.
    """

    def __init__(self, limit_s: float = 60.0) -> None:
        self.limit_s = limit_s
        self._since: float | None = None

    def check(self, consumer: KafkaConsumer) -> None:
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


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so loops finish their transaction and exit cleanly."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.info("received %s, stopping after the current batch", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


class Liveness:
    """Restarts the process when its main loop stops making progress.

    Every blocking call of a session is bounded, so a loop that has not called `beat` for
    `limit_s` is stuck inside the Kafka client. (Seen after broker failovers: kafka-python's
    producer thread failing on its own state machine, "Invalid transition attempted from state
    READY to state READY", and the main thread then waiting forever.) The watchdog writes every
    thread's stack to stderr and runs the process's own command line again in its place: the
    fresh producer, with the same transactional id, fences the stuck one's transaction, and the
    fresh consumer resumes from the committed offsets, so nothing is lost or doubled. When the
    process was already stopping, it exits with status 1 instead.
    """

    def __init__(
        self,
        name: str,
        limit_s: float,
        stop: threading.Event,
        action: Callable[[], None] | None = None,
    ) -> None:
        self.name, self.limit_s, self.stop = name, limit_s, stop
        self.action = action or self._restart
        self._last = time.monotonic()
        self._thread = threading.Thread(target=self._watch, name="liveness", daemon=True)

    def start(self) -> Liveness:
        self._thread.start()
        return self

    def beat(self) -> None:
        self._last = time.monotonic()

    def stalled_for(self) -> float:
        return time.monotonic() - self._last

    def _watch(self) -> None:
        while self.stalled_for() <= self.limit_s:
            time.sleep(min(1.0, self.limit_s / 4))
        log.error(
            "%s: no progress for %.0fs, stuck in the Kafka client; thread stacks follow, then %s",
            self.name,
            self.limit_s,
            "exit" if self.stop.is_set() else "a restart of this process",
        )
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        self.action()

    def _restart(self) -> None:
        logging.shutdown()
        if self.stop.is_set():
            os._exit(1)
        os.execv(sys.executable, sys.orig_argv)


_liveness: Liveness | None = None


def beat() -> None:
    """Tell the process's watchdog (if any) that its main loop is making progress."""
    if _liveness is not None:
        _liveness.beat()


def settle_heap() -> None:
    """Move everything allocated so far (modules, models) out of the garbage collector's way.

    A full collection walks every tracked object: with the models and libraries loaded that
    took 40-75 ms, a pause for whatever batch the loop was carrying (measured in a co-located
    classifier at 200 texts/s). Frozen objects are never scanned, so a full collection only
    walks what the loop itself allocates.
    """
    gc.collect()
    gc.freeze()


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
    global _liveness
    settle_heap()
    if stall_limit_s is not None:
        _liveness = Liveness(name, stall_limit_s, stop).start()
    backoff = 0.5
    while not stop.is_set():
        started = time.monotonic()
        beat()
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
