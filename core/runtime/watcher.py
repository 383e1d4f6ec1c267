"""The stall watcher: a thread of each service that names its input partitions' stalls.

Every `interval_s` it asks the partitions' leaders for their last stable offsets and ends
(its own admin client, so a main loop stuck in the Kafka client is still watched), hands them
with the loop's positions to the pure `StallWatch`, and acts:

- every stall is logged once when it starts (its partition, its reason, its offset), again each
  minute it lasts, and when it ends, and `triage_stalled_seconds` shows it while it lasts;
- an `unread` stall past `stall_timeout_s` asks the loop for a new session (new clients);
- a `held` stall past `hung_transaction_s` aborts the transaction holding the partition, and
  says whose it was.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from triage.core.kafka import KafkaError, clients, group_health, hung
from triage.core.records import Batch, Partition
from triage.core.runtime import metrics
from triage.core.runtime.clock import now_ms
from triage.core.runtime.stalls import Offsets, Stall, StallWatch
from triage.core.settings import CommonSettings

log = logging.getLogger(__name__)

REPEAT_LOG_S = 60.0


class StallWatcher:
    def __init__(self, service: str, settings: CommonSettings, interval_s: float = 5.0) -> None:
        self.service, self.settings, self.interval_s = service, settings, interval_s
        self.watch = StallWatch(settings.stall_after_s)
        # Written by the main loop (a new dict each time), read here: no lock needed.
        self._positions: dict[Partition, int | None] = {}
        self._committing: tuple[int, dict[Partition, int]] | None = None
        self._logged: dict[tuple[str, int, str], float] = {}  # stall → seconds when last logged
        self.restart_reason: str | None = None
        self._stop = threading.Event()
        self._admin: Any = None
        self._thread = threading.Thread(target=self._run, name="stall watcher", daemon=True)
        metrics.STALLS.watch(service, lambda: self.watch.stalls(now_ms()))

    def start(self) -> StallWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    # -- called by the main loop ----------------------------------------------------------

    def polled(self, consumer: Any) -> None:
        self._positions = group_health.positions(consumer)

    def committing(self, batch: Batch | None) -> None:
        """A commit of `batch` starts (None: it ended)."""
        if batch is None:
            self._committing = None
            return
        first = {Partition(*tp): records[0].offset for tp, records in batch.items() if records}
        self._committing = (now_ms(), first)

    def session_ended(self) -> None:
        self._positions, self._committing, self.restart_reason = {}, None, None
        self.watch.reset()

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
                failing = False
            except Exception as exc:  # a broker away: the next check asks again
                if not failing:  # once a streak: a failover makes many
                    log.info("%s: cannot check for stalls (%r); retrying", self.service, exc)
                failing = True
                clients.close_quietly(self._admin)
                self._admin = None
        clients.close_quietly(self._admin)

    def check(self) -> list[Stall]:
        positions = self._positions
        if positions and self._admin is None:
            self._admin = clients.admin(self.settings)
        ends = hung.stable_and_end(self._admin, positions) if positions else {}
        offsets = {tp: Offsets(positions[tp], *ends[tp]) for tp in positions if tp in ends}
        since, first = self._committing or (None, {})
        stalls = self.watch.observe(now_ms(), offsets, first, since)
        self._report(stalls)
        for stall in stalls:
            self._act(stall)
        return stalls

    def _report(self, stalls: list[Stall]) -> None:
        current = {(s.topic, s.partition, s.reason): s for s in stalls}
        for key in self._logged.keys() - current.keys():
            log.info("%s: %s[%d] moves again (%s stall over)", self.service, *key)
            del self._logged[key]
        for key, stall in current.items():
            last = self._logged.get(key)
            if last is None or stall.seconds - last >= REPEAT_LOG_S:
                log.warning("%s: %s", self.service, stall.describe())
                self._logged[key] = stall.seconds

    def _act(self, stall: Stall) -> None:
        s = self.settings
        if stall.reason == "unread" and stall.seconds >= s.stall_timeout_s:
            self.restart_reason = stall.describe()
        elif (
            stall.reason == "held"
            and s.hung_transaction_s
            and stall.seconds >= s.hung_transaction_s
        ):
            self._abort_holder(stall)

    def _abort_holder(self, stall: Stall) -> None:
        tp = Partition(stall.topic, stall.partition)
        try:
            open_here = hung.holders(self._admin, [tp])
        except KafkaError as exc:
            log.warning(
                "%s: %s; cannot describe its producers: %r", self.service, stall.describe(), exc
            )
            return
        holder = next((t for t in open_here if t.start_offset == stall.offset), None)
        if holder is None:
            log.warning(
                "%s: %s, but its leader lists no transaction open at that offset",
                self.service,
                stall.describe(),
            )
            return
        log.error(
            "%s: held %.0fs (limit %.0fs): aborting the hung transaction on %s",
            self.service,
            stall.seconds,
            self.settings.hung_transaction_s,
            holder.describe(),
        )
        try:
            hung.abort(self._admin, holder)
        except KafkaError as exc:  # e.g. no CLUSTER_ACTION for this principal: say what to do
            log.error(
                "%s: the abort failed (%r); `triage transactions --abort` with an admin's"
                " credentials ends it",
                self.service,
                exc,
            )
