"""The topology declared once in `triage.core.topology`, and what is derived from it.

The topic table of docs/architecture.md is rendered from the topology; the topics
`ensure_topics` creates, the ACLs of each role and the services' default group ids are checked
against the values they
had when each was written out by hand, so a change to the topology is a deliberate one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka.admin import ACLOperation, ACLResourcePatternType, ResourceType

from triage.aggregator.settings import AggregatorSettings
from triage.core import topology
from triage.core.kafka.topics import wanted_topics
from triage.core.settings import CommonSettings
from triage.local import acls
from triage.monitor.settings import MonitorSettings

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
COMPACT = {"cleanup.policy": "compact"}
CHANGELOG = COMPACT | {
    "segment.bytes": str(16 * 1024 * 1024),
    "segment.ms": "60000",
    "min.cleanable.dirty.ratio": "0.2",
    "delete.retention.ms": "600000",
}


def shown_table(text: str) -> str:
    start = text.index("| topic | key | value |")
    end = text.index("\n\n", start)
    return text[start : end + 1]


def test_the_docs_topic_table_is_the_rendered_topology():
    rendered = topology.topic_table()
    assert shown_table(ARCHITECTURE.read_text()) == rendered, (
        "docs/architecture.md's topic table differs from the topology; paste"
        " topology.topic_table():\n" + rendered
    )


def test_wanted_topics_are_the_topology_under_the_deployments_names():
    settings = CommonSettings(topic_prefix="p-", topic_partitions=3, topic_replication_factor=2)
    plain = {"num_partitions": 3, "replication_factor": 2}
    assert wanted_topics(settings) == {
        "p-texts": plain,
        "p-features": plain,
        "p-scores": plain,
        "p-labels": plain,
        "p-triage-registry": {"num_partitions": 1, "replication_factor": 2, "configs": COMPACT},
        "p-triage-dead-letters": plain,
        "p-triage-aggregator-state": plain | {"configs": CHANGELOG},
        "p-corrections": plain,
        "p-triage-quality": {"num_partitions": 1, "replication_factor": 2, "configs": COMPACT},
        "p-triage-monitor-state": plain | {"configs": CHANGELOG},
    }
    defaults = wanted_topics(CommonSettings())
    assert defaults["texts"] == {"num_partitions": 6, "replication_factor": -1}


def test_topic_names_come_from_the_environment_flags_and_defaults(monkeypatch):
    monkeypatch.setenv("TRIAGE_TOPIC_PREFIX", "e-")
    monkeypatch.setenv("TRIAGE_TOPIC_SCORES", "my-scores")
    monkeypatch.setenv("TRIAGE_TOPIC_MONITOR_STATE", "my-state")
    names = CommonSettings(topic_texts="given").topics
    assert (names.texts, names.scores, names.monitor_state) == (
        "e-given",
        "e-my-scores",
        "e-my-state",
    )
    assert (
        names.registry == "e-triage-registry" and names["dead_letters"] == "e-triage-dead-letters"
    )
    copied = CommonSettings().model_copy(update={"topic_prefix": "c-"})
    assert copied.topics.labels == "c-labels"  # a copy with another prefix is not served stale


def test_every_topic_has_its_settings_field_and_variable():
    fields = CommonSettings.model_fields
    assert all(f"topic_{field}" in fields for field in topology.FIELDS)
    assert CommonSettings().topics == topology.Topics(*(t.name for _, t in topology.TOPICS.items()))


def _acl(resource, name, op, pattern=ACLResourcePatternType.LITERAL):
    return (resource, name, op, pattern)


T, G, X = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID
R, W = ACLOperation.READ, ACLOperation.WRITE
PREFIXED = ACLResourcePatternType.PREFIXED
# Each role's ACLs as local/acls.py wrote them out before the topology.
BEFORE = {
    "publisher": {_acl(T, "p-texts", W), _acl(T, "p-corrections", W)},
    "classifier": {
        _acl(T, "p-texts", R), _acl(T, "p-scores", W),
        _acl(T, "p-triage-registry", R), _acl(T, "p-triage-registry", W),
        _acl(G, "p-triage-classifier-", R, PREFIXED), _acl(X, "p-triage-classifier-", W, PREFIXED),
    },
    "aggregator": {
        _acl(T, "p-scores", R), _acl(T, "p-triage-registry", R),
        _acl(T, "p-labels", W), _acl(T, "p-triage-dead-letters", W),
        _acl(T, "p-triage-aggregator-state", R), _acl(T, "p-triage-aggregator-state", W),
        _acl(G, "p-triage-aggregator", R), _acl(X, "p-triage-aggregator.", W, PREFIXED),
    },
    "monitor": {
        _acl(T, "p-labels", R), _acl(T, "p-corrections", R), _acl(T, "p-triage-registry", R),
        _acl(T, "p-triage-dead-letters", W),
        _acl(T, "p-triage-quality", R), _acl(T, "p-triage-quality", W),
        _acl(T, "p-triage-monitor-state", R), _acl(T, "p-triage-monitor-state", W),
        _acl(G, "p-triage-monitor", R), _acl(X, "p-triage-monitor.", W, PREFIXED),
    },
    "reader": {_acl(T, "p-labels", R), _acl(T, "p-triage-dead-letters", R)},
    "gateway": {
        _acl(T, "p-texts", W), _acl(T, "p-labels", R),
        _acl(T, "p-triage-dead-letters", R), _acl(T, "p-triage-registry", R),
    },
}  # fmt: skip


@pytest.mark.parametrize("role", sorted(BEFORE))
def test_acl_grants_per_role_are_what_they_were(role):
    granted = acls.grants(role, CommonSettings(topic_prefix="p-"))
    assert len(granted) == len(BEFORE[role])
    assert {(g.resource, g.name, g.operation, g.pattern) for g in granted} == BEFORE[role]


def test_roles_are_the_granted_ones_of_the_topology():
    assert acls.ROLES == ("publisher", "classifier", "aggregator", "reader", "gateway", "monitor")
    with pytest.raises(ValueError, match="unknown role"):
        acls.grants(topology.ENCODER.name, CommonSettings())


def test_group_ids_come_from_the_topology():
    assert AggregatorSettings().group_id == "triage-aggregator"
    assert MonitorSettings().group_id == "triage-monitor"
    assert topology.CLASSIFIER.group_id("spam") == "triage-classifier-spam"
    assert topology.ENCODER.group_id("minilm") == "triage-encoder-minilm"
    assert topology.member_id("triage-aggregator", "host-1") == "triage-aggregator.host-1"
    with pytest.raises(ValueError, match="no group"):
        topology.READER.group_id()


def test_a_role_naming_an_unknown_topic_is_refused():
    with pytest.raises(ValueError, match="unknown topics"):
        topology.Role("typo", reads=("text",))
