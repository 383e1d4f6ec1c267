"""`triage export-corrections`: one class's corrections as rows of its training CSV.

Reads the corrections, texts and results topics from their start (committed records only) and
hands them to `triage.training.corrections`: the first correction of an id counts, as in the
monitor.
Texts past the topic's retention cannot be exported; their corrections are reported as such.
"""

from __future__ import annotations

from pathlib import Path

from triage.core.kafka.reader import TopicReader
from triage.core.settings import CommonSettings
from triage.schemas.codec import Rejected, decode_correction, decode_text
from triage.tools.results import read_labels
from triage.training.corrections import examples_for, merge, to_csv
from triage.training.train import read_dataset


def read_corrections(settings: CommonSettings) -> dict[str, str | None]:
    """Message id → its first correction's class (None: none of our classes)."""
    found: dict[str, str | None] = {}
    with TopicReader(settings, settings.topics.corrections) as reader:
        for record in reader.read_to_end(stall_s=None):
            c = decode_correction(record.value)
            if not isinstance(c, Rejected) and c.id not in found:
                found[c.id] = c.label
    return found


def read_texts(settings: CommonSettings, wanted: set[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    with TopicReader(settings, settings.topics.texts) as reader:
        for record in reader.read_to_end(stall_s=None):
            t = decode_text(record.key, record.value)
            if not isinstance(t, Rejected) and t.id in wanted and t.id not in found:
                found[t.id] = t.text
    return found


def export(settings: CommonSettings, label: str, data: Path, out: Path) -> dict[str, int]:
    """Write `data` merged with `label`'s examples to `out`; what was added, counted."""
    corrections = read_corrections(settings)
    texts = read_texts(settings, set(corrections))
    routed = {r.id: r.label for r in read_labels(settings) if r.id in corrections}
    examples = examples_for(label, corrections, texts, routed)
    dataset = read_dataset(data)
    rows = list(zip(dataset.texts, dataset.labels, strict=True))
    merged = merge(rows, examples)
    out.write_text(to_csv(merged), encoding="utf-8")
    return {
        "corrections": len(corrections),
        "without_text": len(corrections.keys() - texts.keys()),
        "positives": sum(e.why == "positive" for e in examples),
        "hard_negatives": sum(e.why == "hard_negative" for e in examples),
        "rows_before": len(rows),
        "rows_after": len(merged),
    }
