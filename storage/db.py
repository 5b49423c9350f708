"""The database handle: one connection, owned by one writer thread.

sqlite-utils (like sqlite3) connections are bound to the thread that made them, and SQLite
allows one writer at a time anyway, so every statement runs on a single dedicated thread.
The event loop hands work to it with `await store.run(fn, *args)` and never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
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


# The database holds callers' numbers, recording links, raw payloads and the generated
# webhook secret: only the service's user may read it. SQLite gives the -wal and -shm files
# the main file's mode, so the main file is tightened before it is opened.
FILE_MODE = 0o600
DIR_MODE = 0o700
_SIDE_FILES = ("", "-wal", "-shm", "-journal")


def make_private_dir(folder: Path) -> None:
    """Create `folder` (and its parents) 0700; an existing one is left as it is."""
    if not folder.exists():
        folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(folder, DIR_MODE)  # mkdir's mode goes through the umask


def _ours(entry: Path, db_name: str) -> bool:
    """Whether a file beside the database is the service's: the database's own files, the
    config file, backups (the README's /data/backups), a restore's leftovers."""
    if entry.name.startswith(db_name) or entry.name.endswith(".toml"):
        return True
    return entry.name in ("backups", "broken") and entry.is_dir()


def tighten(path: Path, *, folder: bool = True) -> list[str]:
    """Make the database's files 0600 and its folder 0700; returns what was changed.

    The folder is tightened only when it holds nothing but the database's files (and
    backups or the config file next to them): DATABASE_PATH=calls.db in a project folder,
    or /tmp/calls.db, must not lock others out of a folder that is not ours."""
    changed: list[str] = []
    for suffix in _SIDE_FILES:
        file = path.with_name(path.name + suffix)
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            # only taken away: a read-only file stays read-only (a config error to report)
            os.chmod(file, mode & ~0o077)
            changed.append(f"{file} {mode:o}->{mode & ~0o077:o}")
    if not folder:
        return changed
    parent = path.parent
    try:
        mode = stat.S_IMODE(parent.stat().st_mode)
        ours = all(_ours(entry, path.name) for entry in parent.iterdir())
    except OSError:
        return changed
    if mode & 0o077:
        if ours:
            os.chmod(parent, mode & ~0o077)
            changed.append(f"{parent}/ {mode:o}->{mode & ~0o077:o}")
        else:
            log.warning(
                "the database's folder %s is open to other users and holds other files: "
                "left as it is (chmod 700 it, or give the database a folder of its own)",
                parent,
            )
    return changed


def _tighten_logged(path: Path) -> None:
    try:
        changed = tighten(path)
    except OSError as exc:  # not our file (a read-only mount, another owner): say so, go on
        log.warning("could not make the database private (chmod 600): %s", exc)
        return
    if changed:
        log.info("database files were readable by other users; now private: %s", ", ".join(changed))


def connect(path: str | Path, *, create: bool = True) -> sqlite_utils.Database:
    """Open and migrate the database at `path` on the calling thread. With `create=False`
    a missing file raises NoDatabase instead of becoming a new, empty database."""
    path = Path(path)
    if str(path) != ":memory:":
        _tighten_logged(path)
    if str(path) == ":memory:":
        conn = sqlite3.connect(":memory:", isolation_level=None, timeout=10.0)
    elif create:
        make_private_dir(path.parent)
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
    if str(path) != ":memory:":
        # a file made just now under a lax umask (the CLI sets 077; a library caller may not)
        with contextlib.suppress(OSError):
            tighten(path, folder=False)
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


def transaction(db: sqlite_utils.Database) -> _Tx:
    """`with transaction(db):` — BEGIN IMMEDIATE .. COMMIT, or ROLLBACK on error."""
    return _Tx(db.conn)


class _Tx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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
