"""`triage compare`: the offline impact of a candidate version of one class on every class.

The same texts are decided twice with `triage.core.model.decision.decide`, the aggregator's
rule: once with the current voters (a models folder), once with the candidate's model in its
class's place (or added, for a new class). The texts are the rows `triage evaluate` would score
(the held-out split when the data is the current models' training file, else every row;
`all_rows` takes every row regardless), restricted to the classes that vote. The before/after
figures and the flow of changed decisions come from `triage.core.model.impact`, the same pure
function the live shadow report uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from triage.core.model.artifacts import MANIFEST, LoadedModel, load_model, load_models
from triage.core.model.decision import decide
from triage.core.model.impact import NONE, Impact, Outcome, impact
from triage.core.model.scoring import Scorer
from triage.training.data import DataError, read_dataset
from triage.training.evaluation import embedder, rows_to_score

FLOWS_SHOWN = 20


@dataclass(frozen=True)
class Comparison:
    summary: dict[str, Any]  # JSON-ready
    impact: Impact


def load_candidate(candidate: Path, label: str) -> LoadedModel:
    """`candidate` is a models folder holding `<label>/`, or that class folder itself."""
    if (candidate / MANIFEST).exists():
        model = load_model(candidate.parent, candidate.name)
    else:
        model = load_model(candidate, label)
    if model.label != label:
        raise DataError(f"{candidate}: the candidate is a model of {model.label!r}, not {label!r}")
    return model


def compare(
    models_dir: Path,
    candidate_dir: Path,
    label: str,
    data_path: Path,
    threshold: float = 0.0,
    all_rows: bool = False,
) -> Comparison:
    current = sorted(load_models(models_dir), key=lambda m: m.label)
    candidate = load_candidate(candidate_dir, label)
    data = read_dataset(data_path)
    if all_rows:
        texts, truths, split = data.texts, data.labels, "the whole file (--all-rows)"
    else:
        test = rows_to_score(current, data)
        texts, truths, split = test.x_test, test.y_test, test.description
    labels = sorted({m.label for m in current} | {label})
    keep = [i for i, y in enumerate(truths) if y in set(labels)]
    if not keep:
        raise DataError(f"{data_path}: no rows of the classes that vote ({labels})")
    texts = [texts[i] for i in keep]
    truths = [truths[i] for i in keep]
    before = _score(current, texts)
    after = {**before, label: _score([candidate], texts)[label]}
    outcomes = [
        Outcome(
            decide(_row(before, n), threshold).label,
            decide(_row(after, n), threshold).label,
            truth,
        )
        for n, truth in enumerate(truths)
    ]
    result = impact(outcomes, labels)
    voting = {m.label: m.version for m in current}
    summary = {
        "label": label,
        "current_version": voting.get(label),
        "candidate_version": candidate.version,
        "test_rows": len(texts),
        "test_split": split,
        "threshold": threshold,
        "accuracy_before": _accuracy(outcomes, "before"),
        "accuracy_after": _accuracy(outcomes, "after"),
        **result.as_dict(),
    }
    return Comparison(summary, result)


def _score(models: list[LoadedModel], texts: list[str]) -> dict[str, np.ndarray]:
    return Scorer(models).score(texts, embedder(models)(texts))


def _row(scores: dict[str, np.ndarray], n: int) -> dict[str, float]:
    return {label: float(column[n]) for label, column in scores.items()}


def _accuracy(outcomes: list[Outcome], side: str) -> float:
    right = sum(getattr(o, side) == o.truth for o in outcomes)
    return round(right / len(outcomes), 4)


def format_comparison(summary: dict[str, Any]) -> str:
    """The summary as plain-text tables: the classes whose figures moved, then the flows."""
    s = summary
    lines = [
        f"{s['label']}: version {s['current_version'] or '(new class)'} → candidate "
        f"{s['candidate_version']} on {s['test_rows']} texts ({s['test_split']}); "
        f"{s['changed']} decisions change; accuracy {s['accuracy_before']:.4f} → "
        f"{s['accuracy_after']:.4f}",
        "",
        f"{'class':30} {'prec':>6} {'→':>6} {'recall':>6} {'→':>6} {'f1':>6} {'→':>6} {'n':>4}",
    ]
    for name, c in s["per_class"].items():
        if name != s["label"] and not any(c[f"{x}_delta"] for x in ("precision", "recall")):
            continue  # unmoved classes: the flows below say none of their texts moved
        lines.append(
            f"{name[:30]:30} {c['precision_before']:6.3f} {c['precision_after']:6.3f} "
            f"{c['recall_before']:6.3f} {c['recall_after']:6.3f} {c['f1_before']:6.3f} "
            f"{c['f1_after']:6.3f} {c['support']:4d}"
        )
    lines += [
        "",
        f"changed decisions (from → to: changed, right after, right before; {NONE}: abstained)",
    ]
    for f in s["flows"][:FLOWS_SHOWN]:
        lines.append(
            f"  {f['from'] or NONE} → {f['to'] or NONE}: {f['changed']}, {f['right']} right, "
            f"{f['was_right']} were right"
        )
    if len(s["flows"]) > FLOWS_SHOWN:
        lines.append(f"  … {len(s['flows']) - FLOWS_SHOWN} more pairs in --json")
    if not s["flows"]:
        lines.append("  none")
    return "\n".join(lines)
