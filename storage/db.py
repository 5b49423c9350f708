"""The database handle: one connection, owned by one writer thread.

sqlite-utils (like sqlite3) connections are bound to the thread that made them, and SQLite
allows one writer at a time anyway, so every statement runs on a single dedicated thread.
The event loop hands work to it with `await store.run(fn, *args)` and never blocks.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from storage.schema import migrate

T = TypeVar("T")

log = logging.getLogger(__name__)


class NoDatabase(FileNotFoundError):
    """A database that must already exist does not (a read command run from the wrong
    folder, say). `path` is absolute."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"no database at {path}")
        self.path = path


def connect(path: str | Path, *, create: bool = True) -> sqlite_utils.Database:
    """Open and migrate the database at `path` on the calling thread. With `create=False`
    a missing file raises NoDatabase instead of becoming a new, empty database."""
    path = Path(path)
    if str(path) == ":memory:":
        conn = sqlite3.connect(":memory:", isolation_level=None, timeout=10.0)
    elif create:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=10.0)
    else:
        absolute = path.resolve()
        if not absolute.is_file():
            raise NoDatabase(absolute)
        # mode=rw: SQLite itself refuses to create it, should it vanish in between
        uri = f"{absolute.as_uri()}?mode=rw"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=10.0)
        except sqlite3.OperationalError:
            if not absolute.is_file():
                raise NoDatabase(absolute) from None
            raise
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    # FULL: a commit is on disk before the webhook answers 200, even across a power cut
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 10000")
    migrate(conn)
    return sqlite_utils.Database(conn)


class Store:
    """Runs storage functions on the one thread that owns the connection."""

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = str(path)
        self.create = create  # False: a missing database is an error (NoDatabase)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._local = threading.local()
        self._db: sqlite_utils.Database | None = None

    def _open(self) -> sqlite_utils.Database:
        self._db = connect(self.path, create=self.create)
        return self._db

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(db, *args, **kwargs)` on the writer thread and return its result."""
        db = self._db
        if db is None:
            raise RuntimeError("store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(db, *args, **kwargs))

    def _close(self) -> None:
        if self._db is not None:
            try:
                self._db.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:
                # a full disk: what is committed is safe in the WAL, and the next start
                # checkpoints it; a stop must not fail over it
                log.warning("closing the database without a checkpoint: %s", exc)
            finally:
                self._db.conn.close()
                self._db = None

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)


def transaction(db: sqlite_utils.Database):
    """`with transaction(db):` — BEGIN IMMEDIATE .. COMMIT, or ROLLBACK on error."""
    return _Tx(db.conn)


class _Tx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._rollback()
            return
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            # a failed COMMIT (disk full, I/O error) may leave the transaction open; the
            # next BEGIN would then fail for ever, so close it here
            self._rollback()
            raise

    def _rollback(self) -> None:
        # SQLite rolls back by itself after some errors (SQLITE_FULL): a second ROLLBACK
        # would raise and hide the error that matters
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
