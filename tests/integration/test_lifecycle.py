"""Shipping a class at a time on a pipeline that keeps receiving texts throughout.

One pipeline on the test run's broker: a unit voting for three classes and the aggregator.
While texts stream in at a steady rate, the test adds a fourth class, starts version 2 of the
first class in shadow, promotes it, retires the third class and then version 1 of the first,
with the real `triage` commands. Then it reads every committed result and checks each against
the registry history it recorded: exactly one result per text, complete, voted by exactly the
classes (and versions) the class records name for the text's timestamp, shadow scores only
from versions that did not vote, and no retired class in any result decided after its
tombstone. The aggregator's shadow counters must match what the results show.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections import Counter

import pytest
from conftest import DEMO_TRAIN, Streamer, stream, wait_for_registry, wait_until
from prometheus_client.parser import text_string_to_metric_families

from triage.consumers.settings import ClassifierSettings
from triage.core.model.artifacts import available_labels
from triage.core.model.decision import would_change_winner
from triage.core.registry.store import read_registry
from triage.core.registry.view import latest
from triage.core.settings import CommonSettings
from triage.tools.results import read_labels
from triage.training.train import Options, read_dataset, train

pytestmark = pytest.mark.integration

# No corrections here: the promotion gate's minimum of judged texts is off (test_gate.py).
LIFECYCLE_ENV = {
    "TRIAGE_HEARTBEAT_S": "1",
    "TRIAGE_SWITCH_DELAY_S": "3",
    "TRIAGE_GATE_MIN_JUDGED": "0",
}
# A result decided this long after a tombstone was written must not name what it retired
# (the aggregator reads the registry every poll; the margin only absorbs a busy machine).
RETIRE_MARGIN_MS = 5_000


@pytest.fixture
def v2_models(demo_models, tmp_path):
    """Version 2 of the first demo class, trained with other parameters into its own folder."""
    label = available_labels(demo_models)[0]
    out = tmp_path / "models-v2"
    shutil.copytree(demo_models / label, out / label)
    [manifest] = train(read_dataset(DEMO_TRAIN), out, [label], Options(c=1.0), n_jobs=1)
    assert manifest.version == "2"
    return out


def now_ms() -> int:
    return int(time.time() * 1000)


def results() -> list:
    return list(read_labels(CommonSettings()))


def results_from(t_ms: int) -> list:
    """Results of texts published at or after `t_ms`, or None while there are none."""
    return [r for r in results() if r.text_timestamp_ms >= t_ms] or None


def class_record(label: str):
    return read_registry(ClassifierSettings()).class_record(label)


def test_add_shadow_promote_retire_while_texts_keep_coming(procs, demo_models, v2_models):
    labels = available_labels(demo_models)
    a, b, c, d = labels[:4]  # a gets a version 2, c is retired, d is added

    def cli(*args: str) -> subprocess.CompletedProcess:
        return procs.run(*args, extra_env=LIFECYCLE_ENV)

    def roles() -> dict[tuple[str, str], dict]:
        listed = cli("classifiers", "--json")
        assert listed.returncode == 0, listed.stderr
        rows = [json.loads(line) for line in listed.stdout.splitlines()]
        return {(row["label"], row["version"]): row for row in rows}

    def start(name: str, models, *args: str) -> None:
        procs.start(name, "classifier", "--models", str(models), *args, extra_env=LIFECYCLE_ENV)

    procs.start(
        "aggregator",
        "aggregate",
        "--join-timeout-s",
        "60",
        "--metrics-port",
        "0",
        extra_env=LIFECYCLE_ENV,
    )
    start("base", demo_models, "--label", a, "--label", b, "--label", c)
    wait_for_registry({a, b, c})  # announced, and voting

    streamer = Streamer(stream(20_000), rate=20)
    streamer.start()

    # (a) Add a class: it votes on texts from its start plus the switch delay.
    start("added", demo_models, "--label", d)
    wait_until(lambda: class_record(d), 60, f"{d}'s class record")
    added_at = latest(class_record(d)).since_ms
    wait_until(lambda: results_from(added_at + 1000), 90, f"results voted by {d}")

    # (b) Version 2 of `a` in shadow: scores every text, votes on none.
    start("shadow", v2_models, "--label", a, "--shadow")
    wait_until(
        lambda: any(f"{a}@2" in r.shadow_scores for r in results()), 90, f"{a}@2 shadow scores"
    )
    listed = roles()
    assert listed[(a, "2")]["role"] == "shadow" and listed[(a, "1")]["role"] == "voting"
    assert listed[(a, "2")]["mode"] == "shadow" and not listed[(a, "2")]["stale"]

    # (c) Promote it: from one instant on, version 2 votes and version 1 does not.
    refused = cli("promote", "--label", a, "--version", "9")
    # One line (kafka-python may log a slow-poll WARNING too on a busy machine: not ours).
    refusal = [line for line in refused.stderr.splitlines() if line.startswith("triage ")]
    assert refused.returncode == 2 and len(refusal) == 1, refused.stderr
    assert f"{a}@9 has not announced itself" in refused.stderr
    promoted = cli("promote", "--label", a, "--version", "2")
    assert promoted.returncode == 0, promoted.stderr
    # (it prints the live impact first: the promotion is its last line)
    last = promoted.stdout.splitlines()[-1]
    assert last.startswith(f"promoted {a}@2: votes on texts published from")
    switch = latest(class_record(a))
    assert switch.version == "2" and switch.since_ms > now_ms() - 60_000
    wait_until(lambda: results_from(switch.since_ms + 1000), 90, f"results voted by {a}@2")
    listed = roles()
    assert listed[(a, "2")]["role"] == "voting" and listed[(a, "1")]["role"] == "shadow"

    # (d) Retire a class (its process keeps running: a zombie), then version 1 of `a`.
    before_retire = now_ms()
    retired = cli("retire", "--label", c)
    after_retire = now_ms()
    assert retired.returncode == 0 and retired.stdout.startswith(f"retired {c}:"), retired.stderr
    wait_until(lambda: results_from(after_retire + RETIRE_MARGIN_MS), 90, "results after retire")
    voter = cli("retire", "--label", a, "--version", "2")
    assert voter.returncode == 2 and "votes" in voter.stderr
    assert cli("retire", "--label", a, "--version", "1").returncode == 0
    after_retire_v1 = now_ms()
    wait_until(
        lambda: results_from(after_retire_v1 + RETIRE_MARGIN_MS), 90, "results after retire v1"
    )
    time.sleep(2)  # heartbeats of the still-running processes land after the tombstones
    listed = roles()
    assert listed[(c, "1")]["role"] == "retired" and listed[(a, "1")]["role"] == "retired"

    published = streamer.finish()
    assert streamer.error is None, streamer.error
    ids = {r.id for r in published}
    wait_until(lambda: ids <= {r.id for r in results()}, 120, "a result for every text")
    time.sleep(2)  # give a would-be duplicate time to show up
    everything = results()
    counts = Counter(r.id for r in everything)
    assert set(counts) == ids and max(counts.values()) == 1

    spans = [(s.version, s.since_ms) for s in class_record(a).voting]
    assert spans[1:] == [("2", switch.since_ms)] and spans[0][0] == "1"
    assert class_record(c) is None

    seen = Counter()
    for r in everything:
        t, decided = r.text_timestamp_ms, r.decided_at_ms
        named = {*r.scores, *r.missing, *r.versions, *(k.split("@")[0] for k in r.shadow_scores)}
        assert r.complete and r.missing == [], r
        assert set(r.versions) == set(r.scores), r
        expected = {a, b} | ({d} if t >= added_at else set())
        if decided < before_retire:
            expected.add(c)  # decided before the tombstone existed
        elif decided >= after_retire + RETIRE_MARGIN_MS:
            assert c not in named, r
        elif c in r.scores:
            expected.add(c)  # decided while the tombstone was on its way: either is right
        assert set(r.scores) == expected, (r, expected)
        assert r.versions[a] == ("2" if t >= switch.since_ms else "1"), r
        assert all(r.versions[x] == "1" for x in expected - {a}), r
        allowed = {f"{d}@1"} if t < added_at else set()
        if t < switch.since_ms:
            allowed.add(f"{a}@2")
        elif decided < after_retire_v1 + RETIRE_MARGIN_MS:
            allowed.add(f"{a}@1")
        if decided >= after_retire_v1 + RETIRE_MARGIN_MS:
            assert f"{a}@1" not in r.shadow_scores, r
        assert set(r.shadow_scores) <= allowed, (r, allowed)
        seen[(r.versions[a], d in r.scores, c in r.scores)] += 1
        seen.update(r.shadow_scores.keys())
        if decided >= after_retire + RETIRE_MARGIN_MS:
            seen["after retire"] += 1
    # Every phase had traffic: v1 and v2 votes, with and without the added and retired classes.
    for phase in [("1", False, True), ("1", True, True), ("2", True, True), ("2", True, False)]:
        assert seen[phase], (phase, seen)
    assert seen[f"{a}@2"] and seen[f"{a}@1"] and seen["after retire"], seen
    print(f"\nlifecycle: {len(everything)} results, {dict(seen)}")

    check_shadow_metrics(procs.log("aggregator"), everything)

    # A classifier that stops answering is flagged.
    assert procs.stop("added") == 0
    wait_until(lambda: roles()[(d, "1")]["stale"], 30, f"{d}@1 to be flagged stale")


def check_shadow_metrics(aggregator_log: str, everything: list) -> None:
    """The aggregator's shadow counters count exactly what the committed results show."""
    port = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", aggregator_log).group(1)
    decisions, changed = Counter(), Counter()
    for r in everything:
        for key, probability in r.shadow_scores.items():
            label, _, version = key.partition("@")
            decisions[(label, version)] += 1
            changed[(label, version)] += would_change_winner(r.scores, label, probability)

    def scraped():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
            text = page.read().decode()
        found = {"decisions": Counter(), "changed": Counter()}
        names = {
            "triage_shadow_decisions_total": "decisions",
            "triage_shadow_changed_winner_total": "changed",
        }
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in names:
                    key = (sample.labels["label"], sample.labels["version"])
                    found[names[sample.name]][key] = int(sample.value)
        return found

    wanted = {"decisions": decisions, "changed": changed}
    wait_until(lambda: scraped() == wanted, 30, f"shadow counters {wanted}")
    assert sum(changed.values()) <= sum(decisions.values())
