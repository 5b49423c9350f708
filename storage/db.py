"""The database handle: one connection, owned by one writer thread.

sqlite-utils (like sqlite3) connections are bound to the thread that made them, and SQLite
allows one writer at a time anyway, so every statement runs on a single dedicated thread.
The event loop hands work to it with `await store.run(fn, *args)` and never blocks.

`await store.write(fn, *args)` is for the hot writes (ingest, marking alerts sent): writes
that arrive while the writer thread is busy are run together, each in its own SAVEPOINT, in
one transaction with one COMMIT (group commit: one fsync for all of them). Each caller still
gets its answer only after that COMMIT, so `synchronous=FULL` durability is kept: a webhook
is answered 200 only once its calls are on disk. Without it every alert marked sent cost an
fsync of its own, and the webhooks waiting behind it paid for it (docs: bench/, issue 14).
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
            st = file.stat()
        except (FileNotFoundError, NotADirectoryError):
            # nothing there, or its "folder" is a file: no database to protect, and the
            # single config error about DATABASE_PATH says what is wrong with the path
            continue
        if not stat.S_ISREG(st.st_mode):
            continue  # DATABASE_PATH naming a folder: never chmod what is not our file
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            # only taken away: a read-only file stays read-only (a config error to report)
            os.chmod(file, mode & ~0o077)
            changed.append(f"{file} {mode:o}->{mode & ~0o077:o}")
    if not folder:
        return changed
    parent = path.parent
    try:
        if not parent.is_dir():
            return changed
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
        # store.write's group commit: jobs waiting for the next group, and the task that runs
        # one group after another on the writer thread
        self._writes: list[tuple[Callable[[Any], Any], asyncio.Future[Any]]] = []
        self._in_flight = False  # a group is on the writer thread
        self._drained: asyncio.Future[None] | None = None  # close() waits for the last group
        self._checkpointer: Checkpointer | None = None

    def _open(self) -> sqlite_utils.Database:
        self._db = connect(self.path, create=self.create)
        if self.path != ":memory:":
            # WAL checkpoints move off the writer thread (see Checkpointer): a backstop only
            self._db.conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
            self._checkpointer = Checkpointer(self.path)
        return self._db

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open)

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`run` for a write that may share its COMMIT with others (group commit).

        `fn` must write only through `transaction(db)` or plain DML (no BEGIN, VACUUM,
        checkpoint or executescript): it runs inside the group's transaction, within a
        savepoint of its own, so its failure undoes its own writes only."""
        result: T = await self.write_soon(fn, *args, **kwargs)
        return result

    def write_soon(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """`write`, called from the loop without awaiting: the future of its result."""
        if self._db is None:
            raise RuntimeError("store is not open")
        future: asyncio.Future[Any] = self._loop_of_writes().create_future()
        self._writes.append((lambda db: fn(db, *args, **kwargs), future))
        return future

    def _loop_of_writes(self) -> asyncio.AbstractEventLoop:
        """The running loop; the next group is sent to the writer thread on its next turn
        (so every write queued in this turn joins it), unless one is on its way already."""
        loop = asyncio.get_running_loop()
        if not self._in_flight and not self._writes:
            loop.call_soon(self._send_group, loop)
        return loop

    def _send_group(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand every waiting write to the writer thread as one group. The thread answers
        with one call_soon_threadsafe for the whole group: no Future chained per group, no
        task of ours in between (the hand-off was ~7 % of the loop's time at full load)."""
        if self._in_flight or not self._writes:
            return
        group, self._writes = self._writes, []
        self._in_flight = True
        try:
            self._executor.submit(self._group_on_thread, [job for job, _ in group], group, loop)
        except BaseException as exc:  # the executor is shut down: nothing of it is stored
            self._deliver(group, [(False, exc)] * len(group), loop)

    def _group_on_thread(
        self,
        jobs: list[Callable[[Any], Any]],
        group: list[tuple[Callable[[Any], Any], asyncio.Future[Any]]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        try:
            outcomes = self._run_group(jobs)
        except BaseException as exc:  # the COMMIT failed: nothing of the group is stored
            outcomes = [(False, exc)] * len(group)
        try:
            loop.call_soon_threadsafe(self._deliver, group, outcomes, loop)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def _deliver(
        self,
        group: list[tuple[Callable[[Any], Any], asyncio.Future[Any]]],
        outcomes: list[tuple[bool, Any]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """On the loop: answer every write of a group, then send the next group at once."""
        self._in_flight = False
        for (_, future), (ok, value) in zip(group, outcomes, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        if self._writes:
            self._send_group(loop)
        elif self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _run_group(self, jobs: list[Callable[[Any], Any]]) -> list[tuple[bool, Any]]:
        """On the writer thread: every job in one transaction, one COMMIT at the end."""
        db = self._db
        if db is None:
            raise RuntimeError("store is not open")
        conn = db.conn
        outcomes: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        _grouping.active = True
        try:
            if len(jobs) == 1:  # the usual group: its own transaction needs no savepoint
                return self._run_alone(conn, db, jobs[0])
            for job in jobs:
                if not conn.in_transaction:  # SQLite rolled all back (SQLITE_FULL...)
                    conn.execute("BEGIN IMMEDIATE")
                conn.execute("SAVEPOINT job")
                try:
                    outcomes.append((True, job(db)))
                except Exception as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK TO job")
                        conn.execute("RELEASE job")
                    else:
                        # the whole group went with it: the earlier jobs are not stored either
                        outcomes = [(False, exc)] * len(outcomes)
                    outcomes.append((False, exc))
                else:
                    conn.execute("RELEASE job")
        finally:
            _grouping.active = False
        try:
            if conn.in_transaction:
                conn.execute("COMMIT")
        except BaseException:
            _Tx(conn)._rollback()
            raise
        return outcomes

    def _run_alone(
        self, conn: sqlite3.Connection, db: sqlite_utils.Database, job: Callable[[Any], Any]
    ) -> list[tuple[bool, Any]]:
        """A group of one job: a failure rolls back the whole transaction, which holds
        nothing else (two statements fewer than a savepoint, each a GIL hand-off)."""
        try:
            value = job(db)
        except Exception as exc:
            _Tx(conn)._rollback()
            return [(False, exc)]
        except BaseException:
            _Tx(conn)._rollback()  # never leave the transaction open for the next BEGIN
            raise
        finally:
            _grouping.active = False
        _Tx(conn)._end(failed=False)
        return [(True, value)]

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(db, *args, **kwargs)` on the writer thread and return its result."""
        db = self._db
        if db is None:
            raise RuntimeError("store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(db, *args, **kwargs))

    def _close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
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
        if self._in_flight or self._writes:  # the writes already accepted go to disk
            self._drained = loop.create_future()
            if not self._in_flight:
                self._send_group(loop)
            await asyncio.shield(self._drained)
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)


# SQLite checkpoints the WAL itself in the COMMIT that takes it past 1000 pages: copying
# 4 MB into the database and fsyncing it, while every webhook of the next group waits (the
# tail of the ingest latency). A thread of its own does it instead, on its own connection:
# a PASSIVE checkpoint never blocks the writer. The writer's own is kept as a backstop.
CHECKPOINT_BYTES = 4 * 1024 * 1024
CHECKPOINT_EVERY_S = 0.25
BACKSTOP_PAGES = 16_000


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


# Set on the writer thread while it runs a group of store.write jobs: their transactions
# become savepoints of the group's one transaction
_grouping = threading.local()


def transaction(db: sqlite_utils.Database) -> _Tx:
    """`with transaction(db):` — BEGIN IMMEDIATE .. COMMIT, or ROLLBACK on error (within a
    group commit: SAVEPOINT .. RELEASE, or ROLLBACK TO on error; the group commits)."""
    conn = db.conn
    if getattr(_grouping, "active", False) and conn.in_transaction:
        return _Savepoint(conn)
    return _Tx(conn)


class _Tx:
    nested = False  # a savepoint inside a group commit's transaction

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("SAVEPOINT tx" if self.nested else "BEGIN IMMEDIATE")
        return self.conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end(failed=exc_type is not None)

    def _end(self, failed: bool) -> None:
        if failed:
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


class _Savepoint(_Tx):
    """A transaction nested in a group commit's: its writes are undone alone on error."""

    nested = True

    def _end(self, failed: bool) -> None:
        if not self.conn.in_transaction:  # SQLite rolled the whole group back; it raises
            return
        if failed:
            self.conn.execute("ROLLBACK TO tx")
        self.conn.execute("RELEASE tx")
