"""Metrics, dashboard and alerts against a real pipeline scraped by a real Prometheus.

A classifier unit is stopped mid-run (a lagging classifier) and a bad record is published, so
every alert has a reason to fire. Prometheus scrapes every 1s and evaluates a copy of
`deploy/alerts.yml` with `for: 0s` every 1s; every dashboard query must return a value, and
every panel drawn by `triage.tools.dashboard_render` must have data. With
`TRIAGE_DASHBOARD_PNG=PATH` set, that drawing of the test's window is also written to PATH
(docs/dashboard.png is made by `make pictures`, under steady traffic).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import DEMO_STREAM, ROOT, free_port, wait_for_registry, wait_until

from triage.core.kafka import clients as kafka_clients
from triage.core.model.artifacts import available_labels
from triage.core.settings import CommonSettings
from triage.producer.publisher import Publisher
from triage.schemas.models import TextRecord
from triage.tools.dashboard_render import render
from triage.training.train import read_dataset

pytestmark = pytest.mark.integration

ALERTS = ROOT / "deploy" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "triage.json"


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: .ci/run installs Debian's prometheus package"
    return path


class Prometheus:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.base = f"{self.url}/api/v1/"

    def get(self, path: str, **params: str):
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.get("query", query=expr)["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def firing(self) -> dict[str, list[dict]]:
        alerts: dict[str, list[dict]] = {}
        for alert in self.get("alerts")["alerts"]:
            if alert["state"] == "firing":
                alerts.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
        return alerts


@pytest.fixture
def prometheus(tmp_path):
    """Starts Prometheus scraping the given jobs' ports, with the alert rules (deploy/alerts.yml
    unless given) at `for: 0s`."""
    started: list[subprocess.Popen] = []

    def start(jobs: dict[str, list[int]], alerts: Path = ALERTS) -> Prometheus:
        rules = tmp_path / alerts.name
        text, n = re.subn(r"(?m)^(\s+)for: \S+$", r"\1for: 0s", alerts.read_text())
        assert n, f"expected `for:` clauses in {alerts}"
        rules.write_text(text)
        scrape = "".join(
            f"  - job_name: {job}\n    static_configs:\n      - targets: ["
            + ", ".join(f"'127.0.0.1:{p}'" for p in ports)
            + "]\n"
            for job, ports in jobs.items()
        )
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files: ['{rules}']\nscrape_configs:\n{scrape}"
        )
        port = free_port()
        log = (tmp_path / "prometheus.log").open("ab")
        argv = [
            tool("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        started.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
        prom = Prometheus(port)
        wait_until(lambda: _ready(port), 30, "Prometheus to be ready")
        return prom

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=20)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def alert_rules() -> dict[str, str]:
    text = ALERTS.read_text()
    names = re.findall(r"- alert: (\S+)", text)
    return dict(zip(names, _alert_exprs(text), strict=True))


def _alert_exprs(text: str) -> list[str]:
    """The `expr:` of each rule, folded (`>-`) or on one line."""
    exprs = []
    for match in re.finditer(r"expr: (>-\n(?:\s{10}.*\n)+|.*\n)", text):
        body = match.group(1)
        exprs.append(" ".join(line.strip() for line in body.removeprefix(">-\n").splitlines()))
    return exprs


def texts(prefix: str, n: int) -> list[TextRecord]:
    data = read_dataset(DEMO_STREAM)
    return [TextRecord(id=f"{prefix}{i:03d}", text=t) for i, t in enumerate(data.texts[:n])]


def test_dashboard_queries_and_alerts_on_a_lagging_classifier(
    procs, demo_models, prometheus, tmp_path
):
    labels = available_labels(demo_models)
    lagging, live = labels[0], labels[1:]
    ports = {name: free_port() for name in ("aggregator", "live", "lagging", "lag")}
    models = str(demo_models)
    procs.start(
        "aggregator",
        "aggregate",
        "--join-timeout-s",
        "8",
        "--metrics-port",
        str(ports["aggregator"]),
    )
    procs.start(
        "live",
        "classifier",
        "--models",
        models,
        *sum((["--label", x] for x in live), []),
        "--metrics-port",
        str(ports["live"]),
    )
    procs.start(
        "lagging",
        "classifier",
        "--models",
        models,
        "--label",
        lagging,
        "--metrics-port",
        str(ports["lagging"]),
    )
    procs.start("lag", "lag-exporter", "--interval-s", "1", "--metrics-port", str(ports["lag"]))
    prom = prometheus({
        "triage-aggregator": [ports["aggregator"]],
        "triage-classifier": [ports["live"], ports["lagging"]],
        "triage-lag-exporter": [ports["lag"]],
    })  # fmt: skip
    # Prometheus' first scrapes come seconds after it is ready: counted before them, the first
    # results would never show in a rate().
    wait_until(lambda: prom.value("count(up == 1)") == 4, 30, "Prometheus to scrape every target")
    window_start = time.time()
    wait_for_registry(set(labels))

    with Publisher() as publisher:
        publisher.publish(texts("a", 20))
    wait_until(lambda: prom.value("sum(triage_results_total)") == 20, 90, "20 results counted")
    assert prom.value('sum(triage_results_total{outcome="complete"})') == 20
    # The lagging classifier has committed its offsets; now it stops answering.
    assert procs.stop("lagging") == 0
    with Publisher() as publisher:
        publisher.publish(texts("b", 20))
    settings = CommonSettings()
    producer = kafka_clients.producer(settings)
    producer.send(settings.topics.texts, key=b"bad-1", value=b"\xff\xfe not utf-8")
    producer.flush()
    producer.close()

    rules = alert_rules()
    assert set(rules) == {
        "TriageClassifierDown",
        "TriageConsumerLagGrowing",
        "TriagePartialResultsHigh",
        "TriageDeadLetters",
    }
    firing = wait_until(
        lambda: (f := prom.firing()).keys() >= rules.keys() and f, 120, "every alert to fire"
    )
    lagging_group = f"{settings.topic_prefix}triage-classifier-{lagging}"
    assert [a["consumergroup"] for a in firing["TriageConsumerLagGrowing"]] == [lagging_group]
    assert [a["instance"] for a in firing["TriageClassifierDown"]] == [
        f"127.0.0.1:{ports['lagging']}"
    ]
    assert [a["reason"] for a in firing["TriageDeadLetters"]] == ["invalid_utf8"]
    for name, expr in rules.items():
        assert prom.query(expr), f"alert {name}: no data for {expr}"

    for expr in dashboard_queries():
        values = [float(r["value"][1]) for r in prom.query(expr)]
        assert any(not math.isnan(v) for v in values), f"dashboard query without data: {expr}"

    # Counters count what was committed, once.
    assert prom.value("sum(triage_results_total)") == 40
    assert prom.value('sum(triage_results_total{outcome="partial"})') == 20
    assert prom.value("sum(triage_dead_letters_total)") == 1
    assert prom.value(f'triage_records_in_total{{instance="127.0.0.1:{ports["live"]}"}}') == 41
    assert prom.value("sum(triage_pending_joins)") == 0
    # 20 texts and the bad record, published without transactions: no commit markers.
    assert prom.value(f'sum(kafka_consumergroup_lag{{consumergroup="{lagging_group}"}})') == 21

    check = subprocess.run(
        [tool("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr

    # The dashboard drawn from this run: one subplot per panel, every panel with data.
    png = tmp_path / "dashboard.png"
    panels = render(prom.url, DASHBOARD, png, window_start, time.time(), step=1)
    assert len(panels) == len(json.loads(DASHBOARD.read_text())["panels"])
    assert [p.title for p in panels if not p.has_data] == []
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 10_000
    if out := os.environ.get("TRIAGE_DASHBOARD_PNG"):
        shutil.copyfile(png, out)


def test_models_are_reported_with_their_versions(procs, demo_models):
    label = available_labels(demo_models)[0]
    port = free_port()
    procs.start(
        "one",
        "classifier",
        "--models",
        str(demo_models),
        "--label",
        label,
        "--metrics-port",
        str(port),
    )
    manifest = json.loads((Path(demo_models) / label / "manifest.json").read_text())

    def scrape() -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                return r.read().decode()
        except OSError:
            return None

    body = wait_until(scrape, 30, "the classifier's /metrics")
    assert f'triage_model_info{{label="{label}",version="{manifest["version"]}"}} 1.0' in body
