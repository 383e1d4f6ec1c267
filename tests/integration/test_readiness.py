"""Ready means every class votes. `triage up` (one process a class) and `triage serve
--expected-models` start together on fresh topics; the texts sent the moment `/readyz` first
answers 200 are decided by every class, exactly as the same models decide them offline.
`triage ready` waits for the same, `triage up` says when, and a class that never comes keeps
the gateway not ready, named in `missing`."""

from __future__ import annotations

import time

import pytest
from conftest import DEMO_STREAM, free_port, wait_until
from test_gateway import call, offline_labels

from triage.core.model.artifacts import available_labels
from triage.training.train import read_dataset

pytestmark = pytest.mark.integration


def serve(procs, *flags: str, env: dict[str, str]) -> str:
    """`triage serve` on a free port; its base URL."""
    port = free_port()
    procs.start("serve", "serve", "--port", str(port), *flags, extra_env=env)
    return f"http://127.0.0.1:{port}"


def test_texts_sent_the_moment_readyz_says_ready_are_decided_by_every_class(procs, demo_models):
    labels = available_labels(demo_models)
    batch = {"TRIAGE_MAX_BATCH_TEXTS": "1000"}
    base = serve(procs, "--expected-models", str(demo_models), env=batch)
    procs.start("up", "up", "--models", str(demo_models), "--metrics-base-port", str(free_port()))

    seen: list[dict] = []  # every not-ready answer, until the first ready one

    def ready() -> bool:
        try:
            status, body, _ = call(f"{base}/readyz", token=None)
        except OSError:
            return False
        if status != 200:
            seen.append(body)
        return status == 200

    wait_until(ready, 180, "/readyz to say ready", interval=0.05)
    data = read_dataset(DEMO_STREAM)
    run = f"r{time.monotonic_ns()}"
    texts = [{"id": f"{run}-{i}", "text": t} for i, t in enumerate(data.texts)]
    status, body, _ = call(f"{base}/v1/classify/batch?wait=30", {"texts": texts}, token=None)

    assert status == 200
    results = [item["result"] for item in body["results"]]
    assert all(r["complete"] and not r["missing"] for r in results)
    assert all(set(r["scores"]) == set(labels) for r in results)
    assert [r["label"] for r in results] == offline_labels(demo_models, data.texts)
    # It was not ready while classes were still coming, and said which.
    waiting = [b["missing"] for b in seen if b.get("missing")]
    assert waiting and set(waiting[0]) <= set(labels)

    assert "ready: every class votes" in procs.log("up")
    done = procs.run("ready", "--models", str(demo_models), "--timeout", "30")
    assert done.returncode == 0 and f"every class votes ({len(labels)})" in done.stdout


def test_a_class_that_never_votes_keeps_the_gateway_not_ready(procs, demo_models):
    label = available_labels(demo_models)[0]
    base = serve(procs, env={"TRIAGE_EXPECTED_CLASSES": f"{label},no_such_class"})
    procs.start("classifier", "classifier", "--models", str(demo_models), "--label", label)

    def missing() -> dict | None:
        try:
            status, body, _ = call(f"{base}/readyz", token=None)
        except OSError:
            return None
        waiting = body.get("missing", {}) if status == 503 else {}
        return waiting if list(waiting) == ["no_such_class"] else None

    assert wait_until(missing, 120, f"{label} to vote") == {"no_such_class": "not announced"}
    status, body, _ = call(f"{base}/v2/health/ready", token=None)
    assert status == 503 and "no_such_class (not announced)" in body["error"]

    waited = procs.run("ready", "--label", label, "--label", "no_such_class", "--timeout", "2")
    assert waited.returncode == 1
    assert "no_such_class (not announced)" in waited.stderr and label not in waited.stderr
