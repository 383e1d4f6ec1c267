"""`make pictures`: docs/dashboard.png and docs/serve.png from one real run under steady traffic.

Starts the local broker (or uses TRIAGE_BOOTSTRAP_SERVERS), trains the demo classifiers, runs
them with `triage up`, `triage lag-exporter`, `triage serve` and Debian's Prometheus scraping
every one of them, then sends the demo stream's texts to the gateway's `POST /v1/classify` at a
steady rate, each text under a fresh id: `--warmup` seconds first (the dashboard's rates and
percentiles are over 5 minutes, so its curves are flat only after that much traffic), then
`--seconds` more. It draws every panel of the Grafana dashboard over those last seconds
(`triage.tools.dashboard_render`) and, in a headless Chromium driven by selenium, types a message
into the page and saves what the page shows. Every process it started
is stopped on the way out, and the broker too if it started it. Fresh topics every run.

    .venv/bin/python scripts/docs_pictures.py [--warmup 300] [--seconds 120] [--rate 5] [--out docs]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from triage.core.kafka.topics import ensure_topics
from triage.core.registry.store import wait_for_classifiers
from triage.core.settings import CommonSettings, ConnectionSettings
from triage.local import cluster as kafka_local
from triage.tools.dashboard_render import render
from triage.tools.supervisor import connection_env, inputs_of, plan
from triage.training.train import read_dataset, train

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "demo" / "data"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "triage.json"
ALERTS = ROOT / "deploy" / "alerts.yml"
MESSAGE = "My new card still hasn't arrived, when will it come?"
log = logging.getLogger("pictures")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/docs_pictures.py", description=__doc__)
    parser.add_argument(
        "--warmup", type=float, default=300, help="traffic before the drawn window (seconds)"
    )
    parser.add_argument("--seconds", type=float, default=120, help="the drawn window (seconds)")
    parser.add_argument("--rate", type=float, default=5, help="requests a second to the gateway")
    parser.add_argument("--mode", choices=["colocated", "per-process"], default="colocated")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder of the pictures")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s pictures: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    prometheus = shutil.which("prometheus")
    if not prometheus:
        sys.exit("pictures: Prometheus is not installed: `make install` brings Debian's package")
    connection, started_broker = ConnectionSettings(), False
    if not connection.bootstrap_servers:
        started_broker = kafka_local.status() is None
        cluster = kafka_local.start()
        connection = connection.model_copy(update={"bootstrap_servers": cluster.bootstrap})
    settings = CommonSettings(
        connection=connection, topic_prefix=f"docs{int(time.time()) % 100_000}-"
    )
    work = Path(tempfile.mkdtemp(prefix="triage-pictures-"))
    try:
        with Processes(work / "logs", os.environ | connection_env(settings)) as procs:
            run(settings, procs, prometheus, work, args)
    finally:
        if started_broker:
            kafka_local.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def run(
    settings: CommonSettings,
    procs: Processes,
    prometheus: str,
    work: Path,
    args: argparse.Namespace,
) -> None:
    models = work / "models"
    labels = [m.label for m in train(read_dataset(DATA / "train.csv"), models)]
    log.info("trained %d demo classifiers; logs in %s", len(labels), procs.logs)
    ensure_topics(settings)
    base, lag, gateway = free_port(), free_port(), free_port()
    # The ports `triage up` will serve metrics on, as it plans its processes: scrape only those.
    children = plan(models, inputs_of(models, labels), args.mode == "colocated", base)
    targets = [int(child.env["TRIAGE_METRICS_PORT"]) for child in children] + [lag, gateway]
    triage = [sys.executable, "-m", "triage.cli"]
    procs.start("up", *triage, "up", "--models", str(models), "--mode", args.mode,
                "--metrics-base-port", str(base))  # fmt: skip
    procs.start("lag", *triage, "lag-exporter", "--interval-s", "5", "--metrics-port", str(lag))
    procs.start("serve", *triage, "serve", "--port", str(gateway))
    prom = start_prometheus(procs, prometheus, work, targets)
    wait_for_classifiers(settings, set(labels), timeout_s=180)
    url = f"http://127.0.0.1:{gateway}"
    wait(lambda: get(f"{url}/readyz") == 200, 120, "the gateway to be ready")
    total = args.warmup + args.seconds
    log.info("every class votes; %s texts a second for %.0f s", args.rate, total)
    start = time.time() + args.warmup
    answered, sent = steady_traffic(url, args.rate, total)
    end = time.time()
    log.info("%d of %d requests answered with a label", answered, sent)
    down = targets_down(prom)
    if down:
        sys.exit(f"pictures: Prometheus could not scrape {', '.join(down)}: no pictures drawn")
    args.out.mkdir(parents=True, exist_ok=True)
    dashboard = args.out / "dashboard.png"
    step = max(1.0, round((end - start) / 240))
    panels = render(prom, DASHBOARD, dashboard, start, end, step)
    empty = [p.title for p in panels if not p.has_data]
    log.info("%s: %d panels%s", dashboard, len(panels), f"; no data: {empty}" if empty else "")
    screenshot(url, args.out / "serve.png")
    log.info("%s: the page after one message", args.out / "serve.png")


class Processes:
    """Child processes, each with its log file, stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self.logs, self.env = logs, env
        self.children: list[subprocess.Popen] = []

    def __enter__(self) -> Processes:
        self.logs.mkdir(parents=True, exist_ok=True)
        return self

    def start(self, name: str, *argv: str) -> None:
        log_file = (self.logs / f"{name}.log").open("ab")
        self.children.append(
            subprocess.Popen(argv, env=self.env, stdout=log_file, stderr=subprocess.STDOUT)
        )

    def __exit__(self, *exc: object) -> None:
        for child in reversed(self.children):
            child.send_signal(signal.SIGTERM)
        for child in reversed(self.children):
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def start_prometheus(procs: Processes, binary: str, work: Path, targets: list[int]) -> str:
    """Prometheus scraping `targets` every 2 s with the alert rules; returns its URL."""
    config = work / "prometheus.yml"
    scrape = ", ".join(f"'127.0.0.1:{port}'" for port in targets)
    config.write_text(
        "global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\n"
        f"rule_files: ['{ALERTS}']\n"
        f"scrape_configs:\n  - job_name: triage\n    static_configs:\n      - targets: [{scrape}]\n"
    )
    port = free_port()
    procs.start(
        "prometheus",
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={work / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    )
    url = f"http://127.0.0.1:{port}"
    wait(lambda: get(f"{url}/-/ready") == 200, 60, "Prometheus to be ready")
    return url


def targets_down(prometheus: str) -> list[str]:
    """The scrape targets whose last scrape failed (`up == 0`)."""
    query = urllib.parse.urlencode({"query": "up == 0"})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query?{query}", timeout=10) as response:
        result = json.load(response)["data"]["result"]
    return sorted(series["metric"]["instance"] for series in result)


def steady_traffic(url: str, rate: float, seconds: float) -> tuple[int, int]:
    """The demo stream's texts, one request every 1/rate s (an open loop), each its own id:
    how many were answered with a label, of how many sent."""
    texts = [row["text"] for row in csv.DictReader((DATA / "stream.csv").open(encoding="utf-8"))]
    answered = 0
    lock = threading.Lock()

    def classify(n: int, text: str) -> None:
        nonlocal answered
        body = json.dumps({"text": text, "id": f"picture-{n}"}).encode()
        request = urllib.request.Request(
            f"{url}/v1/classify?wait=10", body, {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                labelled = response.status == 200
        except (urllib.error.URLError, TimeoutError) as error:
            log.warning("request %d failed: %s", n, error)
            labelled = False
        with lock:
            answered += labelled

    start, sent = time.monotonic(), 0
    with ThreadPoolExecutor(max_workers=32) as pool:
        for n, text in enumerate(itertools.cycle(texts)):
            due = start + n / rate
            if due - start >= seconds:
                break
            time.sleep(max(0.0, due - time.monotonic()))
            pool.submit(classify, n, text)
            sent += 1
    return answered, sent


def screenshot(url: str, out: Path) -> None:
    """The page in headless Chromium after one message, as a person would see it."""
    from chromium import BrowserMissing, headless_chromium
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        with headless_chromium(1280, 940) as browser:
            browser.get(f"{url}/")
            wait_for = WebDriverWait(browser, 60)
            browser.find_element(By.ID, "text").send_keys(MESSAGE)
            browser.find_element(By.ID, "send").click()
            wait_for.until(ready.visibility_of_element_located((By.ID, "winner")))
            wait_for.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#classifiers tbody tr"))
            wait_for.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#recent li"))
            wait_for.until(lambda b: b.find_element(By.ID, "health").text == "ready")
            browser.save_screenshot(str(out))
    except BrowserMissing as missing:
        sys.exit(f"pictures: {missing}")


def get(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except (urllib.error.URLError, TimeoutError):
        return None


def wait(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"pictures: gave up waiting for {what} after {timeout_s:.0f} s")
        time.sleep(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())
