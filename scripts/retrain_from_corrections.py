"""Does retraining one class with its corrections raise its held-out F1? Measured offline.

`python scripts/retrain_from_corrections.py --data banking77/train.csv [--label L] [--worst K]`

The labelled CSV is split (stratified, seeded) into a base set the classifiers are trained on
(60 %), a "live" part (20 %) whose texts are routed by the base ensemble and corrected by
simulated agents who review every one of them (their true labels), and an evaluation part
(20 %) nobody trains on. Each class's corrections are exported as in `triage
export-corrections` (positives and hard negatives, merged with the base CSV) and the class
alone is retrained on the merged CSV. Printed as JSON, per class, on the evaluation part before
and after: its binary F1 at 0.5 (as `triage evaluate` reports it) and its F1 as routed (the
argmax over every class, the retrained one swapped in). With no `--label`, the `--worst` K
classes by F1 before. No broker: the routing is the pipeline's argmax
(`triage.core.model.decision.decide`) over the same models' scores. `mean_change` averages the
after − before differences over the classes retrained (`--worst 77`: every class, one by one).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from triage.core.model.artifacts import load_models
from triage.core.model.decision import decide
from triage.training.corrections import examples_for, merge, to_csv
from triage.training.train import read_dataset, train


def scores(models_dir: Path, texts: list[str]) -> dict[str, np.ndarray]:
    out = {}
    for model in load_models(models_dir):
        clf = model.pipeline
        out[model.label] = clf.predict_proba(texts)[:, list(clf.classes_).index(1)]
    return out


def f1(proba: np.ndarray, truth: list[str], label: str) -> float:
    y = np.array([t == label for t in truth])
    return round(float(f1_score(y, proba >= 0.5, zero_division=0)), 4)


def routed(by_class: dict[str, np.ndarray], n: int) -> list[str | None]:
    return [decide({c: float(p[i]) for c, p in by_class.items()}).label for i in range(n)]


def routed_f1(predicted: list[str | None], truth: list[str], label: str) -> float:
    y = np.array([t == label for t in truth])
    return round(float(f1_score(y, np.array([p == label for p in predicted]))), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--label", action="append")
    parser.add_argument("--worst", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    data = read_dataset(args.data)
    base_x, rest_x, base_y, rest_y = train_test_split(
        data.texts, data.labels, test_size=0.4, random_state=args.seed, stratify=data.labels
    )
    live_x, eval_x, live_y, eval_y = train_test_split(
        rest_x, rest_y, test_size=0.5, random_state=args.seed, stratify=rest_y
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base_csv = work / "base.csv"
        base_csv.write_text(to_csv(zip(base_x, base_y, strict=True)), encoding="utf-8")
        train(read_dataset(base_csv), work / "before", progress=False)
        before_eval = scores(work / "before", eval_x)
        labels = args.label or sorted(before_eval, key=lambda c: f1(before_eval[c], eval_y, c))
        live = scores(work / "before", live_x)
        ids = [str(i) for i in range(len(live_x))]
        live_routes = dict(zip(ids, routed(live, len(ids)), strict=True))
        before_routes = routed(before_eval, len(eval_x))
        report = []
        for label in labels[: args.worst]:
            examples = examples_for(
                label,
                dict(zip(ids, live_y, strict=True)),
                dict(zip(ids, live_x, strict=True)),
                live_routes,
            )
            merged_csv = work / f"{label}.csv"
            merged = merge(zip(base_x, base_y, strict=True), examples)
            merged_csv.write_text(to_csv(merged), encoding="utf-8")
            train(read_dataset(merged_csv), work / "after", [label], progress=False)
            after = scores(work / "after", eval_x)[label]
            after_routes = routed({**before_eval, label: after}, len(eval_x))
            report.append(
                {
                    "label": label,
                    "positives": sum(e.why == "positive" for e in examples),
                    "hard_negatives": sum(e.why == "hard_negative" for e in examples),
                    "evaluation_positives": sum(y == label for y in eval_y),
                    "f1_before": f1(before_eval[label], eval_y, label),
                    "f1_after": f1(after, eval_y, label),
                    "routed_f1_before": routed_f1(before_routes, eval_y, label),
                    "routed_f1_after": routed_f1(after_routes, eval_y, label),
                }
            )
    mean = {
        f"mean_{key}": round(sum(r[f"{key}_after"] - r[f"{key}_before"] for r in report) / n, 4)
        for key in ("f1", "routed_f1")
        for n in [max(len(report), 1)]
    }
    summary = {"base_rows": len(base_x), "evaluation_rows": len(eval_x), "classes": len(report)}
    print(json.dumps(summary | {"mean_change": mean, "per_class": report}))


if __name__ == "__main__":
    main()
