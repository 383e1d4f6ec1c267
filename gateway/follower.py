"""The gateway's reading thread: committed results, dead letters and the registry, as they come.

One group-less reader follows the `labels` and dead-letter topics from the moment the gateway
started and feeds every outcome to the `ResultIndex`, waking the requests that wait for it; a
registry reader keeps a `RegistryView` for `/v1/classifiers` and `/readyz`. The outcomes of
each poll are handed on in one call (`deliver`, which the gateway makes one hop to its event
loop): the index and its waiters are touched by the event loop alone, so no request ever waits
on a lock this thread holds. Each instance reads
every result: its cost grows with the pipeline's total traffic, not with its own requests (it
decodes every result and dead letter), and its memory with `results_kept`.
A Kafka error ends the readers, marks the follower unhealthy (requests get 503) and starts them
again after a pause, so the gateway recovers without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from triage.core.kafka import KafkaError
from triage.core.kafka.reader import TopicReader
from triage.core.records import Partition
from triage.core.registry.store import RegistryReader
from triage.core.registry.view import RegistryView
from triage.core.runtime.clock import now_ms
from triage.core.runtime.metrics import observe_hop
from triage.core.settings import POLL_TIMEOUT_MS, CommonSettings
from triage.gateway.results import TextOutcome
from triage.schemas.codec import Reason, Rejected, decode_label
from triage.schemas.models import DeadLetter

log = logging.getLogger(__name__)

RETRY_S = 2.0
CHECK_S = 2.0  # how often the follower asks whether the cluster still answers


class Follower(threading.Thread):
    def __init__(
        self,
        settings: CommonSettings,
        deliver: Callable[[list[TextOutcome]], None],
    ) -> None:
        super().__init__(name="gateway-follower", daemon=True)
        self.settings = settings
        self.topics = self.settings.topics  # resolved once: names go with every record
        self.lock = (
            threading.Lock()
        )  # guards `view` (read by /v1/classifiers, never on a request's path)
        self.view = RegistryView()
        self._deliver = deliver
        self._stop = threading.Event()
        self.ready = threading.Event()  # reading, positioned after the gateway's start
        self.error: str | None = "not connected to Kafka yet"
        # Where reading got to: after a Kafka error the readers resume there, so no outcome
        # committed while they were down is missed.
        self._positions: dict[Partition, int] = {}

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except KafkaError as exc:
                self.ready.clear()
                self.error = f"Kafka unreachable: {exc}"
                log.warning("gateway: reading results failed, again in %.0fs: %r", RETRY_S, exc)
                self._stop.wait(RETRY_S)
            except Exception as exc:  # a bug or a configuration error: say it, keep trying
                self.ready.clear()
                self.error = f"cannot read results: {exc}"
                log.exception("gateway: reading results failed")
                self._stop.wait(RETRY_S)

    def _follow(self) -> None:
        s = self.settings
        outcomes = TopicReader(
            s,
            [s.topics.labels, s.topics.dead_letters],
            from_end=True,
            start_offsets=self._positions,
            # a cluster that stopped answering is noticed by `check` within these
            request_timeout_ms=int(CHECK_S * 2000),
            session_timeout_ms=int(CHECK_S * 1000),
            heartbeat_interval_ms=500,
        )
        try:
            registry = RegistryReader.open(s)
            try:
                self._read(outcomes, registry)
            finally:
                registry.close()
        finally:
            outcomes.close()

    def _read(self, outcomes: TopicReader, registry: RegistryReader) -> None:
        registry.catch_up()
        with self.lock:
            self.view = registry.view
        self.error = None
        self.ready.set()
        log.info("gateway: following %s and %s", self.topics.labels, self.topics.dead_letters)
        checked = time.monotonic()
        while not self._stop.is_set():
            taken = []
            for record in outcomes.poll(timeout_ms=POLL_TIMEOUT_MS):
                if (outcome := self._take(record.topic, record.value)) is not None:
                    taken.append(outcome)
                self._positions[Partition(record.topic, record.partition)] = record.offset + 1
            if taken:
                self._deliver(taken)
            # The lock is held only to apply what was read, never while Kafka answers.
            if changes := registry.fetch():
                with self.lock:
                    registry.apply(changes)
            if time.monotonic() - checked > CHECK_S:
                outcomes.check()
                checked = time.monotonic()

    def _take(self, topic: str, value: bytes | None) -> TextOutcome | None:
        outcome = None if value is None else _outcome(topic == self.topics.labels, value)
        if outcome is not None and outcome.result is not None:
            observe_hop("decided_to_read", now_ms(), (outcome.result.decided_at_ms,))
        return outcome

    def stop(self) -> None:
        self._stop.set()


def _outcome(is_label: bool, value: bytes) -> TextOutcome | None:
    if is_label:
        label = decode_label(value)
        return None if isinstance(label, Rejected) else TextOutcome(result=label)
    try:
        letter = DeadLetter.model_validate_json(value)
    except ValueError:
        return None
    if letter.reason == Reason.DUPLICATE_ID:
        # It refuses a second text under the id, never the id's own outcome (its first text's
        # result): a request whose text differs from that result's is answered 409.
        return None
    return TextOutcome(refused=letter) if letter.id else None
