"""`triage train`, `evaluate` and `compare`: the models, fitted from labelled data and measured.

All work on files alone, no cluster: `train` writes one folder of versioned binary classifiers
a class, `evaluate` scores them (and a multiclass baseline) on held-out texts, `compare` shows
what a candidate version of one class would change for every class. scikit-learn and
matplotlib are imported only when one of them runs, so every other command starts fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from triage.aggregator.settings import AggregatorSettings

if TYPE_CHECKING:
    from triage.cli.options import Subparsers


def _add_train(sub: Subparsers) -> None:
    p = sub.add_parser("train", help="train one binary classifier per class")
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="CSV with columns text,category, or a folder of <class>.csv/.jsonl files",
    )
    p.add_argument("--out", type=Path, required=True, help="models folder (one subfolder a class)")
    p.add_argument("--label", action="append", help="train only this class (repeatable)")
    p.add_argument(
        "--owner",
        metavar="TEAM[:CONTACT]",
        help="who answers for the classes trained (default: the data folder's OWNERS file)",
    )
    p.add_argument(
        "--C", dest="c", type=float, help="inverse regularisation (10; 30 with --encoder)"
    )
    p.add_argument(
        "--calibration",
        choices=["none", "sigmoid", "isotonic"],
        default="none",
        help="calibrate each classifier out-of-fold (default %(default)s: with balanced "
        "class weights the winning probability is already calibrated)",
    )
    p.add_argument(
        "--class-weight",
        choices=["balanced", "none"],
        default="balanced",
        help="weigh a class's few positives against its many negatives",
    )
    p.add_argument("--seed", type=int, default=13, help="seed of the split and the models")
    p.add_argument(
        "--jobs", type=int, default=-1, help="classes fitted in parallel (-1: all cores)"
    )
    p.add_argument(
        "--encoder",
        metavar="NAME",
        help="heads also read this sentence encoder's embedding (`default`, or see "
        "`triage encoder --list`); they are then served by `triage encoder`'s features topic",
    )
    p.add_argument(
        "--embedding-weight",
        type=float,
        help="scale of the embedding block beside the TF-IDF blocks (with --encoder; 3)",
    )
    p.set_defaults(func=cmd_train)


def _add_evaluate(sub: Subparsers) -> None:
    p = sub.add_parser(
        "evaluate", help="per-classifier and ensemble metrics vs a multiclass baseline"
    )
    p.add_argument("--models", type=Path, required=True)
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="CSV with columns text,category, or a per-class folder; the models' training data "
        "means its held-out split",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--report", type=Path, metavar="DIR", help="also write DIR/index.html with tables and plots"
    )
    p.add_argument(
        "--label",
        action="append",
        help="evaluate only this class's model (repeatable); default: all",
    )
    _threshold_flag(p)
    p.set_defaults(func=cmd_evaluate)


def _threshold_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threshold",
        type=float,
        default=AggregatorSettings.model_fields["threshold"].default,
        help="abstain below this winning probability, as the aggregator does",
    )


def cmd_train(args: argparse.Namespace) -> int:
    import time

    from triage.training.data import parse_owner, read_dataset
    from triage.training.train import Options, train

    owner = parse_owner(args.owner) if args.owner else None
    options = Options(
        c=args.c,
        class_weight=None if args.class_weight == "none" else args.class_weight,
        calibration=args.calibration,
        seed=args.seed,
        encoder=args.encoder,
        embedding_weight=args.embedding_weight,
    )
    started = time.monotonic()
    data = read_dataset(args.data)
    manifests = train(data, args.out, args.label, options, n_jobs=args.jobs, owner=owner)
    print(
        f"{'class':32} {'version':>7} {'train+':>6} {'precision':>9} {'recall':>6} "
        f"{'f1':>6} {'pr_auc':>6} {'brier':>6}  owner"
    )
    for m in manifests:
        x = m.metrics
        print(
            f"{m.label[:32]:32} {m.version:>7} {m.training_data.positives:6d} "
            f"{x['precision']:9.3f} {x['recall']:6.3f} {x['f1']:6.3f} "
            f"{x.get('pr_auc', float('nan')):6.3f} {x['brier']:6.4f}  "
            + (m.owner.format() if m.owner else "-")
        )
    print(
        f"wrote {len(manifests)} model(s) to {args.out} in {time.monotonic() - started:.1f}s "
        f"(calibration {options.calibration}, class weight {options.class_weight}, "
        f"seed {options.seed}); metrics on the held-out {options.test_size:.0%}"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from triage.training.evaluation import evaluate, format_report

    evaluation = evaluate(args.models, args.data, args.threshold, args.label)
    report = evaluation.summary
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if args.report:
        from triage.training.report import write_report

        page = write_report(evaluation, args.report)
        print(f"report: {page}", file=sys.stderr)
    return 0


def _add_compare(sub: Subparsers) -> None:
    p = sub.add_parser(
        "compare", help="a candidate of one class against the current voters, on the same texts"
    )
    p.add_argument("--models", type=Path, required=True, help="the current voters' models folder")
    p.add_argument(
        "--candidate",
        type=Path,
        required=True,
        help="a models folder holding the candidate's <label>/ (or that class folder itself)",
    )
    p.add_argument("--label", required=True, help="the class the candidate would replace (or add)")
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="labelled CSV or per-class folder; the current models' training data means its "
        "held-out split",
    )
    p.add_argument(
        "--all-rows", action="store_true", help="decide every row, not only the held-out split"
    )
    _threshold_flag(p)
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument("--report", type=Path, metavar="DIR", help="also write DIR/index.html")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from triage.training.compare import compare, format_comparison

    result = compare(
        args.models, args.candidate, args.label, args.data, args.threshold, args.all_rows
    )
    print(json.dumps(result.summary, indent=2) if args.json else format_comparison(result.summary))
    if args.report:
        from triage.training.report import write_comparison_report

        page = write_comparison_report(result.summary, args.report)
        print(f"report: {page}", file=sys.stderr)
    return 0


COMMANDS: dict[str, Callable[[Subparsers], None]] = {
    "train": _add_train,
    "evaluate": _add_evaluate,
    "compare": _add_compare,
}
