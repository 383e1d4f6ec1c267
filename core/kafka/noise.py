"""kafka-python's log lines that say something is wrong when nothing is, kept out of the logs.

Two of its lines read as failures in every healthy run of the demo and the services:

- `ERROR kafka.cluster: Metadata refresh: failed Cancelled`: a client closed while its periodic
  metadata request was in flight. Closing a connection fails its in-flight requests with
  `Cancelled` (kafka/net/connection.py); the client is going away and nothing waits for the
  answer. Any other metadata failure is still logged.
- `WARNING kafka.net.selector: Task ... ran for 0.197s (>0.100s threshold). It is blocking the
  event loop`: one step of its I/O loop took more than 0.1 s of wall time, a check meant to
  catch a coroutine spinning in a tight loop. A step that waits for a CPU or the GIL takes that
  long on a busy machine (two cores, a dozen processes starting at once, each importing
  scikit-learn) with nothing wrong. A step of a second or more is still logged: that is no
  longer scheduling.

`quiet_harmless_noise()` installs the filters once per process; `cli.main` and the demo call it.
"""

from __future__ import annotations

import logging
import re

from kafka.errors import Cancelled

SLOW_STEP_REPORTED_S = 1.0
_SLOW_STEP = re.compile(r"^Task .* ran for (?P<seconds>[0-9.]+)s \(")


def harmless(record: logging.LogRecord) -> bool:
    """Whether `record` is one of the two lines above, at a size that means nothing."""
    if record.name == "kafka.cluster" and record.msg == "Metadata refresh: failed %s":
        return isinstance(record.args, tuple) and isinstance(record.args[0], Cancelled)
    if record.name == "kafka.net.selector":
        slow = _SLOW_STEP.match(record.getMessage())
        return slow is not None and float(slow["seconds"]) < SLOW_STEP_REPORTED_S
    return False


def _keep(record: logging.LogRecord) -> bool:
    return not harmless(record)


def quiet_harmless_noise() -> None:
    """Drop the harmless lines at their loggers (idempotent)."""
    for name in ("kafka.cluster", "kafka.net.selector"):
        logger = logging.getLogger(name)
        if _keep not in logger.filters:
            logger.addFilter(_keep)
