"""Corrections become one class's training rows: positives, hard negatives, merged once."""

from __future__ import annotations

import csv
import io

from triage.training.corrections import NONE_CATEGORY, Example, examples_for, merge, to_csv


def test_positives_and_the_hard_negatives_routed_to_the_class():
    corrections = {"1": "a", "2": "b", "3": None, "4": "b", "5": "a"}
    texts = {"1": "t1", "2": "t2", "3": "t3", "4": "t4"}  # 5: text no longer retained
    routed = {"1": "b", "2": "a", "3": "a", "4": "b", "5": "a"}
    assert examples_for("a", corrections, texts, routed) == [
        Example("t1", "a", "positive"),
        Example("t2", "b", "hard_negative"),
        Example("t3", NONE_CATEGORY, "hard_negative"),
    ]


def test_merge_keeps_one_row_per_text_and_the_correction_wins():
    rows = [("t1", "b"), ("t9", "c"), ("t9", "c")]
    merged = merge(rows, [Example("t1", "a", "positive"), Example("t2", "b", "hard_negative")])
    assert merged == [("t1", "a"), ("t9", "c"), ("t2", "b")]
    back = list(csv.DictReader(io.StringIO(to_csv([('a, "quoted"', "x")]))))
    assert back == [{"text": 'a, "quoted"', "category": "x"}]
