"""Owners from the manifest to the operator: `triage classifiers`, `triage quality`, the
monitor's `owner` label on every live quality series, the alert rule and the example route."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from test_monitor_join import correction, result
from test_monitor_step import T0, monitor, record  # noqa: F401  (monitor: a fixture)

from triage.core.model.quality import UNOWNED, Reference, owner_team
from triage.core.registry.lifecycle import classifier_rows, format_rows, row_json
from triage.core.registry.view import RegistryView
from triage.monitor import metrics
from triage.schemas.codec import encode
from triage.schemas.models import Announcement, Owner
from triage.tools.quality import format_report, quality_report

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CARDS = Owner(team="cards", contact="cards-oncall@bank.example")


def announce(view: RegistryView, label: str, owner: Owner | None) -> None:
    a = Announcement(
        label=label,
        version="1",
        since_ms=0,
        heartbeat_ms=T0,
        group_id=f"g-{label}",
        instance="host",
        owner=owner,
    )
    view.apply(f"{label}@1", a)


def test_classifiers_list_the_owner_from_the_announcement():
    view = RegistryView()
    announce(view, "a", CARDS)
    announce(view, "b", None)
    rows = classifier_rows(view, T0, 10)
    assert [r.owner for r in rows] == [{"team": "cards", "contact": CARDS.contact}, None]
    assert row_json(rows[0], T0)["owner"] == {"team": "cards", "contact": CARDS.contact}
    header, a, b = format_rows(rows, T0)
    assert header.index("owner") == a.index("cards") and b[header.index("owner")] == "-"


def test_the_owner_is_the_announcements_then_the_manifests_then_unowned():
    view = RegistryView()
    announce(view, "a", CARDS)
    ref = Reference(0.9, 0.8, 0.85, None, "payments")
    assert owner_team(view.announcement("a", "1"), ref) == "cards"
    assert owner_team(None, ref) == "payments"
    assert owner_team(None, Reference(0.9, 0.8, 0.85)) == owner_team(None, None) == UNOWNED


def _gauge(name: str, label: str, owner: str) -> float | None:
    labels = {"label": label, "version": "1", "window": "version", "owner": owner}
    return REGISTRY.get_sample_value(f"triage_quality_{name}", labels)


def test_live_series_carry_the_owner_and_follow_it_when_it_arrives(monitor):  # noqa: F811
    monitor.assign(0)
    monitor.process(batch_of_one("labels", "o1", encode(result("o1", "a"))), T0)
    monitor.process(batch_of_one("corrections", "o1", encode(correction("o1", "b"))), T0)
    monitor._gauges_ms = 0
    monitor.committed()
    assert _gauge("false_positives", "a", UNOWNED) == 1
    announce(monitor.view, "a", CARDS)  # the owner's announcement, after the counts
    monitor._gauges_stale, monitor._gauges_ms = True, 0
    monitor.committed()
    assert _gauge("false_positives", "a", "cards") == 1
    assert _gauge("false_positives", "a", UNOWNED) is None  # one series a class version
    monitor.revoke(0)
    monitor._gauges_ms = 0
    monitor.committed()
    assert _gauge("false_positives", "a", "cards") is None
    metrics.remove_quality("never", "set")  # nothing exported: nothing to remove


def batch_of_one(topic: str, key: str, value: bytes):
    from triage.core.records import batch_of

    return batch_of([record(topic, 0, key, value)])


def test_quality_report_names_each_versions_owner(monitor):  # noqa: F811
    announce(monitor.view, "a", CARDS)
    monitor.assign(0)
    monitor.process(batch_of_one("labels", "q1", encode(result("q1", "a"))), T0)
    counts = {k: [c] for k, c in monitor.joins[0].book.counts.items()}
    report = quality_report(counts, monitor.view, {}, T0 + 1, 60_000)
    assert report["per_class"]["a"]["owner"] == "cards"
    assert report["per_class"]["a"]["versions"]["1"]["owner"] == "cards"
    assert report["per_class"]["b"]["owner"] == UNOWNED
    lines = format_report(report).splitlines()
    assert lines[0].endswith("owner") and lines[1].endswith(" cards")


# (class, version, owner, true positives, false positives, offline precision): both far below.
SERIES = [("a", "2", "cards", 5, 20, 1.0), ("b", "1", UNOWNED, 4, 21, 0.9)]


def promtool_test(rules: Path) -> str:
    inputs = []
    for label, version, owner, tp, fp, offline in SERIES:
        live = f'label="{label}",version="{version}",window="window",owner="{owner}"'
        inputs += [
            {"series": f"triage_quality_true_positives{{{live}}}", "values": f"{tp}x20"},
            {"series": f"triage_quality_false_positives{{{live}}}", "values": f"{fp}x20"},
            {
                "series": f"triage_quality_offline_precision{{{live.rsplit(',', 2)[0]}}}",
                "values": f"{offline}x20",
            },
        ]
    expected = [
        {"exp_labels": {"label": x, "version": v, "owner": o, "severity": "ticket"}}
        for x, v, o, *_ in SERIES
    ]
    test = {
        "input_series": inputs,
        "interval": "1m",
        "alert_rule_test": [
            {
                "eval_time": "16m",
                "alertname": "TriageClassPrecisionBelowOffline",
                "exp_alerts": expected,
            }
        ],
    }
    return yaml.safe_dump(
        {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": [test]}
    )


def test_the_quality_alert_carries_the_owner_label(tmp_path):
    """promtool evaluates the rule on series as the monitor exports them; its annotations are
    taken out of the copy it reads (promtool compares them whole), the summary is checked here."""
    tool = shutil.which("promtool")
    assert tool, "promtool is not installed: .ci/run installs Debian's prometheus package"
    rules = yaml.safe_load((DEPLOY / "quality-alerts.yml").read_text())
    [rule] = [r for g in rules["groups"] for r in g["rules"]]
    assert "$labels.owner" in rule.pop("annotations")["summary"]
    copy = tmp_path / "rules.yml"
    copy.write_text(yaml.safe_dump(rules))
    spec = tmp_path / "test.yml"
    spec.write_text(promtool_test(copy))
    check = subprocess.run([tool, "test", "rules", str(spec)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_example_alertmanager_routes_by_owner_to_defined_receivers():
    config = yaml.safe_load((DEPLOY / "alertmanager.yml").read_text())
    receivers = {r["name"] for r in config["receivers"]}
    route = config["route"]
    assert route["receiver"] in receivers and "owner" in route["group_by"]
    owners = {}
    for sub in route["routes"]:
        [matcher] = sub["matchers"]
        owner = re.fullmatch(r'owner="([^"]+)"', matcher)
        assert owner, matcher
        owners[owner[1]] = sub["receiver"]
    assert set(owners.values()) <= receivers
    assert owners[UNOWNED] == route["receiver"] and owners["cards"] != route["receiver"]


@pytest.mark.parametrize("team", ["", "two words"])
def test_an_owner_is_one_word(team):
    with pytest.raises(ValueError):
        Owner(team=team)
