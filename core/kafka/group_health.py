"""Group-health watches: a consumer that stops being a working member of its group ends its session.

kafka-python can leave a consumer polling without ever completing a join, without a start
position, or with a join it started and stopped collecting, all silently and forever. The run
loop calls these watches after each poll: `finish_stranded_join` asks again for a join the
client left uncollected, and `PositionWatch` raises after a bounded time without a stable
membership or a start position, so the session ends and a new one (new clients) starts over.
"""

from __future__ import annotations

import logging
import time

from kafka import KafkaConsumer
from kafka.errors import KafkaTimeoutError
from kafka.structs import MemberState

from triage.core.records import Partition

log = logging.getLogger(__name__)


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
        self._without_position = _Stretch()
        self._unjoined = _Stretch()

    def check(self, consumer: KafkaConsumer) -> None:
        self._check_member(consumer)
        missing = consumer._subscription.missing_fetch_positions()
        if self._without_position.longer_than(bool(missing), self.limit_s):
            names = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(missing))
            raise KafkaTimeoutError(
                f"no start position for {names} after {self.limit_s:.0f}s"
                " (is a committed offset stuck unstable?)"
            )

    def _check_member(self, consumer: KafkaConsumer) -> None:
        coordinator = getattr(consumer, "_coordinator", None)
        unjoined = (
            coordinator is not None and bool(consumer.subscription()) and not coordinator.stable()
        )
        if self._unjoined.longer_than(unjoined, self.limit_s):
            assert coordinator is not None  # only a consumer with one can be unjoined
            raise KafkaTimeoutError(
                f"not a member of group {coordinator.config['group_id']} after {self.limit_s:.0f}s"
                " (coordinator not found, or the join never completed)"
            )


class _Stretch:
    """How long a condition has held without a break, timed from the first check that saw it."""

    def __init__(self) -> None:
        self._since: float | None = None

    def longer_than(self, holds: bool, limit_s: float) -> bool:
        if not holds:
            self._since = None
            return False
        now = time.monotonic()
        if self._since is None:
            self._since = now
        return now - self._since > limit_s


def positions(consumer: KafkaConsumer) -> dict[Partition, int | None]:
    """The next offset the consumer returns from each assigned partition (None: no position
    yet), read from its state without a request."""
    return {
        Partition(tp.topic, tp.partition): None if state.position is None else state.position.offset
        for tp, state in list(consumer._subscription.assignment.items())
    }
