"""A classifier process on the registry: announce what it hosts, heartbeat, claim the vote.

At the start of every session a process announces every hosted version (`<label>@<version>`),
keeping `since_ms` when that version already served, and, when started in voting mode for a
class that has no class record or another voter, and not merely restarted, makes its version
the voter from `switch_delay_s` on (a new class, or a roll without shadow). A version demoted by
a promote keeps running as a shadow across restarts until it is stopped. Heartbeats are
announcements again, written in a batch's transaction every `heartbeat_s`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from triage.core.errors import ConfigError
from triage.core.kafka.admin import group_has_members
from triage.core.records import Output
from triage.core.registry.settings import RegistrySettings
from triage.core.registry.store import (
    announcement_key,
    claim_votes,
    class_output,
    read_registry,
    voter_records,
)
from triage.core.registry.view import RegistryView
from triage.core.runtime.clock import now_ms, when
from triage.schemas.codec import encode
from triage.schemas.models import Announcement, ClassifierMode, Owner

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Hosted:
    """A class version a process serves, what its model reads, and who owns it."""

    label: str
    version: str
    reads: str = "text"
    owner: Owner | None = None


class Announcer:
    def __init__(
        self,
        settings: RegistrySettings,
        hosted: list[Hosted],
        mode: ClassifierMode,
        group_id: str,
    ) -> None:
        self.settings = settings
        self.hosted = hosted
        self.mode = mode
        self.group_id = group_id
        self.versions = {h.label: h.version for h in hosted}
        self.since: dict[str, int] = {}
        self._last_heartbeat = float("-inf")  # due at once until the first announcement

    def announce(self, write: Callable[[list[Output]], None]) -> None:
        """Announce every hosted version and claim the vote where this start (not a restart)
        asks for it; `write` commits registry records in a transaction of their own."""
        s = self.settings
        view = read_registry(s)
        self._refuse_shared_group(view)
        now = now_ms()
        claims = {}
        for h in self.hosted:
            known = view.announcement(h.label, h.version)
            self.since[h.label] = known.since_ms if known else now
            # A restart of a version that was voting must not take the vote back from a
            # version promoted meanwhile; a first start, or one out of shadow, claims it.
            restarted = known is not None and known.mode is ClassifierMode.VOTING
            unclaimed = view.class_record(h.label) is None
            if self.mode is ClassifierMode.VOTING and (unclaimed or not restarted):
                claims[h.label] = h.version
        records = voter_records(view, claims, now + int(s.switch_delay_s * 1000))
        classes = [class_output(s, record, label) for label, record in records.items()]
        write(self.announcements() + classes)
        for label, record in records.items():
            span = record.voting[-1]
            log.info("%s@%s votes on texts from %s", label, span.version, when(span.since_ms))
        claim_votes(s, records, write, s.switch_delay_s)
        log.info("announced %s as %s", ", ".join(self.versions), self.mode.value)

    def heartbeat(self) -> list[Output]:
        """The announcements again when a heartbeat is due, else nothing."""
        if time.monotonic() - self._last_heartbeat > self.settings.heartbeat_s:
            return self.announcements()
        return []

    def announcements(self) -> list[Output]:
        self._last_heartbeat = time.monotonic()
        now = now_ms()
        return [
            Output(
                self.settings.topics.registry,
                announcement_key(h.label, h.version),
                encode(
                    Announcement(
                        label=h.label,
                        version=h.version,
                        mode=self.mode,
                        since_ms=self.since.get(h.label, now),
                        heartbeat_ms=now,
                        reads=h.reads,
                        group_id=self.group_id,
                        instance=self.settings.instance_id,
                        owner=h.owner,
                    )
                ),
            )
            for h in self.hosted
        ]

    def _refuse_shared_group(self, view: RegistryView) -> None:
        """Two versions of a class in one group would each score only part of the texts."""
        others = [
            a
            for (label, version), a in view.announcements().items()
            if a.group_id == self.group_id
            and self.versions.get(label, version) != version
            and not view.retired(label, version)
        ]
        if others and group_has_members(self.settings, self.group_id):
            a = others[0]
            raise ConfigError(
                f"{a.label}@{a.version} is running in consumer group {a.group_id} "
                f"(instance {a.instance}); stop it first, or start this version with "
                "--shadow (a group of its own) or --group"
            )
