"""The classifier registry: `classifiers` lists it, `promote`, `retire` change who votes, and
`shadow-report` judges a version that does not vote yet on the traffic it scored.

These are the operator's side of the registry protocol (triage/core/registry): each reads or
appends records on the registry topic and exits; the running classifiers and aggregators follow.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from triage.aggregator.settings import AggregatorSettings
from triage.cli.main import default_of, kafka_flags, settings_from
from triage.consumers.settings import ClassifierSettings
from triage.core.runtime.clock import now_ms

if TYPE_CHECKING:
    from triage.cli.main import Subparsers


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


def _add_promote(sub: Subparsers) -> None:
    p = sub.add_parser(
        "promote",
        help="make a running version its class's voter",
        description="Append a voting span to the class record: VERSION votes on texts "
        "published from now + --switch-delay-s on, and the previous version stops at that "
        "same instant. A version that has not announced itself, or whose heartbeat is stale, "
        "is refused unless --force.",
    )
    p.add_argument("--label", required=True, help="the class")
    p.add_argument("--version", required=True, help="the version to vote (as announced)")
    p.add_argument("--force", action="store_true", help="promote even if not running")
    p.add_argument(
        "--switch-delay-s",
        type=float,
        help=f"(TRIAGE_SWITCH_DELAY_S, default {default_of(ClassifierSettings, 'switch_delay_s')})",
    )
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
    p = sub.add_parser(
        "shadow-report",
        help="judge a shadow or backfill version on the scored traffic",
        description="Read the scores topic for CLASS@VERSION and the committed results: how "
        "many results it would have changed had it voted, and how often it agrees with them.",
    )
    p.add_argument("--label", required=True)
    p.add_argument("--version", required=True)
    p.add_argument(
        "--threshold",
        type=float,
        default=AggregatorSettings.model_fields["threshold"].default,
        help="the aggregator's threshold",
    )
    p.add_argument("--json", action="store_true", help="one JSON object")
    kafka_flags(p)
    p.set_defaults(func=cmd_shadow_report)


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


def cmd_promote(args: argparse.Namespace) -> int:
    from triage.core.registry.lifecycle import promote

    settings = settings_from(ClassifierSettings, args)
    print(promote(settings, args.label, args.version, args.force))
    return 0


def cmd_retire(args: argparse.Namespace) -> int:
    from triage.core.registry.lifecycle import retire

    settings = settings_from(ClassifierSettings, args)
    print(retire(settings, args.label, args.version))
    return 0


def cmd_shadow_report(args: argparse.Namespace) -> int:
    from triage.tools.results import read_labels
    from triage.tools.shadow import format_report, read_scores, shadow_report

    settings = settings_from(ClassifierSettings, args)
    report = shadow_report(
        read_scores(settings), read_labels(settings), args.label, args.version, args.threshold
    )
    print(json.dumps(report) if args.json else format_report(report))
    return 0


COMMANDS: dict[str, Callable[[Subparsers], None]] = {
    "classifiers": _add_classifiers,
    "promote": _add_promote,
    "retire": _add_retire,
    "shadow-report": _add_shadow_report,
}
