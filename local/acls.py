"""Who may do what on Kafka: one role per triage service, and the ACLs each role needs.

A role is a SCRAM user of the same name. The publisher writes texts and corrections; a
classifier reads texts, writes scores and announces itself in the registry; the aggregator
reads scores and the registry and writes results, dead letters and its changelog; a reader
reads results and dead letters; the monitor reads results, corrections and the registry and
writes dead letters, the quality summaries and its changelog (and `triage quality` runs as
it). Consumer groups and transactional ids are granted by prefix (``<prefix>triage-
classifier-`` covers every classifier unit and instance), topics by exact name, so that
``TRIAGE_TOPIC_PREFIX`` separates deployments sharing a cluster. Nobody but an administrator
may create topics or ACLs, and no role can do another's job: a classifier cannot read scores
or write results, the aggregator cannot read texts or write scores.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourceType,
)

from triage.aggregator.settings import AggregatorSettings
from triage.core.settings import CommonSettings
from triage.monitor.settings import MonitorSettings

PUBLISHER, CLASSIFIER, AGGREGATOR, READER = "publisher", "classifier", "aggregator", "reader"
GATEWAY, MONITOR = "gateway", "monitor"
ROLES = (PUBLISHER, CLASSIFIER, AGGREGATOR, READER, GATEWAY, MONITOR)

READ, WRITE = ACLOperation.READ, ACLOperation.WRITE
LITERAL, PREFIXED = ACLResourcePatternType.LITERAL, ACLResourcePatternType.PREFIXED


@dataclass(frozen=True)
class Grant:
    """One permission of a role, independent of the principal it is given to."""

    resource: ResourceType
    name: str
    operation: ACLOperation
    pattern: ACLResourcePatternType = LITERAL


class AclError(Exception):
    """The broker refused to create some ACLs; the message lists them."""


def grants(role: str, settings: CommonSettings) -> list[Grant]:
    """What ``role`` needs with the topic names and prefix of ``settings``."""
    s = settings
    topic = ResourceType.TOPIC
    classifier_prefix = s.group("triage-classifier-")
    aggregator_group = s.group(AggregatorSettings.model_fields["group_id"].default)
    monitor_group = s.group(MonitorSettings.model_fields["group_id"].default)
    by_role = {
        PUBLISHER: [Grant(topic, s.texts, WRITE), Grant(topic, s.corrections, WRITE)],
        CLASSIFIER: [
            Grant(topic, s.texts, READ),
            Grant(topic, s.scores, WRITE),
            Grant(topic, s.registry, READ),
            Grant(topic, s.registry, WRITE),
            Grant(ResourceType.GROUP, classifier_prefix, READ, PREFIXED),
            Grant(ResourceType.TRANSACTIONAL_ID, classifier_prefix, WRITE, PREFIXED),
        ],
        AGGREGATOR: [
            Grant(topic, s.scores, READ),
            Grant(topic, s.registry, READ),
            Grant(topic, s.labels, WRITE),
            Grant(topic, s.dead_letters, WRITE),
            Grant(topic, s.aggregator_state, READ),
            Grant(topic, s.aggregator_state, WRITE),
            Grant(ResourceType.GROUP, aggregator_group, READ),
            Grant(ResourceType.TRANSACTIONAL_ID, aggregator_group + ".", WRITE, PREFIXED),
        ],
        MONITOR: [
            Grant(topic, s.labels, READ),
            Grant(topic, s.corrections, READ),
            Grant(topic, s.registry, READ),
            Grant(topic, s.dead_letters, WRITE),
            Grant(topic, s.quality, READ),
            Grant(topic, s.quality, WRITE),
            Grant(topic, s.monitor_state, READ),
            Grant(topic, s.monitor_state, WRITE),
            Grant(ResourceType.GROUP, monitor_group, READ),
            Grant(ResourceType.TRANSACTIONAL_ID, monitor_group + ".", WRITE, PREFIXED),
        ],
        READER: [Grant(topic, s.labels, READ), Grant(topic, s.dead_letters, READ)],
        GATEWAY: [
            Grant(topic, s.texts, WRITE),
            Grant(topic, s.labels, READ),
            Grant(topic, s.dead_letters, READ),
            Grant(topic, s.registry, READ),
        ],
    }
    if role not in by_role:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    return by_role[role]


def acls(role: str, settings: CommonSettings, principal: str | None = None) -> list[ACL]:
    """Kafka ACLs allowing ``principal`` (default ``User:<role>``) from any host."""
    who = principal or f"User:{role}"
    return [
        ACL(who, "*", g.operation, ACLPermissionType.ALLOW,
            ResourcePattern(g.resource, g.name, g.pattern))
        for g in grants(role, settings)
    ]  # fmt: skip


def grant_roles(
    client: KafkaAdminClient, settings: CommonSettings, roles: tuple[str, ...] = ROLES
) -> int:
    """Create the ACLs of ``roles`` (idempotent); returns how many ACLs were asked for."""
    wanted = [acl for role in roles for acl in acls(role, settings)]
    result = client.create_acls(wanted)
    if result["failed"]:
        raise AclError(f"Kafka refused {len(result['failed'])} ACL(s): {result['failed'][0]}")
    return len(wanted)
