"""deploy/ and docker-compose.yml: valid, pinned, and naming only metrics triage exports.

The compose file is checked with Debian's `docker-compose config` (no Docker engine needed;
.ci/run installs it). Queries are checked against the metrics' real names, so a renamed metric
fails here rather than on an empty dashboard.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import triage.aggregator.metrics  # noqa: F401  (registers the services' metrics)
import triage.consumers.metrics  # noqa: F401
import triage.core.runtime.metrics  # noqa: F401
import triage.encoder.metrics  # noqa: F401
import triage.monitor.metrics  # noqa: F401
from triage.tools.lag_exporter import LagCollector

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def compose(*args: str) -> str:
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose is not installed: .ci/run installs Debian's docker-compose"
    done = subprocess.run(
        [tool, "-f", str(ROOT / "docker-compose.yml"), "config", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_compose_file_is_valid_and_every_image_is_pinned_and_built_here():
    images = re.findall(r"^\s+image: (\S+)$", compose(), re.MULTILINE)
    assert images and all(":" in i and not i.endswith(":latest") for i in images), images
    # `make images` builds every image the stack runs by default: no registry needed. Grafana
    # (a public image) only runs with `--profile grafana`.
    services = yaml.safe_load(compose())["services"]
    pulled = {n for n, svc in services.items() if not svc["image"].startswith("localhost/")}
    assert pulled == {"grafana"} and services["grafana"]["profiles"] == ["grafana"]
    assert {svc["image"] for svc in services.values()} >= {
        "localhost/triage:0.1.0",
        "localhost/triage-kafka:4.3.1",
        "localhost/triage-prometheus:2.42",
    }
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE=python:3\.11\.\d+-slim", dockerfile, re.MULTILINE)


def test_compose_runs_every_demo_classifier_and_prometheus_scrapes_them():
    services = set(compose("--services").split())
    classes = {
        line.rsplit(",", 1)[1].strip()
        for line in (ROOT / "demo/data/train.csv").read_text().splitlines()[1:]
    }
    assert {"classifier-" + c.replace("_", "-") for c in classes} <= services
    scraped = set(
        re.findall(r"^\s+- ([\w-]+):\d+$", (DEPLOY / "prometheus.yml").read_text(), re.MULTILINE)
    )
    assert scraped == services - {"kafka", "topics", "prometheus", "grafana"}


def exported_names() -> set[str]:
    collector = LagCollector()
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
    return {
        family.name + suffix
        for family in [*REGISTRY.collect(), *collector.collect()]
        for suffix in suffixes.get(family.type, [""])
    }


@pytest.mark.parametrize(
    ("dashboard", "alerts"),
    [
        ("triage.json", "alerts.yml"),
        ("quality.json", "quality-alerts.yml"),
        ("encoder.json", None),
        (None, "stall-alerts.yml"),
    ],
)
def test_dashboard_and_alerts_query_only_exported_metrics(dashboard, alerts):
    queries = []
    if dashboard is not None:
        panels = json.loads((DEPLOY / "grafana/dashboards" / dashboard).read_text())["panels"]
        queries += [t["expr"] for p in panels for t in p["targets"]]
    if alerts is not None:
        queries.append((DEPLOY / alerts).read_text())
    used = {name for q in queries for name in re.findall(r"\b(?:triage|kafka)_\w+", q)}
    used -= {"triage_classifier", "triage_aggregator"}  # job names, not metrics
    assert used and used <= exported_names(), used - exported_names()


@pytest.mark.parametrize("rules", ["quality-alerts.yml", "stall-alerts.yml"])
def test_the_alert_rules_are_valid(rules):
    tool = shutil.which("promtool")
    assert tool, "promtool is not installed: .ci/run installs Debian's prometheus package"
    check = subprocess.run(
        [tool, "check", "rules", str(DEPLOY / rules)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
