"""Migration steps written with sqlite-utils (transform, add_column) run like SQL ones: each in
one transaction, recorded in user_version, all or nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from storage.db import connect
from storage.schema import MIGRATIONS, Step, migrate


def _reshape(db: sqlite_utils.Database) -> None:
    # what plain ALTER TABLE cannot do: make a nullable column NOT NULL with a default
    db.table("ria_requests").transform(not_null={"error"}, defaults={"error": ""})
    db.table("ria_requests").add_column("note", str)


def _broken(db: sqlite_utils.Database) -> None:
    db.table("ria_requests").add_column("half_done", int)
    raise RuntimeError("step fails half way")


def _seeded(path: Path) -> sqlite3.Connection:
    db = connect(path)
    db.conn.execute(
        "INSERT INTO ria_requests (at, purpose, status, error) VALUES (1, 'poll', 200, 'x')"
    )
    db.conn.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def test_a_callable_step_transforms_a_table_and_keeps_its_rows_and_indexes(tmp_path: Path) -> None:
    conn = _seeded(tmp_path / "m.db")
    steps: list[Step] = [*MIGRATIONS, _reshape]
    assert migrate(conn, steps) == len(steps)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(steps)
    table = sqlite_utils.Database(conn).table("ria_requests")
    assert table.columns_dict["note"] is str
    assert "ria_requests_at" in {i.name for i in table.indexes}
    assert list(table.rows) == [
        {
            "id": 1,
            "at": 1.0,
            "purpose": "poll",
            "status": 200,
            "error": "x",
            "account": None,
            "note": None,
        }
    ]
    # NOT NULL DEFAULT '' now holds
    conn.execute("INSERT INTO ria_requests (at, purpose) VALUES (2, 'poll')")
    assert conn.execute("SELECT error FROM ria_requests WHERE id = 2").fetchone()[0] == ""
    assert migrate(conn, steps) == len(steps)  # run again: nothing to do


def test_a_failing_step_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    conn = _seeded(tmp_path / "m.db")
    with pytest.raises(RuntimeError, match="half way"):
        migrate(conn, [*MIGRATIONS, _broken])
    assert not conn.in_transaction
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    columns = [row[1] for row in conn.execute("PRAGMA table_info(ria_requests)")]
    assert "half_done" not in columns
