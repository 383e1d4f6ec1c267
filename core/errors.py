"""The operator's mistakes: errors whose message says what to do.

The CLI prints an `OperatorError` as one line and exits 2. Each package's errors derive from
it, so the CLI need not import the packages (and scikit-learn) to catch them.
"""

from __future__ import annotations


class OperatorError(Exception):
    """A mistake an operator fixes (a setting, a missing model, an unreadable file): the CLI
    prints its message as one line and exits 2. Each package's errors derive from it, so the
    CLI need not import the packages (and scikit-learn) to catch them."""


class ConfigError(OperatorError):
    """An operator's mistake in configuration; the message says what to do."""
