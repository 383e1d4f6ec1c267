"""The pipeline's data in and out: `publish` texts, read `results`, `correct` a result, read
the monitor's `quality` and `export-corrections` into a training CSV.

Each writes or reads its topics and exits (`results --follow` keeps reading); they are what an
operator or a script uses around a running pipeline.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from triage.cli.options import default_of, kafka_flags, models_flag, settings_from
from triage.core.errors import ConfigError
from triage.core.runtime.clock import now_ms
from triage.core.settings import CommonSettings
from triage.monitor.settings import MonitorSettings
from triage.producer.settings import ProducerSettings

if TYPE_CHECKING:
    from triage.cli.options import Subparsers
    from triage.schemas.models import CorrectionRecord


def _add_publish(sub: Subparsers) -> None:
    p = sub.add_parser("publish", help="publish texts; prints their ids in input order")
    p.add_argument("file", nargs="?", default="-", help="CSV, JSONL or one text a line; - = stdin")
    p.add_argument("--format", choices=["csv", "jsonl", "lines"], help="default: from the name")
    kafka_flags(p)
    p.set_defaults(func=cmd_publish)


def _add_results(sub: Subparsers) -> None:
    p = sub.add_parser("results", help="print committed labelled results")
    p.add_argument("--follow", action="store_true", help="keep reading new results")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    kafka_flags(p)
    p.set_defaults(func=cmd_results)


def _add_correct(sub: Subparsers) -> None:
    p = sub.add_parser(
        "correct",
        help="publish a correction: the right class of a message",
        description="Publish a correction to the corrections topic, keyed by the message id. "
        "`triage monitor` joins it with the message's result.",
    )
    p.add_argument("--id", help="the message id")
    p.add_argument(
        "--file",
        metavar="FILE",
        help="many corrections instead of --id: lines `ID<TAB>LABEL` (an empty LABEL: none of "
        "our classes); - = stdin",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--label", help="the class the message belongs to")
    which.add_argument(
        "--none-of-ours", action="store_true", help="the message belongs to none of our classes"
    )
    p.add_argument("--source", default="cli", help="who corrects (default: %(default)s)")
    kafka_flags(p)
    p.set_defaults(func=cmd_correct)


def _add_export_corrections(sub: Subparsers) -> None:
    p = sub.add_parser(
        "export-corrections",
        help="one class's corrections merged into its training CSV",
        description="Turn the corrections topic into labelled rows for one class: positives "
        "(corrected texts of the class) and hard negatives (texts routed to it that belonged "
        "elsewhere), merged with the training CSV without duplicates (a correction's class "
        "wins). Then `triage train --data OUT --label L` retrains that class alone; ship it "
        "with --shadow, then `triage promote`.",
    )
    p.add_argument("--label", required=True, help="the class to export for")
    p.add_argument("--data", type=Path, required=True, help="its training CSV (text,category)")
    p.add_argument("--out", type=Path, required=True, help="the merged CSV to write")
    kafka_flags(p)
    p.set_defaults(func=cmd_export_corrections)


def _add_quality(sub: Subparsers) -> None:
    p = sub.add_parser(
        "quality",
        help="live quality per class version beside its offline metrics",
        description="Read the monitor's quality topic: per class and version the live "
        "precision, recall, support, abstentions, calibration error and drift (PSI), over the "
        "window and since the version's first result, beside the offline figures of its "
        "manifest (--models), and the worst confusions with example ids. `*` marks the "
        "version that votes now.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--label", help="only this class")
    models_flag(p)
    p.add_argument(
        "--quality-window-s",
        type=float,
        help=f"(TRIAGE_QUALITY_WINDOW_S, {default_of(MonitorSettings, 'quality_window_s')})",
    )
    kafka_flags(p)
    p.set_defaults(func=cmd_quality)


def cmd_publish(args: argparse.Namespace) -> int:
    from triage.core.kafka.topics import ensure_topics
    from triage.producer.publisher import Publisher
    from triage.producer.readers import guess_format, read_records

    if args.file == "-":
        content, name = sys.stdin.read(), "stdin"
    else:
        try:
            content, name = Path(args.file).read_text(encoding="utf-8"), args.file
        except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{args.file}: cannot read: {exc}") from None
    fmt = args.format or guess_format(name, content.split("\n", 1)[0])
    records = list(read_records(content, fmt, name))
    settings = settings_from(ProducerSettings, args)
    ensure_topics(settings)
    with Publisher(settings) as publisher:
        for message_id in publisher.publish(records):
            print(message_id)
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from triage.tools.results import read_labels

    settings = settings_from(CommonSettings, args)
    for result in read_labels(settings, follow=args.follow):
        if args.json:
            print(result.model_dump_json(), flush=True)
        else:
            label = result.label or "(abstained)"
            flag = "" if result.complete else f"  partial, missing {','.join(result.missing)}"
            print(f"{result.id}\t{label}\t{result.probability:.3f}{flag}", flush=True)
    return 0


def cmd_correct(args: argparse.Namespace) -> int:
    from triage.core.kafka.topics import ensure_topics
    from triage.producer.publisher import Publisher

    if (args.id is None) == (args.file is None):
        raise ConfigError("give --id (with --label or --none-of-ours) or --file")
    if args.id is not None and args.label is None and not args.none_of_ours:
        raise ConfigError("--id needs --label L or --none-of-ours")
    if args.file is not None:
        lines = _correction_lines(args.file)
        corrections = [
            _correction(*pair, args.source, f"{args.file} line {n}: ") for n, pair in lines
        ]
    else:
        label = None if args.none_of_ours else args.label
        corrections = [_correction(args.id, label, args.source, "--")]
    settings = settings_from(ProducerSettings, args)
    ensure_topics(settings)
    with Publisher(settings) as publisher:
        publisher.correct(corrections)
    for c in corrections:
        print(f"{c.id}\t{c.label or '(none of our classes)'}")
    return 0


def _correction_lines(file: str) -> list[tuple[int, tuple[str, str | None]]]:
    """`ID<TAB>LABEL` lines of a file (or stdin): (line number, (id, label or None)); blank
    lines skipped."""
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from None
    pairs = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            message_id, _, label = line.partition("\t")
            pairs.append((n, (message_id.strip(), label.strip() or None)))
    return pairs


def _correction(message_id: str, label: str | None, source: str, where: str) -> CorrectionRecord:
    """One correction; `where` prefixes the field of an invalid one (`--`, `FILE line N: `)."""
    from triage.schemas.models import CorrectionRecord

    try:
        return CorrectionRecord(id=message_id, label=label, source=source, corrected_at_ms=now_ms())
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"{where}{err['loc'][0]}: {err['msg']}") from None


def cmd_export_corrections(args: argparse.Namespace) -> int:
    from triage.tools.corrections import export

    settings = settings_from(CommonSettings, args)
    counts = export(settings, args.label, args.data, args.out)
    print(
        f"{args.out}: {counts['rows_after']} rows ({counts['rows_before']} before), "
        f"{counts['positives']} positives and {counts['hard_negatives']} hard negatives of "
        f"{args.label} from {counts['corrections']} corrections"
        + (f" ({counts['without_text']} without a retained text)" if counts["without_text"] else "")
    )
    return 0


def cmd_quality(args: argparse.Namespace) -> int:
    from triage.core.registry.store import read_registry
    from triage.tools.quality import format_report, quality_report, read_quality, references

    refs = references(args.models)  # a wrong folder is said before Kafka is asked
    settings = settings_from(MonitorSettings, args)
    report = quality_report(
        read_quality(settings),
        read_registry(settings),
        refs,
        now_ms(),
        int(settings.quality_window_s * 1000),
        args.label,
    )
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


COMMANDS: dict[str, Callable[[Subparsers], None]] = {
    "publish": _add_publish,
    "results": _add_results,
    "correct": _add_correct,
    "export-corrections": _add_export_corrections,
    "quality": _add_quality,
}
