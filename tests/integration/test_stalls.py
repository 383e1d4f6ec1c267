"""A stall named while it happens, and a hung transaction ended, on a real pipeline.

The test holds a transaction open on one `scores` partition on purpose: a producer of its own
writes one record there and neither commits nor aborts (its transaction timeout is Kafka's
maximum, 15 minutes, so its coordinator will not end it during the test). Every score behind it
waits. The aggregator's stall watcher must name the partition in its log and in
`triage_stalled_seconds`, a real Prometheus must fire `TriagePartitionStalled` from
`deploy/stall-alerts.yml`, and after `TRIAGE_HUNG_TRANSACTION_S` the aggregator must abort the
transaction, name whose it was, and decide every text once, complete and as offline.
"""

from __future__ import annotations

import re
import uuid

import pytest
from conftest import ROOT, free_port, stream, wait_for_registry, wait_until
from kafka import KafkaProducer
from test_faults import check_exactly_once
from test_observability import Prometheus, prometheus  # noqa: F401  (the fixture)

from triage.core.model.artifacts import available_labels
from triage.core.settings import CommonSettings
from triage.producer.publisher import Publisher

pytestmark = pytest.mark.integration

STALL_ALERTS = ROOT / "deploy" / "stall-alerts.yml"
HUNG_AFTER_S = 45


def quicker_rules(path) -> object:
    """The stall rule at 10 s instead of 30 (the services' stall limit is lowered to match)."""
    text = STALL_ALERTS.read_text()
    assert text.count(">= 30") == 1, "expected the threshold in the stall alert's expression"
    path.mkdir()
    rules = path / STALL_ALERTS.name
    rules.write_text(text.replace(">= 30", ">= 10"))
    return rules


def stalls(prom: Prometheus) -> list[dict]:
    return [r["metric"] for r in prom.query("triage_stalled_seconds")]


def test_a_transaction_held_open_is_named_alerted_and_aborted(
    procs,
    demo_models,
    prometheus,  # noqa: F811  (the fixture imported above)
    tmp_path,
):
    settings = CommonSettings()
    ports = {"aggregator": free_port(), "classifier": free_port()}
    quick = {"TRIAGE_STALL_AFTER_S": "5", "TRIAGE_HUNG_TRANSACTION_S": str(HUNG_AFTER_S)}
    procs.start(
        "aggregator",
        "aggregate",
        "--join-timeout-s",
        "300",  # the held scores arrive after the abort: no text may be decided without them
        "--metrics-port",
        str(ports["aggregator"]),
        extra_env=quick,
    )
    procs.start(
        "classifier",
        "classifier",
        "--models",
        str(demo_models),
        "--metrics-port",
        str(ports["classifier"]),
        extra_env=quick,
    )
    wait_for_registry(set(available_labels(demo_models)), timeout_s=120)
    prom = prometheus(
        {"triage-aggregator": [ports["aggregator"]], "triage-classifier": [ports["classifier"]]},
        quicker_rules(tmp_path / "rules"),
    )

    holder_id = f"test-holder-{uuid.uuid4().hex[:8]}"
    holder = KafkaProducer(
        bootstrap_servers=settings.connection.bootstrap_servers,
        transactional_id=holder_id,
        transaction_timeout_ms=900_000,
    )
    try:
        holder.init_transactions()
        holder.begin_transaction()
        holder.send(settings.topics.scores, key=b"held", value=b"{}", partition=0).get(10)

        records = stream(60)
        with Publisher() as publisher:
            publisher.publish(records)

        scores_0 = {"service": "aggregator", "topic": settings.topics.scores, "partition": "0"}
        firing = wait_until(
            lambda: [
                a
                for a in prom.firing().get("TriagePartitionStalled", [])
                if a.items() >= scores_0.items()
            ],
            60,
            "TriagePartitionStalled on the held scores partition",
        )
        assert {a["reason"] for a in firing} == {"held"}
        assert all(s["partition"] == "0" for s in stalls(prom) if s["topic"] == scores_0["topic"])
        log = procs.log("aggregator")
        named = re.search(
            rf"{re.escape(settings.topics.scores)}\[0\] stalled \d+s: an open transaction holds"
            r" the partition at offset (\d+)",
            log,
        )
        assert named, log[-3000:]

        aborted = wait_until(
            lambda: re.search(r"aborting the hung transaction on (.*)", procs.log("aggregator")),
            HUNG_AFTER_S + 60,
            "the aggregator to abort the hung transaction",
        )
        assert f"'{holder_id}'" in aborted.group(1)
        assert f"[0] from offset {named.group(1)}:" in aborted.group(1)

        check_exactly_once(records, demo_models, timeout_s=120)
        wait_until(lambda: not stalls(prom), 30, "the stall to end")
        assert "scores[0] moves again" in procs.log("aggregator").replace(
            settings.topics.scores, "scores"
        )
    finally:
        holder.close(timeout=1)
