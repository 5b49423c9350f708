"""The service's wall clock, and the injected one the end-to-end tests start it with.

`RIA_CALLS_BOT_TEST_CLOCK=FILE` (tests only; never set in production): the service's "now"
for routing at ingest, delivery (digest held until opening), and reminders is the epoch
seconds written in FILE plus the real time since it was written. A test moves time by
writing a new value (atomically: write a temporary file, then rename it over FILE); the
service sees the change within a tenth of a second and wakes its delivery workers and the
reminder check at once, since they were asleep until a moment computed with the old time.
Nothing else (HTTP timeouts, rate limits, backoff) follows it: those stay real.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "RIA_CALLS_BOT_TEST_CLOCK"
WATCH_S = 0.1


class FileClock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.mtime = -1
        self.base = time.time()
        self.mono = time.monotonic()
        self.changed()

    def __call__(self) -> float:
        return self.base + (time.monotonic() - self.mono)

    def changed(self) -> bool:
        """Read FILE again if it changed; whether the time moved."""
        try:
            mtime = self.path.stat().st_mtime_ns
            if mtime == self.mtime:
                return False
            base = float(self.path.read_text().strip())
        except (OSError, ValueError) as exc:
            log.warning("test clock: cannot read %s: %s", self.path, exc)
            return False
        self.mtime, self.base, self.mono = mtime, base, time.monotonic()
        return True

    async def watch(self, on_change: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(WATCH_S)
            if self.changed():
                log.info("test clock: now %.0f", self.base)
                on_change()


def from_env() -> FileClock | None:
    """The injected clock when RIA_CALLS_BOT_TEST_CLOCK names a file, else None."""
    given = os.environ.get(ENV, "").strip()
    if not given:
        return None
    log.warning("test clock: the time is read from %s (%s); for tests only", given, ENV)
    return FileClock(Path(given))


__all__ = ["ENV", "FileClock", "from_env"]
