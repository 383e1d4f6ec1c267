"""The classifier registry: `classifiers` lists it, `promote`, `retire` change who votes, and
`shadow-report` judges a version that does not vote yet on the traffic it scored; `gate` is
`promote`'s check alone, for a CI job (exit 0: it may vote, 2: refused, one line a reason);
`ready` waits until every class votes, for a script that just started the pipeline.

These are the operator's side of the registry protocol (triage/core/registry): each reads or
appends records on the registry topic and exits; the running classifiers and aggregators follow.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from triage.aggregator.settings import AggregatorSettings
from triage.cli.options import default_of, kafka_flags, settings_from
from triage.consumers.settings import ClassifierSettings
from triage.core.errors import ConfigError
from triage.core.runtime.clock import now_ms
from triage.core.settings import CommonSettings

if TYPE_CHECKING:
    from triage.cli.options import Subparsers
    from triage.tools.shadow import ShadowReport


def _add_classifiers(sub: Subparsers) -> None:
    p = sub.add_parser(
        "classifiers",
        help="list the registry: class, version, role, process, heartbeat",
        description="What the registry says: every announced class version with its role "
        "(voting since / votes from / shadow / retired), instance, since when it serves and "
        "its last heartbeat; STALE marks a process that missed three heartbeats "
        "(TRIAGE_HEARTBEAT_S) and a voter that no process announces.",
    )
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    kafka_flags(p)
    p.set_defaults(func=cmd_classifiers)


def _add_ready(sub: Subparsers) -> None:
    p = sub.add_parser(
        "ready",
        help="wait until every class votes (exit 1 after --timeout)",
        description="Block until every class (of --models, or each --label) votes: its class "
        "record names a voter whose process announced itself. Exit 0 then; after --timeout, "
        "exit 1 naming the classes still waited for. For scripts after `triage up &`.",
    )
    p.add_argument("--models", type=Path, help="every class of this models folder")
    p.add_argument("--label", action="append", help="this class (repeatable)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds (default %(default)s)")
    kafka_flags(p)
    p.set_defaults(func=cmd_ready)


def _add_promote(sub: Subparsers) -> None:
    p = sub.add_parser(
        "promote",
        help="make a running version its class's voter",
        description="Show the version's live impact (as shadow-report), then append a voting "
        "span to the class record: VERSION votes on texts published from now + "
        "--switch-delay-s on, and the previous version stops at that same instant. Refused "
        "(exit 2, one line a reason) for a version that has not announced itself or whose "
        "heartbeat is stale, and by the gate (see `triage gate`); --force promotes anyway and "
        "records who forced it over which reasons in the class record.",
    )
    p.add_argument("--label", required=True, help="the class")
    p.add_argument("--version", required=True, help="the version to vote (as announced)")
    p.add_argument(
        "--force",
        action="store_true",
        help="promote despite the refusal's reasons (recorded in the class record)",
    )
    p.add_argument(
        "--switch-delay-s",
        type=float,
        help=f"(TRIAGE_SWITCH_DELAY_S, default {default_of(ClassifierSettings, 'switch_delay_s')})",
    )
    _gate_flags(p)
    kafka_flags(p)
    p.set_defaults(func=cmd_promote)


def _add_retire(sub: Subparsers) -> None:
    p = sub.add_parser(
        "retire",
        help="take a class (or one version) out",
        description="Tombstone the class record and every announcement of the class: the "
        "aggregator stops waiting for it at once and no later result names it. With "
        "--version, tombstone that version's announcement only (not the voting one). Stop "
        "the retired processes afterwards; a classifier started later adds the class again.",
    )
    p.add_argument("--label", required=True, help="the class")
    p.add_argument("--version", help="retire only this (non-voting) version")
    kafka_flags(p)
    p.set_defaults(func=cmd_retire)


def _add_shadow_report(sub: Subparsers) -> None:
    p = _judging(
        sub,
        "shadow-report",
        "judge a shadow or backfill version on the scored traffic",
        "Read the scores topic for CLASS@VERSION, the committed results and the corrections: "
        "how many results it would have changed had it voted, from which class to which, how "
        "many of those changes were right and wrong by the corrections, and how each class's "
        "precision and recall on the corrected texts would move.",
    )
    _threshold_flag(p)
    p.add_argument("--json", action="store_true", help="one JSON object")
    kafka_flags(p)
    p.set_defaults(func=cmd_shadow_report)


def _add_gate(sub: Subparsers) -> None:
    p = _judging(
        sub,
        "gate",
        "may CLASS@VERSION vote? exit 0 yes, 2 no (one line a reason)",
        "The promotion gate of `triage promote`, alone, for a CI job: the live impact of "
        "CLASS@VERSION on the corrected texts it scored, refused (exit 2, one line a reason on "
        "stderr) when it would lower another class's precision or recall by more than "
        "--max-drop, or when fewer than --min-judged such texts exist; exit 0 otherwise.",
    )
    _gate_flags(p)
    p.add_argument("--json", action="store_true", help="one JSON object: verdict and impact")
    kafka_flags(p)
    p.set_defaults(func=cmd_gate)


def _judging(sub: Subparsers, name: str, summary: str, description: str):
    """A command judging one class version: `--label` and `--version`."""
    p = sub.add_parser(name, help=summary, description=description)
    p.add_argument("--label", required=True, help="the class")
    p.add_argument("--version", required=True, help="the version judged (as announced)")
    return p


def _threshold_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threshold",
        type=float,
        default=AggregatorSettings.model_fields["threshold"].default,
        help="the aggregator's threshold",
    )


def _gate_flags(p: argparse.ArgumentParser) -> None:
    _threshold_flag(p)
    p.add_argument(
        "--max-drop",
        dest="gate_max_drop",
        metavar="MARGIN",
        type=float,
        help="refuse when another class's precision or recall on the judged texts drops by "
        "more than this (TRIAGE_GATE_MAX_DROP, default "
        f"{default_of(ClassifierSettings, 'gate_max_drop')})",
    )
    p.add_argument(
        "--min-judged",
        dest="gate_min_judged",
        metavar="N",
        type=int,
        help="refuse with fewer judged texts (scored by the version, corrected) than this "
        f"(TRIAGE_GATE_MIN_JUDGED, default {default_of(ClassifierSettings, 'gate_min_judged')})",
    )


def cmd_classifiers(args: argparse.Namespace) -> int:

    from triage.core.registry.lifecycle import classifier_rows, format_rows, row_json
    from triage.core.registry.store import read_registry

    settings = settings_from(ClassifierSettings, args)
    view = read_registry(settings)
    now = now_ms()
    rows = classifier_rows(view, now, settings.heartbeat_s)
    if args.json:
        for row in rows:
            print(json.dumps(row_json(row, now)))
    else:
        print("\n".join(format_rows(rows, now)))
    return 0


def cmd_ready(args: argparse.Namespace) -> int:
    from triage.core.model.artifacts import available_labels
    from triage.core.registry.store import wait_for_classifiers

    labels = set(args.label or []) | set(available_labels(args.models) if args.models else [])
    if not labels:
        raise ConfigError("name the classes to wait for: --models DIR or --label CLASS")
    settings = settings_from(CommonSettings, args)
    started = time.monotonic()
    try:
        wait_for_classifiers(settings, labels, args.timeout, voting=True)
    except TimeoutError as exc:
        print(f"triage ready: {exc}", file=sys.stderr)
        return 1
    print(f"every class votes ({len(labels)}), after {time.monotonic() - started:.1f}s")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from triage.core.registry.lifecycle import PromotionRefused, promote
    from triage.tools.shadow import format_report

    settings = settings_from(ClassifierSettings, args)

    def gate() -> list[str]:
        report, verdict = _judge(settings, args)
        print(format_report(report), flush=True)
        return verdict["reasons"]

    try:
        print(promote(settings, args.label, args.version, args.force, gate))
    except PromotionRefused as refused:
        _refuse("promote", refused.reasons)
        return 2
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    from triage.tools.shadow import format_gate, format_report

    settings = settings_from(ClassifierSettings, args)
    report, verdict = _judge(settings, args)
    if args.json:
        print(json.dumps(verdict | {"impact": report.as_dict()}))
    else:
        print(format_report(report) + "\n\n" + format_gate(verdict), flush=True)
    _refuse("gate", verdict["reasons"])
    return 0 if verdict["passed"] else 2


def _judge(settings: ClassifierSettings, args: argparse.Namespace) -> tuple[ShadowReport, dict]:
    """The live impact of --label@--version, and the gate's verdict on it."""
    from triage.core.registry.store import check_label
    from triage.tools.shadow import gate, read_report

    check_label(args.label)
    report = read_report(settings, args.label, args.version, args.threshold)
    return report, gate(report, settings.gate_max_drop, settings.gate_min_judged)


def _refuse(command: str, reasons: list[str]) -> None:
    for reason in reasons:
        print(f"triage {command}: refused: {reason}", file=sys.stderr)


def cmd_retire(args: argparse.Namespace) -> int:
    from triage.core.registry.lifecycle import retire

    settings = settings_from(ClassifierSettings, args)
    print(retire(settings, args.label, args.version))
    return 0


def cmd_shadow_report(args: argparse.Namespace) -> int:
    from triage.tools.shadow import format_report, read_report

    settings = settings_from(ClassifierSettings, args)
    report = read_report(settings, args.label, args.version, args.threshold)
    print(json.dumps(report.as_dict()) if args.json else format_report(report))
    return 0


COMMANDS: dict[str, Callable[[Subparsers], None]] = {
    "classifiers": _add_classifiers,
    "ready": _add_ready,
    "promote": _add_promote,
    "retire": _add_retire,
    "shadow-report": _add_shadow_report,
    "gate": _add_gate,
}
