"""The promotion gate on a real broker: a bad candidate is refused, a good one passes.

The demo classifiers vote; two candidate versions of the first class run in shadow beside them:
version 2, retrained with the second class's texts as positives too (it takes that class's
texts), and version 3, retrained with another C on the right data. The demo stream is
published with a correction for every text. The test computes the flow of changed decisions
and every class's precision and recall from the committed results, the shadow scores and the
corrections it sent, and checks `triage shadow-report`, `triage gate` and `triage promote`
against that: the flow table and its right/wrong counts, the refusal's reasons (exit 2, one
line each), the good candidate's pass, and a forced promotion recorded in the class record.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections import Counter
from pathlib import Path

import pytest
from conftest import DEMO_STREAM, DEMO_TRAIN, wait_for_registry, wait_until

from triage.consumers.settings import ClassifierSettings
from triage.core.model.artifacts import available_labels
from triage.core.model.decision import decide
from triage.core.registry.store import read_registry
from triage.core.registry.view import latest
from triage.core.settings import CommonSettings
from triage.producer.publisher import Publisher
from triage.schemas.models import CorrectionRecord, TextRecord
from triage.tools.results import read_labels
from triage.tools.shadow import read_scores
from triage.training.corrections import to_csv
from triage.training.train import Options, read_dataset, train

pytestmark = pytest.mark.integration

MAX_DROP = 0.02  # the default margin
REASON = re.compile(r"^triage gate: refused: (\S+): (precision|recall) would drop ")


def candidates(models: Path, out: Path, label: str, other: str) -> tuple[Path, Path]:
    """Version 2 of `label` trained with `other`'s texts as positives too; version 3 trained
    on the right data with another C (measured offline on the demo stream: 14 and 2 changed
    winners)."""
    data = read_dataset(DEMO_TRAIN)
    csv = out / "bad.csv"
    bad_labels = [label if y == other else y for y in data.labels]
    csv.write_text(to_csv(zip(data.texts, bad_labels, strict=True)), encoding="utf-8")
    bad, good = out / "bad", out / "good"
    shutil.copytree(models / label, bad / label)
    assert train(read_dataset(csv), bad, [label], n_jobs=1, progress=False)[0].version == "2"
    shutil.copytree(bad / label, good / label)
    [manifest] = train(data, good, [label], Options(c=1.0), n_jobs=1, progress=False)
    assert manifest.version == "3"
    return bad, good


def publish_with_truth() -> dict[str, str]:
    """The demo stream, a correction for every text; message id → its class."""
    data, run = read_dataset(DEMO_STREAM), uuid.uuid4().hex[:6]
    truth = {f"{run}-{i:03d}": y for i, y in enumerate(data.labels)}
    texts = [TextRecord(id=i, text=t) for i, t in zip(truth, data.texts, strict=True)]
    fixes = [
        CorrectionRecord(id=i, label=y, source="test", corrected_at_ms=0) for i, y in truth.items()
    ]
    with Publisher() as publisher:
        publisher.publish(texts)
        publisher.correct(fixes)
    return truth


def shadow_of(label: str, version: str) -> dict[str, float]:
    return {
        s.id: s.scores[label]
        for s in read_scores(CommonSettings())
        if s.versions.get(label) == version
    }


def expected_impact(results, shadow, truth, label):
    """The flow {(from, to): (changed, right, wrong)} and (class, figure) → (before, after)."""
    flow: Counter = Counter()
    decided = []
    for r in results:
        before = decide(r.scores).label
        after = decide({**r.scores, label: shadow[r.id]}).label
        decided.append((before, after, truth[r.id]))
        if before != after:
            flow[(before, after, "changed")] += 1
            flow[(before, after, "right" if after == truth[r.id] else "wrong")] += 1
    pairs = {(a, b) for a, b, _ in flow}
    table = {p: tuple(flow[(*p, k)] for k in ("changed", "right", "wrong")) for p in pairs}
    figures = {}
    for c in set(truth.values()):
        for side in (0, 1):
            tp = sum(d[side] == c == d[2] for d in decided)
            predicted, actual = sum(d[side] == c for d in decided), sum(d[2] == c for d in decided)
            for name, n in (("precision", predicted), ("recall", actual)):
                figures.setdefault((c, name), []).append(tp / n if n else None)
    return table, figures


def dropped(figures, label: str) -> set[tuple[str, str]]:
    return {
        key
        for key, (before, after) in figures.items()
        if key[0] != label and None not in (before, after) and before - after > MAX_DROP + 1e-9
    }


@pytest.mark.timeout(240)
def test_the_gate_refuses_a_candidate_taking_another_class_and_passes_a_good_one(
    procs, demo_models, tmp_path
):
    labels = available_labels(demo_models)
    label, other = labels[0], labels[1]
    bad, good = candidates(demo_models, tmp_path, label, other)
    procs.start("classifier", "classifier", "--models", str(demo_models))
    procs.start("aggregator", "aggregate", "--join-timeout-s", "120")
    procs.start("bad", "classifier", "--models", str(bad), "--label", label, "--shadow")
    procs.start("good", "classifier", "--models", str(good), "--label", label, "--shadow")
    wait_for_registry(set(labels), timeout_s=120)
    wait_until(
        lambda: all(read_registry(ClassifierSettings()).announcement(label, v) for v in ("2", "3")),
        120,
        "both candidates to announce themselves",
    )
    truth = publish_with_truth()
    ids = set(truth)

    def everything_scored():
        results = [r for r in read_labels(CommonSettings()) if r.id in ids]
        shadows = [shadow_of(label, v) for v in ("2", "3")]
        done = len(results) == len(ids) and all(ids <= s.keys() for s in shadows)
        return (results, *shadows) if done else None

    results, shadow2, shadow3 = wait_until(everything_scored, 150, "results and shadow scores")

    # The live flow table equals the test's, and its right/wrong counts the corrections sent.
    report = run_json(procs, "shadow-report", "--label", label, "--version", "2")
    table, figures = expected_impact(results, shadow2, truth, label)
    flow = {(f["from"], f["to"]): (f["changed"], f["right"], f["wrong"]) for f in report["flows"]}
    assert flow == table
    assert table[(other, label)][0] > 0  # it takes the texts of the class it was taught
    assert (report["judged"], report["texts"]) == (len(ids), len(ids))
    for (c, name), (before, after) in figures.items():
        move = report["per_class"][c]
        assert (move[f"{name}_before"], move[f"{name}_after"]) == pytest.approx(
            (before, after), abs=1e-4
        )

    # The gate refuses it, one line a reason, for exactly the classes that drop.
    refused = procs.run("gate", "--label", label, "--version", "2")
    assert refused.returncode == 2, refused.stderr
    reasons = ours(refused.stderr)
    named = [REASON.match(line) for line in reasons]
    assert all(named), reasons
    expected = dropped(figures, label)
    assert (other, "recall") in expected
    assert {m.groups() for m in named if m} == expected and len(named) == len(expected)

    # A good candidate passes (exit 0), with the default margin and minimum.
    passed = procs.run("gate", "--label", label, "--version", "3", "--json")
    assert passed.returncode == 0, passed.stderr
    verdict = json.loads(passed.stdout)
    assert verdict["passed"] and verdict["judged"] == len(ids)
    assert not dropped(expected_impact(results, shadow3, truth, label)[1], label)

    # promote shows the impact and refuses the same way; --force is recorded in the registry.
    promote = ("promote", "--label", label, "--version", "2")
    no = procs.run(*promote)
    assert no.returncode == 2 and "changed from" in no.stdout
    assert [line.replace("promote", "gate", 1) for line in ours(no.stderr)] == reasons
    assert latest(class_record(label)).version == "1"
    forced = procs.run(*promote, "--force")
    assert forced.returncode == 0 and "FORCED" in forced.stdout, forced.stderr
    span = latest(class_record(label))
    assert span.version == "2" and span.forced is not None and span.forced.by
    assert [f"triage gate: refused: {r}" for r in span.forced.reasons] == reasons


def ours(stderr: str) -> list[str]:
    """triage's lines (kafka-python logs a slow-poll WARNING now and then on a busy machine)."""
    return [line for line in stderr.splitlines() if line.startswith("triage ")]


def run_json(procs, *args: str) -> dict:
    done = procs.run(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def class_record(label: str):
    return read_registry(ClassifierSettings()).class_record(label)
