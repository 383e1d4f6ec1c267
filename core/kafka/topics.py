"""Topics: creating triage's topics, subscribing once their metadata is known.

Services create the topics they need before their first session (under ACLs an administrator
may have created them instead); a subscription waits for the topics' partitions to be in the
client's metadata, so the group's first assignment is never empty.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kafka import (
    ConsumerRebalanceListener,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    TopicPartition,
)
from kafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    for_code,
)

from triage.core.kafka.clients import admin
from triage.core.settings import CommonSettings
from triage.core.topology import TOPICS

log = logging.getLogger(__name__)


def know_topics(producer: KafkaProducer, *topics: str) -> None:
    """Fetch the partitions of `topics` before the first send to them.

    kafka-python fetches a topic's metadata at its first send, so otherwise the first batch of
    every session waits one more round trip, with its texts.
    """
    for topic in topics:
        producer.partitions_for(topic)


def wanted_topics(settings: CommonSettings) -> dict[str, dict[str, Any]]:
    """Every topic of the topology with its `create_topics` options, under this deployment's
    names, partitions and replication factor (-1: the broker's default)."""
    rf = settings.topic_replication_factor or -1
    names = settings.topics
    wanted: dict[str, dict[str, Any]] = {}
    for field, topic in TOPICS.items():
        parts = 1 if topic.partitions == "one" else settings.topic_partitions
        opts: dict[str, Any] = {"num_partitions": parts, "replication_factor": rf}
        if topic.configs():
            opts["configs"] = topic.configs()
        wanted[names[field]] = opts
    return wanted


def ensure_topics(settings: CommonSettings) -> None:
    """Create triage's topics when missing (see `triage.core.topology` for which and how)."""
    wanted = wanted_topics(settings)
    client = admin(settings)
    try:
        existing = set(client.list_topics())
        missing = {name: opts for name, opts in wanted.items() if name not in existing}
        if missing:
            _create_topics(client, missing)
    finally:
        client.close()


def _create_topics(client: KafkaAdminClient, topics: dict[str, dict[str, Any]]) -> None:
    """Create what we may; under ACLs a topic we may not see may well exist already."""
    result = client.create_topics(topics, raise_errors=False)
    created, denied = [], []
    for topic in result["topics"]:
        error = for_code(topic["error_code"])
        if error.errno == 0:
            created.append(topic["name"])
        elif error in (TopicAuthorizationFailedError, ClusterAuthorizationFailedError):
            denied.append(topic["name"])
        elif error is not TopicAlreadyExistsError:  # (another service was first)
            raise error(f"cannot create topic {topic['name']}: {topic.get('error_message')}")
    if created:
        client.wait_for_topics(created)
        log.info("created topics %s", ", ".join(created))
    if denied:
        log.info(
            "not allowed to create topics %s: expecting an administrator to have created "
            "those this service uses",
            ", ".join(denied),
        )


def raise_if_unauthorized(consumer: KafkaConsumer, topic: str) -> None:
    """Tell "no such topic" from "this principal may not see it", which metadata hides.

    A metadata request for all topics leaves out the ones we may not describe; fetching from
    the topic names it, and this module's consumer raises TopicAuthorizationFailedError.
    """
    consumer.assign([TopicPartition(topic, 0)])
    try:
        for _ in range(3):
            consumer.poll(timeout_ms=200)
    finally:
        consumer.unsubscribe()


def known_partitions(consumer: KafkaConsumer, topic: str) -> set[int]:
    """The topic's partitions as the brokers' metadata has them now; none when it is absent.

    Seen in CI: a metadata update that raced the topic's creation by another process failed
    with UnknownTopicOrPartition out of `partitions_for_topic`. Retriable means "not yet".
    """
    try:
        return consumer.partitions_for_topic(topic)
    except KafkaError as exc:
        if not exc.retriable:
            raise
        log.debug("metadata for %s not ready: %s", topic, exc)
        return set()


def subscribe(
    consumer: KafkaConsumer, topics: list[str], listener: Any = None, timeout_s: float = 30
) -> None:
    """Subscribe once the consumer's metadata knows every topic of `topics`.

    Joining the group before the topics' partitions are in the client's metadata cache lets the
    assignor hand out nothing ("No partition metadata for topic"), and the member then idles
    with no partitions until the next rebalance; waiting for the metadata first avoids that.
    Services create their topics before their first session, so an unknown topic here is most
    likely a cluster in failover: the timeout is retriable and the session starts over.
    """
    deadline = time.monotonic() + timeout_s
    for topic in topics:
        while not known_partitions(consumer, topic):
            if time.monotonic() > deadline:
                raise_if_unauthorized(consumer, topic)  # a missing ACL is fatal, not a retry
                raise KafkaTimeoutError(
                    f"no metadata for topic {topic} after {timeout_s:.0f}s"
                    " (missing, not visible to this client, or the cluster is failing over)"
                )
            time.sleep(0.2)
    if listener is None:
        consumer.subscribe(topics)
    else:
        consumer.subscribe(topics, listener=listener)
    # kafka-python rejoins when the subscribed topics' metadata differs from its snapshot of
    # them at the last assignment, and it takes that snapshot only on a metadata update. Just
    # subscribed, the snapshot is still empty: the first assignment is made against nothing,
    # the update that follows looks like a change, and every group rebalances again at its
    # start (a join that kafka-python 3.0.12 can leave uncollected: see group_health).
    # Fetching the metadata now puts the real partitions in the snapshot before the first join.
    consumer.topics()


class _Listener(ConsumerRebalanceListener):
    def __init__(self, assigned: Callable[[list], None], revoked: Callable[[list], None]) -> None:
        self._assigned, self._revoked = assigned, revoked

    def on_partitions_revoked(self, revoked):
        self._revoked(list(revoked))

    def on_partitions_assigned(self, assigned):
        self._assigned(list(assigned))


def listener(
    assigned: Callable[[list], None], revoked: Callable[[list], None]
) -> ConsumerRebalanceListener:
    """A rebalance listener calling `assigned`/`revoked` with the partitions (topic, partition)."""
    return _Listener(assigned, revoked)
