"""`triage transactions`: the transactions open on this deployment's topics, and their abort.

An operator's view of what the services' stall watchers act on by themselves: a transaction
that holds a partition's last stable offset blocks every `read_committed` reader behind it.
"""

from __future__ import annotations

from triage.core.kafka import clients, hung
from triage.core.kafka.hung import OpenTransaction
from triage.core.records import Partition
from triage.core.runtime.clock import now_ms
from triage.core.settings import CommonSettings


def open_transactions(settings: CommonSettings) -> list[OpenTransaction]:
    """Every transaction open on a partition of the deployment's topics."""
    admin = clients.admin(settings)
    try:
        names = set(admin.list_topics())
        wanted = [name for _, name in settings.topics.items() if name in names]
        partitions = [
            Partition(t["name"], p["partition_index"])
            for t in admin.describe_topics(wanted)
            for p in t["partitions"]
        ]
        return hung.holders(admin, partitions)
    finally:
        clients.close_quietly(admin)


def abort_older_than(
    settings: CommonSettings, found: list[OpenTransaction], older_than_s: float
) -> list[OpenTransaction]:
    """Abort those of `found` whose producer last wrote `older_than_s` ago or more."""
    cutoff = now_ms() - older_than_s * 1000
    stale = [t for t in found if t.last_write_ms <= cutoff]
    if not stale:
        return []
    admin = clients.admin(settings)
    try:
        for txn in stale:
            hung.abort(admin, txn)
    finally:
        clients.close_quietly(admin)
    return stale
