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
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import sqlite_utils

from storage.checkpoint import Checkpointer
from storage.files import make_private_dir, tighten, tighten_logged
from storage.schema import migrate

T = TypeVar("T")

# the writer's own WAL checkpoint, a backstop for the checkpoint thread (storage/checkpoint)
BACKSTOP_PAGES = 16_000

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
    if str(path) != ":memory:":
        tighten_logged(path)
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
