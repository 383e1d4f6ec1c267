"""A degraded class version, promoted, fires the quality alert in a real Prometheus.

Version 2 of one class is trained on data where a second class's texts are labelled as the
first: on its own validation split it looks as good as version 1 (its manifest says so), but
live it claims the second class's messages. Texts with known truth and a correction for every
one flow through the real pipeline before and after its promotion; Prometheus scrapes the
monitor every second and evaluates deploy/quality-alerts.yml with `for: 0s`. The alert fires
for that class's version 2 only, carrying the owner version 2 was trained with as its `owner`
label (what Alertmanager routes by); its live precision panel drops while every other class's
stays where it was.

The rule's margin is widened from 0.1 to 0.25 here: the demo models' offline precision comes
from 9 validation positives per class (1.0 for most), and the demo stream is harder than their
training texts: live, under version 1, the classes measure 0.81 to 1.0 (computed offline from
the same models and texts), so 0.1 below "1.0" is crossed by healthy classes too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import DEMO_STREAM, DEMO_TRAIN, ROOT, free_port, wait_for_registry, wait_until
from test_observability import Prometheus, prometheus  # noqa: F401  (the fixture)

from triage.core.model.artifacts import available_labels, read_manifest
from triage.producer.publisher import Publisher
from triage.schemas.models import CorrectionRecord, Owner, TextRecord
from triage.tools.dashboard_render import render
from triage.training.corrections import to_csv
from triage.training.train import read_dataset, train

pytestmark = pytest.mark.integration

QUALITY_ALERTS = ROOT / "deploy" / "quality-alerts.yml"
QUALITY_DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "quality.json"
ALERT = "TriageClassPrecisionBelowOffline"
OWNER = Owner(team="cards-team", contact="cards-oncall@bank.example")
# The quality dashboard's live precision panels over the window: per class (every version that
# voted in the window) and per class version.
PER_CLASS = (
    'sum by (label) (triage_quality_true_positives{window="window"})'
    ' / sum by (label) (triage_quality_true_positives{window="window"}'
    ' + triage_quality_false_positives{window="window"})'
)
PRECISION = (
    'sum by (label, version) (triage_quality_true_positives{window="window"})'
    ' / sum by (label, version) (triage_quality_true_positives{window="window"}'
    ' + triage_quality_false_positives{window="window"})'
)


def degraded_models(models: Path, out: Path, label: str, other: str) -> Path:
    """`models` plus version 2 of `label`, trained with `other`'s texts labelled `label`."""
    shutil.copytree(models, out)
    data = read_dataset(DEMO_TRAIN)
    wrong = [label if y == other else y for y in data.labels]
    csv = out.parent / "degraded.csv"
    csv.write_text(to_csv(zip(data.texts, wrong, strict=True)), encoding="utf-8")
    [manifest] = train(read_dataset(csv), out, [label], n_jobs=1, progress=False, owner=OWNER)
    assert manifest.version == "2" and manifest.owner == OWNER
    return out


def publish_with_truth(prefix: str, copies: int) -> int:
    data = read_dataset(DEMO_STREAM)
    texts, fixes = [], []
    for copy in range(copies):
        for i, (text, label) in enumerate(zip(data.texts, data.labels, strict=True)):
            mid = f"{prefix}-{copy}-{i:03d}"
            texts.append(TextRecord(id=mid, text=text))
            fixes.append(CorrectionRecord(id=mid, label=label, source="t", corrected_at_ms=0))
    with Publisher() as publisher:
        publisher.publish(texts)
        publisher.correct(fixes)  # some arrive before their result: held, then counted
    return len(texts)


def widened_rules(path: Path) -> Path:
    text = QUALITY_ALERTS.read_text()
    assert text.count(" - 0.1)") == 1, "expected the margin in the quality alert's expression"
    path.write_text(text.replace(" - 0.1)", " - 0.25)"))
    return path


def precisions(prom: Prometheus) -> dict[tuple[str, str], float]:
    """Per class version, and per class under the version `*`."""
    by_version = {
        (r["metric"]["label"], r["metric"]["version"]): float(r["value"][1])
        for r in prom.query(PRECISION)
    }
    by_class = {(r["metric"]["label"], "*"): float(r["value"][1]) for r in prom.query(PER_CLASS)}
    return by_version | by_class


def exported(prom: Prometheus, sent: int) -> bool:
    """Every correction counted, and in the quality gauges too: the monitor refreshes those at
    most once a second, after its counter (CI: precision read between the two came out 0.5
    for a class at 0.81, from a part of its counts)."""
    counted = prom.value('sum(triage_corrections_total{outcome="counted"})')
    support = prom.value('sum(triage_quality_support{window="window"})')
    return counted == sent and support == sent


@pytest.mark.timeout(300)
def test_a_degraded_version_fires_the_alert_and_drops_its_panel_only(
    procs,
    demo_models,
    prometheus,  # noqa: F811  (the fixture imported above)
    tmp_path,
):
    labels = available_labels(demo_models)
    label, other = labels[0], labels[1]
    models2 = degraded_models(demo_models, tmp_path / "models2", label, other)
    offline2 = read_manifest(models2 / label).metrics["precision"]
    port = free_port()
    procs.start("classifier", "classifier", "--models", str(demo_models))
    # Every result complete, so live precision depends on the models alone (CI: on a busy machine
    # the default 10 s join timed out on some texts and version 1's precision came out lower).
    procs.start("aggregator", "aggregate", "--join-timeout-s", "120")
    procs.start(
        "monitor",
        "monitor",
        *["--models", str(demo_models), "--models", str(models2)],
        *["--quality-window-s", "600", "--metrics-port", str(port)],
    )
    prom = prometheus({"triage-monitor": [port]}, widened_rules(tmp_path / "quality-alerts.yml"))
    # 90 s: at a load average of 52 on 2 cores the monitor's metrics server came up 30 s after
    # its start, and the 30 s this wait had timed out twice.
    wait_until(lambda: prom.value("count(up == 1)") == 1, 90, "Prometheus to scrape the monitor")
    window_start = time.time()
    wait_for_registry(set(labels), timeout_s=120)
    run = uuid.uuid4().hex[:6]

    sent = publish_with_truth(f"{run}-a", 1)
    wait_until(lambda: exported(prom, sent), 120, "version 1's corrections counted", 1)
    before = precisions(prom)
    assert set(before) == {(x, v) for x in labels for v in ("1", "*")}
    assert prom.firing() == {}

    procs.start("shadow", "classifier", "--models", str(models2), "--label", label, "--shadow")
    promote = [sys.executable, "-m", "triage.cli", "promote", "--label", label, "--version", "2"]
    # The gate would refuse it (test_gate.py): this test is about what happens when it votes.
    promote += ["--switch-delay-s", "1", "--max-drop", "1", "--min-judged", "0"]
    wait_until(
        lambda: subprocess.run(promote, env=procs.env, capture_output=True).returncode == 0,
        60,
        f"{label} version 2 to be promoted",
        interval=1,
    )
    time.sleep(2)  # past the switch delay: version 2 votes on every text published from now
    sent += publish_with_truth(f"{run}-b", 2)
    published = time.monotonic()
    wait_until(lambda: exported(prom, sent), 120, "version 2's corrections counted", 1)
    firing = wait_until(lambda: prom.firing().get(ALERT), 60, f"{ALERT} to fire", 1)
    fired_after_s = time.monotonic() - published
    assert [(a["label"], a["version"], a["owner"]) for a in firing] == [(label, "2", OWNER.team)]
    # The versions trained without an owner are exported as such, not without the label.
    unowned = prom.query('triage_quality_support{window="window", owner="unowned"}')
    assert {(r["metric"]["label"], r["metric"]["version"]) for r in unowned} == {
        (x, "1") for x in labels
    }

    after = precisions(prom)
    assert after[(label, "2")] < offline2 - 0.25
    assert after[(label, "2")] < before[(label, "1")] - 0.1
    assert after[(label, "*")] < before[(label, "*")] - 0.1  # the class's own line drops
    # The other classes' panels stay flat. Not exactly: texts of the class that version 2 misses
    # are routed elsewhere (measured: the largest drop, 0.846 → 0.814, lost_or_stolen_card).
    # `other` is left out: version 2 was taught to take its texts, so its own precision moves
    # with them (seen in CI: 0.75 → 0.83).
    for x in labels[1:]:
        if x == other:
            continue
        for v in ("1", "*"):
            # 0.2: with about 16 corrected results a class, one text moves precision by 0.06
            # (seen in CI: refund_request 0.94 → 0.75); the degraded class drops by 0.375.
            assert abs(after[(x, v)] - before[(x, v)]) <= 0.2, (x, before, after)
    # Every panel of the quality dashboard, drawn from this run, has data.
    time.sleep(3)  # a few scrapes after the drop, so the drawing shows it
    png = tmp_path / "quality.png"
    panels = render(prom.url, QUALITY_DASHBOARD, png, window_start, time.time(), step=1)
    assert [p.title for p in panels if not p.has_data] == []
    print(f"{ALERT} fired {fired_after_s:.1f}s after the degraded texts were published")
