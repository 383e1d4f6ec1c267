"""Who may do what on Kafka: one role per triage service, and the ACLs each role needs.

A role is a SCRAM user of the same name; which topics it reads and writes and its consumer
group are the topology's (`triage.core.topology`), and its grants are derived from there
(`triage quality` runs as the monitor). Consumer groups and transactional ids are granted by
prefix (``<prefix>triage-classifier-`` covers every classifier unit and instance), topics by
exact name, so that ``TRIAGE_TOPIC_PREFIX`` separates deployments sharing a cluster. Nobody
but an administrator may create topics or ACLs, and no role can do another's job: a classifier
cannot read scores or write results, the aggregator cannot read texts or write scores.
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

from triage.core import topology
from triage.core.settings import CommonSettings

ROLES = tuple(role.name for role in topology.ROLES if role.granted)
PUBLISHER, CLASSIFIER, AGGREGATOR, READER, GATEWAY, MONITOR = ROLES

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
    """What ``role`` needs with the topic names and prefix of ``settings``: reading and writing
    the topics the topology gives it, its consumer group and its transactional ids."""
    by_name = {r.name: r for r in topology.ROLES if r.granted}
    if role not in by_name:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    spec, names, topic = by_name[role], settings.topics, ResourceType.TOPIC
    found = [Grant(topic, names[field], READ) for field in spec.reads]
    found += [Grant(topic, names[field], WRITE) for field in spec.writes]
    if spec.group is not None:
        pattern = PREFIXED if spec.group_is_prefix else LITERAL
        found.append(Grant(ResourceType.GROUP, settings.group(spec.group), READ, pattern))
        txn = settings.group(spec.transactional_id_prefix)
        found.append(Grant(ResourceType.TRANSACTIONAL_ID, txn, WRITE, PREFIXED))
    return found


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
