"""A one-line progress bar on stderr for long loops such as training every class.

On a terminal the bar redraws in place; elsewhere (CI logs, pipes) it prints one line per
tenth of the work, so logs stay short. No dependency: a bar is twenty characters of text.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(
        self,
        total: int,
        what: str,
        stream: TextIO | None = None,
        width: int = 30,
        indent: str = "",
    ):
        self.total = max(total, 1)
        self.what = what
        self.stream = stream or sys.stderr
        self.width = width
        self.indent = indent
        self.done = 0
        self._started = time.monotonic()
        self._last_tenth = -1
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def line(self) -> str:
        filled = self.width * self.done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.monotonic() - self._started
        return f"{self.indent}[{bar}] {self.done}/{self.total} {self.what} {elapsed:5.1f}s"

    def advance(self, note: str = "") -> None:
        self.update(self.done + 1, note)

    def update(self, done: int, note: str = "") -> None:
        """Show `done` of the total (a count that may jump, or stay); the finished bar once."""
        if self.done == self.total:
            return
        self.done = min(done, self.total)
        text = self.line() + (f"  {note}" if note else "")
        if self._tty:
            self.stream.write("\r\x1b[K" + text)
            if self.done == self.total:
                self.stream.write("\n")
        else:
            tenth = 10 * self.done // self.total
            if tenth != self._last_tenth:
                self._last_tenth = tenth
                self.stream.write(text + "\n")
        self.stream.flush()
