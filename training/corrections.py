"""Corrections as training rows for one class, merged with its training CSV.

Pure logic: given the corrections (message id → the right class, None for none of ours), the
texts and what the pipeline routed them to, one class's owner gets its positives (every
corrected text whose right class is theirs) and its hard negatives (texts routed to their
class that belonged elsewhere), merged with the training CSV without duplicates: a text
already in the CSV keeps one row, with the correction's class (the newer truth). Then `triage
train --label L` retrains that class alone and it ships with shadow → promote.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# The category a text of none of our classes gets in a training CSV (a negative for every
# class). Stratified splitting needs at least two rows of it.
NONE_CATEGORY = "none_of_our_classes"


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    category: str
    why: str  # "positive" or "hard_negative"


def examples_for(
    label: str,
    corrections: Mapping[str, str | None],
    texts: Mapping[str, str],
    routed: Mapping[str, str | None],
) -> list[Example]:
    """Class `label`'s rows from the corrections whose text is known, in id order."""
    found = []
    for message_id in sorted(corrections.keys() & texts.keys()):
        right = corrections[message_id]
        if right == label:
            found.append(Example(texts[message_id], label, "positive"))
        elif routed.get(message_id) == label:
            found.append(Example(texts[message_id], right or NONE_CATEGORY, "hard_negative"))
    return found


def merge(rows: Iterable[tuple[str, str]], examples: Iterable[Example]) -> list[tuple[str, str]]:
    """The training rows plus the examples, one row per text; an example's class wins."""
    merged = dict(rows)
    for example in examples:
        merged[example.text] = example.category
    return list(merged.items())


def to_csv(rows: Iterable[tuple[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["text", "category"])
    writer.writerows(rows)
    return out.getvalue()
