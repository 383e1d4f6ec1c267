"""Every record on `texts` accounted for, in both deployment shapes: a reused id with another
text, a re-publish, null values, and ids of every JSON type, against a real broker."""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.request
import uuid
from collections import Counter

import pytest
from conftest import DEMO_STREAM, free_port, wait_for_registry, wait_until

from triage.core.model.artifacts import available_labels, load_models
from triage.core.model.decision import decide
from triage.core.model.scoring import Scorer
from triage.core.settings import CommonSettings
from triage.producer.publisher import Publisher
from triage.tools.results import read_dead_letters, read_labels
from triage.training.train import read_dataset

pytestmark = pytest.mark.integration


def offline(models, text: str) -> str | None:
    scores = Scorer(load_models(models)).score([text])
    return decide({k: float(v[0]) for k, v in scores.items()}).label


def dead_letter_counts(port: int) -> Counter:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = re.findall(r'^triage_dead_letters_total\{reason="(\w+)"\} (\S+)$', body, re.M)
    return Counter({reason: int(float(value)) for reason, value in found})


@pytest.mark.parametrize("mode", ["colocated", "per-process"])
def test_reused_ids_null_values_and_id_types_each_have_one_outcome(procs, demo_models, mode):
    labels = available_labels(demo_models)
    units = [labels] if mode == "colocated" else [[label] for label in labels]
    for i, unit in enumerate(units):
        args = ["classifier", "--models", str(demo_models)]
        for label in unit:
            args += ["--label", label]
        procs.start(f"classifier-{i}", *args)
    port = free_port()
    procs.start("aggregator", "aggregate", "--metrics-port", str(port))
    wait_for_registry(set(labels), timeout_s=120)
    first, other, third = read_dataset(DEMO_STREAM).texts[:3]
    run = uuid.uuid4().hex[:6]
    number = int(uuid.uuid4().int % 10**12)

    def text(message_id, body):
        return json.dumps({"id": message_id, "text": body}).encode()

    sent = [
        (f"dup-{run}".encode(), text(f"dup-{run}", first)),  # the first text under the id
        (f"dup-{run}".encode(), text(f"dup-{run}", other)),  # another text, same id
        (f"retry-{run}".encode(), text(f"retry-{run}", first)),
        (f"retry-{run}".encode(), text(f"retry-{run}", first)),  # a re-publish: one result
        (f"null-{run}".encode(), None),  # (kafka-python refuses a record with neither)
        (None, json.dumps({"id": number, "text": first}).encode()),
        (f"float-{run}".encode(), json.dumps({"id": 1.5, "text": first}).encode()),
    ]
    with Publisher() as publisher:
        for key, value in sent:
            publisher.send_raw(key, value)
    settings = CommonSettings()
    ids = {f"dup-{run}", f"retry-{run}", str(number)}

    def outcomes():
        ours = [d for d in read_dead_letters(settings) if d.id and run in d.id]
        return len(ours) >= 3 and _labels(ids)

    wait_until(outcomes, 120, "every record's outcome", interval=1)
    time.sleep(3)  # give a would-be second result or dead letter time to show up
    results = [r for r in read_labels(settings) if r.id in ids]
    assert Counter(r.id for r in results) == dict.fromkeys(ids, 1)
    by_id = {r.id: r for r in results}
    assert by_id[f"dup-{run}"].label == offline(demo_models, first)  # the first text's own
    assert by_id[str(number)].label == offline(demo_models, first)

    letters = [d for d in read_dead_letters(settings) if d.id and run in d.id]
    assert Counter((d.reason, d.id) for d in letters) == Counter(
        {
            ("duplicate_id", f"dup-{run}"): 1,
            ("empty_record", f"null-{run}"): 1,
            ("invalid_id", f"float-{run}"): 1,
        }
    )
    [duplicate] = [d for d in letters if d.reason == "duplicate_id"]
    assert "first seen with another text" in duplicate.detail
    counts = wait_until(
        lambda: (c := dead_letter_counts(port))["invalid_id"] >= 1 and c, 30, "the counters"
    )
    assert counts["duplicate_id"] == 1 and counts["empty_record"] == 1

    # Through a kill -9 the aggregator remembers what it decided: a retry is still one result,
    # a third text under the used id one more dead letter.
    procs.stop("aggregator", signal.SIGKILL)
    procs.start("aggregator", "aggregate")
    with Publisher() as publisher:
        publisher.send_raw(f"retry-{run}".encode(), text(f"retry-{run}", first))
        publisher.send_raw(f"dup-{run}".encode(), text(f"dup-{run}", third))

    def third_refused():
        found = [d for d in read_dead_letters(settings) if d.id == f"dup-{run}"]
        return len(found) >= 2 and found

    assert len(wait_until(third_refused, 120, "the third text's dead letter", interval=1)) == 2
    time.sleep(3)
    after = Counter(r.id for r in read_labels(settings) if r.id in ids)
    assert after == dict.fromkeys(ids, 1)


def _labels(ids: set[str]):
    found = [r for r in read_labels(CommonSettings()) if r.id in ids]
    return found if {r.id for r in found} == ids else None
