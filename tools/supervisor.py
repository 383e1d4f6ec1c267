"""`triage up`: every classifier, the encoders they read, the aggregator and the monitor.

Children are the same `triage` commands an operator would run by hand. A child that exits
unexpectedly is restarted after a short pause; SIGTERM or Ctrl-C stops all of them with SIGTERM
(each finishes its open transaction) and waits, killing only what does not stop in time.
One line says when every class votes, read from the registry as the aggregator reads it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from triage.core.model.artifacts import READS_FEATURES, READS_TEXT, read_manifest
from triage.core.registry.store import wait_for_classifiers
from triage.core.settings import CommonSettings

log = logging.getLogger(__name__)

STOP_GRACE_S = 15.0


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    restarts: int = 0

    def start(self) -> None:
        env = os.environ | self.env
        self.process = subprocess.Popen(self.argv, env=env)
        log.info("started %s (pid %d)", self.name, self.process.pid)


def triage_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "triage.cli", *args]


def plan(
    models: Path,
    reads: dict[str, str],
    colocated: bool,
    metrics_base: int | None,
    env: dict[str, str] | None = None,
    monitor: bool = True,
    fused: bool = False,
) -> list[Child]:
    """The processes `up` runs for the classes of `reads` (label → what its model reads): one
    per classifier (or one per input, co-located), one `triage encoder` per encoder some head
    reads, the aggregator and the monitor (offline figures from the same models), each with
    `env` on top of this process's environment. `fused`: the heads of an encoder run in one
    process with it (`triage classifier --with-encoder`) instead of beside a `triage encoder`.
    Metrics ports: the aggregator on the base, classifiers next, then the encoders, the monitor
    last."""
    env = env or {}
    by_input: dict[str, list[str]] = {}
    for label, source in sorted(reads.items()):
        by_input.setdefault(source, []).append(label)
    if colocated:
        groups = list(by_input.values())
    else:  # one process a head, but an encoder's heads all in its one process when fused
        groups = [labels for source, labels in by_input.items() if _fusing(fused, source)]
        groups += [[label] for label in sorted(reads) if not _fusing(fused, reads[label])]
    children = []
    for i, group in enumerate(groups):
        argv = triage_argv("classifier", "--models", str(models))
        for label in group:
            argv += ["--label", label]
        source = reads[group[0]]
        if _fusing(fused, source):
            argv.append("--with-encoder")
            name = f"classifier (with its encoder, {source})"
        else:
            name = f"classifier (colocated, {source})" if colocated else f"classifier {group[0]}"
        children.append(Child(name, argv, env | _metrics_env(metrics_base, i + 1)))
    separate = [source for source in by_input if not _fusing(fused, source)]
    encoders = sorted(
        {s.removeprefix(READS_FEATURES).partition("@")[0] for s in separate} - {READS_TEXT}
    )
    for j, encoder in enumerate(encoders):
        argv = triage_argv("encoder", "--encoder", encoder)
        port = _metrics_env(metrics_base, len(groups) + 1 + j)
        children.append(Child(f"encoder {encoder}", argv, env | port))
    aggregator = triage_argv("aggregate")
    children.append(Child("aggregator", aggregator, env | _metrics_env(metrics_base, 0)))
    if monitor:
        argv = triage_argv("monitor", "--models", str(models))
        last = len(groups) + len(encoders) + 1
        children.append(Child("monitor", argv, env | _metrics_env(metrics_base, last)))
    return children


def _fusing(fused: bool, source: str) -> bool:
    """Whether heads reading `source` run in their encoder's process."""
    return fused and source != READS_TEXT


def inputs_of(models: Path, labels: list[str]) -> dict[str, str]:
    """Label → what its model reads (from the manifests alone, no model loaded)."""
    return {label: read_manifest(models / label).reads for label in labels}


def connection_env(settings: CommonSettings) -> dict[str, str]:
    """The cluster and topic prefix of `settings`, as the variables a child process reads."""
    env = {"TRIAGE_TOPIC_PREFIX": settings.topic_prefix}
    if settings.connection.bootstrap_servers:
        env["TRIAGE_BOOTSTRAP_SERVERS"] = settings.connection.bootstrap_servers
    return env


def _metrics_env(base: int | None, offset: int) -> dict[str, str]:
    return {} if base is None else {"TRIAGE_METRICS_PORT": str(base + offset)}


def metrics_urls(children: list[Child], host: str) -> list[str]:
    """One line per child that serves metrics: where Prometheus should scrape it."""
    return [
        f"{child.name} metrics: http://{host}:{child.env['TRIAGE_METRICS_PORT']}/metrics"
        for child in children
        if "TRIAGE_METRICS_PORT" in child.env
    ]


def supervise(children: list[Child], stop: threading.Event) -> int:
    for child in children:
        child.start()
    while not stop.wait(0.5):
        for child in children:
            code = child.process.poll() if child.process else None
            if code is not None:
                child.restarts += 1
                log.warning(
                    "%s exited with %d; restarting (restart #%d)", child.name, code, child.restarts
                )
                time.sleep(min(child.restarts, 5))
                child.start()
    return shutdown(children)


def shutdown(children: list[Child]) -> int:
    for child in children:
        if child.process and child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    failed = 0
    for child in children:
        if not child.process:
            continue
        try:
            code = child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("%s did not stop within %.0fs; killing it", child.name, STOP_GRACE_S)
            child.process.kill()
            code = child.process.wait()
        failed += code not in (0, -signal.SIGTERM)
        log.info("%s stopped (exit %s)", child.name, code)
    return 1 if failed else 0


def tell_when_voting(settings: CommonSettings, labels: set[str], stop: threading.Event) -> None:
    """Log one line once every class of `labels` votes (in a thread: `supervise` goes on)."""
    started = time.monotonic()

    def wait() -> None:
        try:
            wait_for_classifiers(settings, labels, None, voting=True, stop=stop)
        except Exception as exc:  # the registry unreadable: the children say more; so does this
            log.warning("cannot tell when every class votes: %s", exc)
            return
        if not stop.is_set():
            log.info(
                "ready: every class votes (%d), %.1fs after start; `triage ready` waits for this",
                len(labels),
                time.monotonic() - started,
            )

    threading.Thread(target=wait, name="ready", daemon=True).start()
