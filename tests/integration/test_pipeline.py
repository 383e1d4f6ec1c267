"""The whole pipeline on the test run's real broker: publish → scores → labels."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter

import pytest
from conftest import DEMO_STREAM, wait_for_registry, wait_until

from triage.core.kafka import clients as kafka_clients
from triage.core.model.artifacts import available_labels, load_models
from triage.core.model.decision import decide
from triage.core.model.scoring import Scorer
from triage.core.registry.view import with_voter
from triage.core.settings import CommonSettings
from triage.producer.publisher import Publisher
from triage.schemas.codec import encode
from triage.schemas.models import TextRecord
from triage.tools.results import read_dead_letters, read_labels
from triage.training.train import read_dataset

pytestmark = pytest.mark.integration


def results_for(ids: list[str]) -> dict:
    wanted = set(ids)
    results = [r for r in read_labels(CommonSettings()) if r.id in wanted]
    return results if {r.id for r in results} == wanted else None


def stream_records(n: int | None = None) -> list[TextRecord]:
    data = read_dataset(DEMO_STREAM)
    texts = data.texts[:n] if n else data.texts
    return [TextRecord(id=f"m{i:04d}", text=t) for i, t in enumerate(texts)]


def test_end_to_end_every_text_labelled_once_as_offline(procs, demo_models):
    procs.start("classifier", "classifier", "--models", str(demo_models))
    procs.start("aggregator", "aggregate", "--join-timeout-s", "60")
    labels = available_labels(demo_models)
    wait_for_registry(set(labels))
    records = stream_records()
    with Publisher() as publisher:
        ids = publisher.publish(records)
    assert ids == [r.id for r in records]

    results = wait_until(lambda: results_for(ids), 90, "a result for every text")
    counts = Counter(r.id for r in results)
    assert max(counts.values()) == 1, "a text got two results"

    offline = Scorer(load_models(demo_models)).score([r.text for r in records])
    by_id = {r.id: r for r in results}
    for i, record in enumerate(records):
        result = by_id[record.id]
        expected = decide({label: float(offline[label][i]) for label in labels})
        assert result.complete and result.missing == []
        assert result.label == expected.label
        assert result.probability == pytest.approx(expected.probability, abs=1e-12)
        assert set(result.versions) == set(labels)


def test_up_runs_one_process_per_classifier_and_stops_on_sigterm(procs, demo_models):
    labels = available_labels(demo_models)[:3]
    up = procs.start(
        "up", "up", "--models", str(demo_models), *sum((["--label", x] for x in labels), [])
    )
    wait_for_registry(set(labels))
    with Publisher() as publisher:
        ids = publisher.publish(stream_records(20))
    results = wait_until(lambda: results_for(ids), 60, "results from `triage up`")
    assert all(set(r.scores) == set(labels) and r.complete for r in results)
    started = time.monotonic()
    assert procs.stop("up") == 0
    assert time.monotonic() - started < 20
    assert up.returncode == 0


def test_timeout_names_the_missing_classifier(procs, demo_models):
    settings = CommonSettings()
    ghost = with_voter(None, "ghost", "1", since_ms=0)  # a class whose voter never runs
    producer = kafka_clients.producer(settings)
    producer.send(settings.topics.registry, key=b"ghost", value=encode(ghost)).get(timeout=10)
    producer.close()
    procs.start("classifier", "classifier", "--models", str(demo_models))
    procs.start("aggregator", "aggregate", "--join-timeout-s", "2")
    wait_for_registry(set(available_labels(demo_models)))
    with Publisher() as publisher:
        ids = publisher.publish(stream_records(5))
    results = wait_until(lambda: results_for(ids), 60, "partial results")
    for result in results:
        assert not result.complete and result.missing == ["ghost"]
        assert result.label is not None and "ghost" not in result.scores
        assert result.decided_at_ms - result.text_timestamp_ms >= 2000


def test_abstains_below_threshold(procs, demo_models):
    procs.start("classifier", "classifier", "--models", str(demo_models))
    procs.start("aggregator", "aggregate", "--threshold", "0.5")
    wait_for_registry(set(available_labels(demo_models)))
    gibberish = TextRecord(id="nonsense", text="qwxz plorf zzyzx vvv")
    with Publisher() as publisher:
        ids = publisher.publish([gibberish, *stream_records(30)])
    results = wait_until(lambda: results_for(ids), 60, "results")
    for result in results:
        assert (result.label is None) == (max(result.scores.values()) < 0.5)
    assert next(r for r in results if r.id == "nonsense").label is None


def test_malformed_input_goes_to_dead_letters_once(procs, demo_models):
    procs.start(
        "classifier",
        "classifier",
        "--models",
        str(demo_models),
        extra_env={"TRIAGE_MAX_TEXT_CHARS": "200"},
    )
    procs.start("aggregator", "aggregate")
    wait_for_registry(set(available_labels(demo_models)))
    settings = CommonSettings()
    bad = {
        b"bad-utf8": (b"\xff\xfe\xfa", "invalid_utf8"),
        b"no-text": (b'{"id": "no-text", "metadata": {}}', "missing_text"),
        b"empty": (b"   ", "empty_text"),
        b"too-long": (b"x" * 500, "text_too_long"),
        b"bad-json": (b'{"text": "unterminated', "malformed_json"),
        b"future": (b'{"schema_version": 7, "text": "hi"}', "unknown_schema_version"),
    }
    with Publisher() as publisher:
        for key, (value, _) in bad.items():
            publisher.send_raw(key, value)
        publisher.send_raw(None, b"plain text but no key")
        ids = publisher.publish([TextRecord(id="good", text="my card has not arrived yet")])
    producer = kafka_clients.producer(settings)
    producer.send(settings.topics.scores, key=b"junk", value=b"not a score").get(timeout=10)
    producer.close()

    def letters():
        found = list(read_dead_letters(settings))
        return found if len(found) >= len(bad) + 2 else None

    found = wait_until(letters, 60, "dead letters")
    from_texts = [d for d in found if d.source_topic == settings.topics.texts]
    reasons = Counter((d.id, d.reason) for d in from_texts)
    for key, (_, reason) in bad.items():
        assert reasons[(key.decode(), reason)] == 1, (key, reasons)
    assert Counter(d.reason for d in from_texts)["missing_id"] == 1
    assert len(from_texts) == len(bad) + 1
    [junk] = [d for d in found if d.source_topic == settings.topics.scores]
    assert junk.reason == "malformed_json"
    assert results_for(ids)[0].label is not None
    assert not [r for r in read_labels(settings) if r.id in {k.decode() for k in bad}]


def test_cli_publish_prints_ids_and_results_reads_them(procs, demo_models, env):
    procs.start("classifier", "classifier", "--models", str(demo_models))
    procs.start("aggregator", "aggregate")
    wait_for_registry(set(available_labels(demo_models)))
    texts = "my card never came\nwhat exchange rate do you use\nI want to close my account\n"
    published = subprocess.run(
        [sys.executable, "-m", "triage.cli", "publish", "-"],
        input=texts,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    ids = published.stdout.split()
    assert len(ids) == 3 and len(set(ids)) == 3
    wait_until(lambda: results_for(ids), 60, "results")
    shown = subprocess.run(
        [sys.executable, "-m", "triage.cli", "results", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    printed = [json.loads(line) for line in shown.stdout.splitlines()]
    assert {p["id"] for p in printed} == set(ids)
    assert all(
        {"label", "probability", "scores", "complete", "missing", "versions"} <= p.keys()
        for p in printed
    )


def test_cli_errors_are_one_clear_line(tmp_path, env):
    missing = subprocess.run(
        [sys.executable, "-m", "triage.cli", "publish", str(tmp_path / "nope.csv")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "nope.csv" in missing.stderr
    no_models = subprocess.run(
        [sys.executable, "-m", "triage.cli", "classifier", "--models", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert no_models.returncode == 2 and "triage train" in no_models.stderr
