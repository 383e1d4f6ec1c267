"""The encoder stage on a real broker: texts encoded once, heads on its features, exactly once.

The real `triage encoder` (packaged ONNX weights), co-located heads trained with `--encoder`
and the aggregator run as subprocesses. The first test kills the encoder with -9 mid-stream and
checks that every text still gets exactly one result, equal to the label computed offline from
the same encoder, and a bad record exactly one dead letter. The second runs a second encoder
beside the first, a head trained on it in shadow, then promotes it: each head scores only the
features of its own encoder, and from the switch on that class votes with the new head.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from conftest import DEMO_TRAIN, Processes, Streamer, stream, wait_for_registry, wait_until

from triage.consumers.settings import ClassifierSettings
from triage.core.model.artifacts import available_labels, load_models
from triage.core.model.decision import decide
from triage.core.model.scoring import Scorer
from triage.core.registry.store import read_registry
from triage.core.registry.view import latest
from triage.core.settings import CommonSettings
from triage.encoder.sentence import DEFAULT
from triage.producer.publisher import Publisher
from triage.schemas.models import TextRecord
from triage.tools.results import read_dead_letters, read_labels
from triage.training.embeddings import embed, load_encoder
from triage.training.train import Options, read_dataset, split, train

pytestmark = [pytest.mark.integration]

ENV = {"TRIAGE_HEARTBEAT_S": "1", "TRIAGE_SWITCH_DELAY_S": "3"}


# The kill -9 test at full size, for a measurement: TRIAGE_TEST_ENCODER_MODELS=DIR (heads trained
# with --encoder on CSV) and TRIAGE_TEST_ENCODER_TEXTS=CSV stream that CSV's held-out texts
# through those heads instead of the demo's.
BIG_MODELS = os.environ.get("TRIAGE_TEST_ENCODER_MODELS")
BIG_TEXTS = os.environ.get("TRIAGE_TEST_ENCODER_TEXTS")


@pytest.fixture(scope="session")
def encoder_models(tmp_path_factory):
    out = tmp_path_factory.mktemp("encoder-models")
    train(read_dataset(DEMO_TRAIN), out, options=Options(encoder="default"), n_jobs=1)
    return out


def texts_to_stream(n: int):
    if not BIG_TEXTS:
        return stream(n)
    _, held_out, _, _ = split(read_dataset(Path(BIG_TEXTS)))
    run = uuid.uuid4().hex[:6]
    return [TextRecord(id=f"{run}-{i:05d}", text=held_out[i % len(held_out)]) for i in range(n)]


def offline_labels(records, *model_dirs_and_labels) -> dict[str, str | None]:
    """What the heads decide offline, each on its own encoder's embeddings of the texts."""
    texts = [r.text for r in records]
    scores: dict = {}
    for models_dir, labels in model_dirs_and_labels:
        models = load_models(models_dir, labels)
        [identity] = {m.manifest.encoder for m in models}
        encoder = load_encoder(identity.partition("@")[0], trained_on=identity)
        scores.update(Scorer(models).score(texts, embed(encoder, texts, progress=False)))
    return {
        r.id: decide({k: float(v[i]) for k, v in scores.items()}).label
        for i, r in enumerate(records)
    }


def exactly_one_result_each(ids: set[str], timeout_s: float = 300) -> dict:
    def all_there():
        found = [r for r in read_labels(CommonSettings()) if r.id in ids]
        return found if {r.id for r in found} == ids else None

    wait_until(all_there, timeout_s, "a result for every text", interval=2)
    time.sleep(3)  # give a would-be duplicate time to show up
    results = [r for r in read_labels(CommonSettings()) if r.id in ids]
    counts = Counter(r.id for r in results)
    assert [i for i, c in counts.items() if c > 1] == []
    return {r.id: r for r in results}


@pytest.mark.fault
@pytest.mark.timeout(600)
def test_encoder_killed_minus_nine_mid_stream(procs: Processes, encoder_models):
    models = Path(BIG_MODELS) if BIG_MODELS else encoder_models
    labels = available_labels(models)
    half = len(labels) // 2
    for name, part in (("unit-a", labels[:half]), ("unit-b", labels[half:])):
        args = [a for label in part for a in ("--label", label)]
        procs.start(name, "classifier", "--models", str(models), *args)
    procs.start("aggregator", "aggregate", "--join-timeout-s", "180")
    # Chunks of 16: the backlog a restart finds (polls of up to 256) commits as several
    # transactions, each while the next chunk encodes, so kills land between and inside them.
    overlap = {"TRIAGE_ENCODE_BATCH": "16"}

    def restart() -> None:
        procs.start(
            "encoder", "encoder", "--instance-id", "enc", "--threads", "1", extra_env=overlap
        )

    restart()
    wait_for_registry(set(labels), timeout_s=120)

    records, run = stream_with_a_bad_record(1500)
    kills = kill_while_streaming(procs, records, "encoder", restart)
    results = exactly_once_as_offline(records, run, models, labels)
    print(f"\nencoder kill -9 x{kills}: {len(records)} texts, {len(results)} results")


@pytest.mark.fault
@pytest.mark.timeout(600)
def test_heads_in_the_encoders_process_killed_minus_nine_mid_stream(
    procs: Processes, encoder_models
):
    """`triage classifier --with-encoder` (what `triage up` runs): texts in, scores out in one
    transaction, no features topic between; killed -9 mid-stream, still one result a text."""
    models = Path(BIG_MODELS) if BIG_MODELS else encoder_models
    labels = available_labels(models)
    procs.start("aggregator", "aggregate", "--join-timeout-s", "180")
    argv = ["classifier", "--models", str(models), "--with-encoder", "--threads", "1"]
    overlap = {"TRIAGE_ENCODE_BATCH": "16"}  # several transactions a poll, as above

    def restart() -> None:
        procs.start("fused", *argv, "--instance-id", "fused", extra_env=overlap)

    restart()
    # Longer than the others: this process loads the encoder and every head before it announces.
    wait_for_registry(set(labels), timeout_s=300)
    listed = procs.run("classifiers", "--json")
    reads = {r["label"]: r["reads"] for r in map(json.loads, listed.stdout.splitlines())}
    assert {reads[label] for label in labels} == {load_models(models)[0].manifest.reads}
    records, run = stream_with_a_bad_record(600)
    kills = kill_while_streaming(procs, records, "fused", restart)
    results = exactly_once_as_offline(records, run, models, labels)
    print(f"\nfused kill -9 x{kills}: {len(records)} texts, {len(results)} results")


def stream_with_a_bad_record(n: int) -> tuple[list[TextRecord], str]:
    run = uuid.uuid4().hex[:6]
    with Publisher() as publisher:
        publisher.send_raw(f"bad-{run}".encode(), b'{"id": "x", "text": ')  # malformed JSON
    return texts_to_stream(n), run


def kill_while_streaming(procs: Processes, records, name: str, restart) -> int:
    """Stream `records` over 20 s, killing `name` with -9 every 2 to 5 s (at least 3 times)."""
    streamer = Streamer(records, rate=len(records) / 20)
    streamer.start()
    rng = random.Random(11)
    kills = 0
    while streamer.is_alive() or kills < 3:
        time.sleep(rng.uniform(2.0, 5.0))
        procs.stop(name, signal.SIGKILL)
        kills += 1
        restart()
    streamer.join()
    assert streamer.error is None, streamer.error
    return kills


def exactly_once_as_offline(records, run: str, models: Path, labels: list[str]) -> dict:
    """One complete result a text, equal to the offline decision; the bad record one dead
    letter."""
    results = exactly_one_result_each({r.id for r in records})
    expected = offline_labels(records, (models, labels))
    wrong = [(i, r.label, expected[i]) for i, r in results.items() if r.label != expected[i]]
    assert wrong == [], f"{len(wrong)} labels differ from offline: {wrong[:5]}"
    assert all(r.complete for r in results.values())
    wait_until(
        lambda: [d for d in read_dead_letters(CommonSettings()) if d.id == f"bad-{run}"],
        60,
        "the malformed record's dead letter",
    )
    time.sleep(2)
    letters = [d for d in read_dead_letters(CommonSettings()) if d.id == f"bad-{run}"]
    assert [d.reason for d in letters] == ["malformed_json"]
    assert not [d for d in read_dead_letters(CommonSettings()) if d.id in results]
    return results


@pytest.mark.timeout(600)
def test_second_encoder_in_shadow_then_promoted_class_by_class(
    procs: Processes, encoder_models, tmp_path
):
    labels = available_labels(encoder_models)
    a = labels[0]
    l3_models = tmp_path / "l3"
    shutil.copytree(encoder_models / a, l3_models / a)
    [manifest] = train(
        read_dataset(DEMO_TRAIN), l3_models, [a], Options(encoder="minilm-l3"), n_jobs=1
    )
    assert manifest.version == "2" and manifest.reads.startswith("features:minilm-l3@")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return procs.run(*args, extra_env=ENV)

    procs.start("aggregator", "aggregate", "--join-timeout-s", "60", extra_env=ENV)
    procs.start("enc-l6", "encoder", "--threads", "1", extra_env=ENV)
    procs.start("enc-l3", "encoder", "--encoder", "minilm-l3", "--threads", "1", extra_env=ENV)
    procs.start("voting", "classifier", "--models", str(encoder_models), extra_env=ENV)
    procs.start("shadow", "classifier", "--models", str(l3_models), "--shadow", extra_env=ENV)
    wait_for_registry(set(labels), timeout_s=120)
    streamer = Streamer(stream(3000), rate=25)
    streamer.start()

    wait_until(
        lambda: any(f"{a}@2" in r.shadow_scores for r in read_labels(CommonSettings())),
        120,
        f"{a}@2 shadow scores",
    )
    listed = cli("classifiers", "--json")
    rows = {(r["label"], r["version"]): r for r in map(json.loads, listed.stdout.splitlines())}
    assert rows[(a, "2")]["reads"] == manifest.reads
    assert rows[(a, "1")]["reads"].startswith(f"features:{DEFAULT}@")
    # Each head skips the features of the other encoder, and says so once.
    assert re.search(r"skipping those of minilm-l3@[0-9a-f]{16}", procs.log("voting"))
    assert re.search(rf"skipping those of {DEFAULT}@[0-9a-f]{{16}}", procs.log("shadow"))

    # no corrections here: the gate has nothing to judge by (test_gate.py is about the gate)
    promoted = cli("promote", "--label", a, "--version", "2", "--min-judged", "0")
    assert promoted.returncode == 0, promoted.stderr
    switch_ms = latest(read_registry(ClassifierSettings()).class_record(a)).since_ms
    time.sleep(20)
    published = streamer.finish()
    by_id = {r.id: r for r in published}
    results = exactly_one_result_each(set(by_id), timeout_s=300)

    after = [r for r in results.values() if r.versions.get(a) == "2"]
    before = [r for r in results.values() if r.versions.get(a) == "1"]
    assert after and before, "texts on both sides of the switch"
    assert max(r.text_timestamp_ms for r in before) < min(r.text_timestamp_ms for r in after)
    assert min(r.text_timestamp_ms for r in after) >= switch_ms
    others = [label for label in labels if label != a]
    for side, heads in (
        (before, [(encoder_models, labels)]),
        (after, [(encoder_models, others), (l3_models, [a])]),
    ):
        expected = offline_labels([by_id[r.id] for r in side], *heads)
        wrong = [r.id for r in side if r.label != expected[r.id]]
        assert wrong == [], f"{len(wrong)} of {len(side)} differ from offline"
        assert all(r.complete for r in side)
