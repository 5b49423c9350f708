"""What the command line prints goes through the log redaction: no secret reaches the screen."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from typing import TextIO

from bot.logs import REDACT


class _Redacting(io.TextIOBase):
    """Writes whole lines through the log redaction to the real stream: a secret inside a
    library's error message (PTB's InvalidToken quotes the token) never reaches the screen.
    Line by line, so that a secret is never split between two writes."""

    def __init__(self, raw: TextIO) -> None:
        self.raw = raw
        self._line = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._line += text
        if "\n" in self._line:
            done, _, self._line = self._line.rpartition("\n")
            self.raw.write(REDACT(done + "\n"))
        return len(text)

    def flush(self) -> None:
        if self._line:
            self.raw.write(REDACT(self._line))
            self._line = ""
        self.raw.flush()

    def isatty(self) -> bool:
        return self.raw.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.raw.encoding


@contextlib.contextmanager
def redacted_output(*, stdout: bool = True) -> Iterator[None]:
    saved = sys.stdout, sys.stderr
    if stdout:
        sys.stdout = _Redacting(saved[0])
    sys.stderr = _Redacting(saved[1])
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = saved


def reveal(text: str) -> None:
    """Print `text` unredacted: only for what the operator asked to see in full."""
    stream = sys.stdout.raw if isinstance(sys.stdout, _Redacting) else sys.stdout
    sys.stdout.flush()
    print(text, file=stream, flush=True)
