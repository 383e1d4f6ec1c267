"""The `triage` command: one entry point for every service and tool.

This module assembles the parser from the command groups (`models`, `pipeline`, `registry`,
`data`, `ops` beside it, and `kafka` from local/cli.py), each of which adds its own
subcommands and holds their handlers; what the groups share (the Kafka connection flags,
`settings_from`) is in `options`, which they import, so no group imports this module. Here are
the log level and `main`. Flags map one to one onto the fields of the service's settings class;
anything not given on the command line comes from `TRIAGE_*` environment variables. Operator
mistakes (a missing file, a bad flag, no broker) end with one line saying what is wrong.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from triage.cli import data, models, ops, pipeline, registry
from triage.core.errors import OperatorError
from triage.core.kafka import KafkaError, noise, security
from triage.local import cli as kafka_cli

if TYPE_CHECKING:
    from triage.cli.options import Subparsers

log = logging.getLogger("triage")

# The order `triage --help` lists the subcommands in: as it was before they moved into groups.
_ORDER = (
    "kafka",
    "train",
    "evaluate",
    "compare",
    "classifier",
    "classifiers",
    "ready",
    "promote",
    "retire",
    "shadow-report",
    "gate",
    "aggregate",
    "encoder",
    "monitor",
    "correct",
    "quality",
    "export-corrections",
    "up",
    "lag-exporter",
    "transactions",
    "publish",
    "bench",
    "bench-state",
    "serve",
    "results",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triage",
        description="Route support messages on Kafka with independent binary classifiers.",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: dict[str, Callable[[Subparsers], None]] = {"kafka": kafka_cli.add_parser}
    for group in (models, pipeline, registry, data, ops):
        commands |= group.COMMANDS
    for name in sorted(commands, key=_ORDER.index):  # a command missing from _ORDER: ValueError
        commands[name](sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    noise.quiet_harmless_noise()
    try:
        return args.func(args)
    except OperatorError as exc:
        print(f"triage {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KafkaError as exc:
        print(f"triage {args.command}: Kafka error: {security.describe(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
