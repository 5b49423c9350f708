"""Store.write: writes waiting together share one COMMIT; a failing one undoes only its own."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from storage.db import Store, transaction


def _insert(db: sqlite_utils.Database, value: int) -> int:
    with transaction(db) as conn:
        conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
    return value


def _insert_then_fail(db: sqlite_utils.Database, value: int) -> int:
    with transaction(db) as conn:
        conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
        raise ValueError("broken batch")


def _create(db: sqlite_utils.Database) -> None:
    db.conn.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)")


def _commits(db: sqlite_utils.Database) -> int:
    return int(db.conn.execute("PRAGMA data_version").fetchone()[0])


async def test_waiting_writes_share_a_commit_and_a_failure_stays_its_own(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    store = Store(path)
    await store.open()
    try:
        await store.run(_create)
        # count commits from a second connection: its data_version moves once per commit
        # made by another connection
        watcher = sqlite3.connect(path)
        before = watcher.execute("PRAGMA data_version").fetchone()[0]
        jobs = [store.write(_insert, i) for i in range(20)]
        jobs.insert(7, store.write(_insert_then_fail, 999))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        assert next(r for r in results if isinstance(r, Exception)).args == ("broken batch",)
        assert sorted(r for r in results if isinstance(r, int)) == list(range(20))
        rows = sorted(v for (v,) in watcher.execute("SELECT v FROM t"))
        assert rows == list(range(20))  # the failed job's insert was undone, no one else's
        after = watcher.execute("PRAGMA data_version").fetchone()[0]
        assert after - before <= 2  # one group (two if the first ran alone), not 21 commits
        watcher.close()
    finally:
        await store.close()


async def test_a_write_is_durable_when_answered(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    store = Store(path)
    await store.open()
    try:
        await store.run(_create)
        await store.write(_insert, 5)
        # another connection sees it at once: committed, not waiting in an open transaction
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT v FROM t").fetchall() == [(5,)]
        assert await store.run(lambda db: db.conn.execute("PRAGMA synchronous").fetchone()[0]) == 2
    finally:
        await store.close()


def test_write_needs_an_open_store(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        asyncio.run(Store(tmp_path / "x.db").write(_insert, 1))
