"""WAL checkpoints on a thread of their own, so the next group of webhooks never waits for one."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading

log = logging.getLogger("storage.db")


# SQLite checkpoints the WAL itself in the COMMIT that takes it past 1000 pages: copying
# 4 MB into the database and fsyncing it, while every webhook of the next group waits (the
# tail of the ingest latency). A thread of its own does it instead, on its own connection:
# a PASSIVE checkpoint never blocks the writer. The writer's own is kept as a backstop.
CHECKPOINT_BYTES = 4 * 1024 * 1024
CHECKPOINT_EVERY_S = 0.25


class Checkpointer:
    def __init__(self, path: str) -> None:
        self.path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        wal = f"{self.path}-wal"
        conn: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(CHECKPOINT_EVERY_S):
                try:
                    if os.path.getsize(wal) < CHECKPOINT_BYTES:
                        continue
                    if conn is None:
                        conn = sqlite3.connect(self.path, isolation_level=None, timeout=1.0)
                        conn.execute("PRAGMA synchronous = FULL")
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except (OSError, sqlite3.Error) as exc:  # the writer's backstop still works
                    log.debug("background checkpoint: %s", exc)
        finally:
            if conn is not None:
                conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
