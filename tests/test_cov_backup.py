"""`ria-calls-bot backup` beyond the flood test: rotation when --keep is lowered, the refusals
(--keep 0, the database as its own backup, no database, a file that is not a database), and
storage.backup's own guarantees on real SQLite files (a failed copy leaves nothing behind)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from storage.backup import backup, rotate
from storage.db import NoDatabase, connect
from tests.service import base_env, run_cli


def _db_with_calls(path: Path, n: int) -> None:
    db = connect(path)
    try:
        with db.conn:
            for i in range(n):
                db.conn.execute(
                    "INSERT INTO calls (call_id, started_at, local_date, status, missed,"
                    " caller_phone, caller_e164, destination_phone, phone, duration, waiting,"
                    " link, raw, source, received_at) VALUES (?, 0, '2026-11-01T10:00:00',"
                    " 'NOANSWER', 1, '0671234567', '+380671234567', '', '', 0, 0, '', '{}',"
                    " 'webhook', 0)",
                    (i + 1,),
                )
    finally:
        db.conn.close()


def _calls_in(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    finally:
        conn.close()


async def test_lowering_keep_deletes_the_older_backups(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    _db_with_calls(db, 3)
    env = base_env(tmp_path, DATABASE_PATH=str(db))
    dest = tmp_path / "backups" / "calls.db"
    for _ in range(4):
        code, out, err = await run_cli(env, tmp_path, "backup", str(dest), "--keep", "4")
        assert code == 0, out + err
    assert sorted(p.name for p in dest.parent.iterdir()) == [
        "calls.db",
        "calls.db.1",
        "calls.db.2",
        "calls.db.3",
    ]
    assert "older backups: calls.db.1, calls.db.2, calls.db.3" in out
    assert "backup: " in out and "(3 calls, " in out and "integrity ok" in out

    code, out, err = await run_cli(env, tmp_path, "backup", str(dest), "--keep", "2")
    assert code == 0, out + err
    assert "deleted the oldest backup calls.db.2 (--keep 2)" in out
    assert "deleted the oldest backup calls.db.3 (--keep 2)" in out
    assert sorted(p.name for p in dest.parent.iterdir()) == ["calls.db", "calls.db.1"]
    assert _calls_in(dest) == 3 and _calls_in(dest.with_name("calls.db.1")) == 3


async def test_backup_refusals(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    _db_with_calls(db, 1)
    env = base_env(tmp_path, DATABASE_PATH=str(db))

    code, out, err = await run_cli(env, tmp_path, "backup", str(tmp_path / "b.db"), "--keep", "0")
    assert (code, out) == (2, "")
    assert "backup: --keep 0: keep at least 1 copy" in err
    assert not (tmp_path / "b.db").exists()

    # the database as its own backup: one line, not a traceback, and the database intact
    code, out, err = await run_cli(env, tmp_path, "backup", str(db))
    assert code == 2, out + err
    assert "the backup file is the database itself" in err
    assert "Traceback" not in err
    assert _calls_in(db) == 1

    missing = base_env(tmp_path, DATABASE_PATH=str(tmp_path / "nowhere.db"))
    code, out, err = await run_cli(missing, tmp_path, "backup", str(tmp_path / "b.db"))
    assert code == 1, out + err
    assert f"no database at {tmp_path / 'nowhere.db'}" in err
    assert not (tmp_path / "nowhere.db").exists()

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all\n" * 100)
    code, out, err = await run_cli(
        base_env(tmp_path, DATABASE_PATH=str(junk)), tmp_path, "backup", str(tmp_path / "b.db")
    )
    assert code == 1, out + err
    assert "file is not a database" in err and "Traceback" not in err
    # the half-made copy is removed: nothing named like the backup is left
    assert not [p for p in os.listdir(tmp_path) if "b.db" in p]


def test_a_failed_copy_keeps_the_previous_backup(tmp_path: Path) -> None:
    good = tmp_path / "calls.db"
    _db_with_calls(good, 2)
    dest = tmp_path / "backup.db"
    first = backup(good, dest, keep=2)
    assert (first.calls, first.rotated, first.deleted) == (2, [], [])

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"garbage" * 1000)
    with pytest.raises(sqlite3.DatabaseError):
        backup(junk, dest, keep=2)
    # the last good backup is still FILE, unrotated, and no temporary file is left
    assert sorted(p.name for p in tmp_path.iterdir() if "backup" in p.name) == ["backup.db"]
    assert _calls_in(dest) == 2

    with pytest.raises(NoDatabase):
        backup(tmp_path / "gone.db", dest)
    with pytest.raises(ValueError, match="the database itself"):
        backup(good, tmp_path / "." / "calls.db")


def test_rotate_shifts_numbered_copies_and_drops_the_extra(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    for name, text in [("b.db", "0"), ("b.db.1", "1"), ("b.db.2", "2"), ("b.db.5", "5")]:
        (tmp_path / name).write_text(text)
    kept, deleted = rotate(path, 3)
    # b.db.2 is past the limit (keep 3: b.db, .1, .2 after the new one): it and what lies
    # beyond it in a row go; b.db.5, not adjacent, is not the rotation's
    assert [p.name for p in deleted] == ["b.db.2"]
    assert [p.name for p in kept] == ["b.db.1", "b.db.2"]
    assert (tmp_path / "b.db.1").read_text() == "0"
    assert (tmp_path / "b.db.2").read_text() == "1"
    assert not path.exists()
