"""The monitor on a real broker: texts with known truth through the real pipeline, corrections
for a subset, a kill -9 of the monitor mid-way, and then `triage quality --json` and the
scraped metrics equal the counts computed here from the same results and corrections. The
defined outcomes (a correction before its result, twice, for an id never seen, with a label
no class has) each show up once as what docs/operating.md says."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter

import pytest
from conftest import DEMO_STREAM, DEMO_TRAIN, free_port, wait_for_registry, wait_until

from triage.core.model.artifacts import available_labels
from triage.core.settings import CommonSettings
from triage.producer.publisher import Publisher
from triage.schemas.models import CorrectionRecord, LabelRecord, TextRecord
from triage.tools.results import read_dead_letters, read_labels
from triage.training.corrections import NONE_CATEGORY
from triage.training.train import read_dataset

pytestmark = pytest.mark.integration


def fix(message_id: str, label: str | None) -> CorrectionRecord:
    return CorrectionRecord(id=message_id, label=label, source="test", corrected_at_ms=0)


def expected_counts(results: dict[str, LabelRecord], truth: dict[str, str | None]) -> Counter:
    """(label, version, tp|fp|fn) over the corrected results, as the monitor must count."""
    counts: Counter = Counter()
    for mid, actual in truth.items():
        r = results[mid]
        for label, version in r.versions.items():
            predicted, positive = r.label == label, actual == label
            kind = (
                "tp" if predicted and positive else "fp" if predicted else "fn" if positive else ""
            )
            if kind:
                counts[(label, version, kind)] += 1
    return counts


def scraped(port: int) -> Counter:
    """The monitor's confusion counts since each version started (none while it restarts)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    except OSError:
        return Counter()
    names = {"true_positives": "tp", "false_positives": "fp", "false_negatives": "fn"}
    found = re.findall(
        r"^triage_quality_(true_positives|false_positives|false_negatives)"
        r'\{label="([^"]+)",(?:owner="[^"]*",)?version="([^"]+)",window="version"\} (\S+)$',
        body,
        re.M,
    )
    return Counter(
        {(label, version, names[n]): int(float(v)) for n, label, version, v in found if float(v)}
    )


def quality_json(env: dict[str, str], models) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "triage.cli", "quality", "--json", "--models", str(models)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


@pytest.mark.fault
@pytest.mark.timeout(300)
def test_live_quality_equals_the_offline_counts_through_a_kill_9(procs, demo_models, tmp_path):
    labels = available_labels(demo_models)
    port = free_port()
    monitor = ["monitor", "--models", str(demo_models), "--correction-wait-s", "8"]
    monitor += ["--metrics-port", str(port)]
    procs.start("classifier", "classifier", "--models", str(demo_models))
    procs.start("aggregator", "aggregate")
    procs.start("monitor", *monitor)
    wait_for_registry(set(labels), timeout_s=120)

    data = read_dataset(DEMO_STREAM)
    run = uuid.uuid4().hex[:6]
    texts = [TextRecord(id=f"{run}-{i:03d}", text=t) for i, t in enumerate(data.texts[:80])]
    truth_of = {t.id: label for t, label in zip(texts, data.labels, strict=False)}
    early = texts[-1]  # its correction is published before the text
    with Publisher() as publisher:
        publisher.correct([fix(early.id, truth_of[early.id])])
        publisher.publish(texts[:-1])
    settings = CommonSettings()

    def results(count: int) -> dict[str, LabelRecord] | None:
        found = {r.id: r for r in read_labels(settings) if r.id.startswith(run)}
        return found if len(found) >= count else None

    wait_until(lambda: results(len(texts) - 1), 120, "the first results", interval=1)
    first, second = texts[:30], texts[30:60]
    # None of our classes, for some: what they were routed to is then wrong
    truth = {t.id: truth_of[t.id] for t in first + second}
    for t in second[::5]:
        truth[t.id] = None
    with Publisher() as publisher:
        publisher.correct(fix(t.id, truth[t.id]) for t in first)
        publisher.correct([fix(first[0].id, "refund_request")])  # a second correction
        publisher.correct([fix(f"{run}-never", labels[0]), fix(texts[1].id, "no_such_class")])
    wait_until(lambda: scraped(port).total() > 0, 60, "the first corrections counted")
    with Publisher() as publisher:
        publisher.correct(fix(t.id, truth[t.id]) for t in second)
    procs.stop("monitor", signal.SIGKILL)  # mid-way: some of the second half may be committed
    procs.start("monitor", *monitor)
    with Publisher() as publisher:
        publisher.publish([early])  # the text whose correction waited for it
    truth[early.id] = truth_of[early.id]

    done = wait_until(lambda: results(len(texts)), 60, "every result, the early text's too")
    expected = expected_counts(done, truth)
    wait_until(lambda: scraped(port) == expected, 120, "the restarted monitor's counts", 1)

    report = quality_json(procs.env, demo_models)
    for label in labels:
        tp, fp, fn = (expected[(label, "1", k)] for k in ("tp", "fp", "fn"))
        live = report["per_class"][label]
        assert live["support"] == tp + fn
        assert live["precision"] == (round(tp / (tp + fp), 4) if tp + fp else None)
        assert live["recall"] == (round(tp / (tp + fn), 4) if tp + fn else None)
        assert live["versions"]["1"]["offline"]["precision"] > 0
    assert sum(report["per_class"][x]["versions"]["1"]["live"]["corrected"] for x in labels) == (
        len(truth) * len(labels)
    )

    def ours():
        letters = [d for d in read_dead_letters(settings) if d.id and d.id.startswith(run)]
        return len(letters) >= 3 and letters

    letters = wait_until(ours, 60, "the corrections' dead letters", interval=1)
    time.sleep(2)  # a second dead letter for any of them would show by now
    letters = [d for d in read_dead_letters(settings) if d.id and d.id.startswith(run)]
    assert Counter((d.reason, d.id) for d in letters) == {
        ("duplicate_correction", first[0].id): 1,
        ("unknown_id", f"{run}-never"): 1,
        ("unknown_label", texts[1].id): 1,
    }
    assert all(d.refused_by.startswith("monitor:") for d in letters)

    # The corrections as one class's training rows: its positives and its hard negatives.
    label = labels[0]
    out = tmp_path / "merged.csv"
    export = [sys.executable, "-m", "triage.cli", "export-corrections", "--label", label]
    export += ["--data", str(DEMO_TRAIN), "--out", str(out)]
    subprocess.run(export, env=procs.env, check=True, timeout=60, capture_output=True)
    texts_by_id = {t.id: t.text for t in texts}
    positives = {texts_by_id[m] for m, right in truth.items() if right == label}
    negatives = {
        (texts_by_id[m], right or NONE_CATEGORY)
        for m, right in truth.items()
        if done[m].label == label and right != label
    }
    merged = read_dataset(out)
    rows = set(zip(merged.texts, merged.labels, strict=True))
    assert {(t, label) for t in positives} | negatives <= rows and positives
    assert len(merged.texts) == len(set(merged.texts))  # one row per text
