"""Progress on long runs: one line on stderr, rewritten in place, while a terminal watches.

Quiet when stderr is not a terminal (CI logs, pipes), when ``CI`` is set, and with
``--quiet``: the report on stdout is the same either way.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO


class Progress:
    """``progress("tracing width 64")`` shows a stage; ``progress.done()`` clears the line."""

    def __init__(self, enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        if enabled is None:
            enabled = self.stream.isatty() and not os.environ.get("CI")
        self.enabled = enabled
        self.start = time.perf_counter()
        self._shown = False

    def __call__(self, message: str) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        self.stream.write(f"\r\033[K[tpcheck {elapsed:5.1f} s] {message}")
        self.stream.flush()
        self._shown = True

    def done(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = False
