"""Personal data (issue 15 items 8, 9): a private database, and `forget PHONE`.

Through the CLI, as an operator runs it: the service creates its folder 0700 and its files
0600 whatever the shell's umask, tightens what an older version left readable (one log
line), and `ria-calls-bot forget` erases one caller in any spelling of the number.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.ria import make_call
from tests.reliability import until
from tests.service import base_env, run_cli

OURS = "0671234567"  # the caller to forget, as RIA sends it
OTHER = "0951174074"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """A usual shell's umask: without the fix everything comes out 0644 / 0755."""
    old = os.umask(0o022)
    yield
    os.umask(old)


async def test_database_folder_and_files_are_private(
    services, tmp_path: Path, usual_umask: None
) -> None:
    db = tmp_path / "data" / "calls.db"
    service = await services(DATABASE_PATH=db)
    status, _ = await service.post(service.webhook_url, json=make_call(1, caller=OURS))
    assert status == 200
    assert mode(db.parent) == 0o700
    for name in ("calls.db", "calls.db-wal", "calls.db-shm"):
        assert mode(db.parent / name) == 0o600, name
    await service.stop()
    assert "now private" not in service.stderr()

    # what an older version (or a restore with cp) left readable is tightened on start
    db.parent.chmod(0o755)
    for file in db.parent.iterdir():
        file.chmod(0o644)
    again = await services(DATABASE_PATH=db)
    assert mode(db.parent) == 0o700
    assert all(mode(f) == 0o600 for f in db.parent.iterdir())
    await again.stop()
    lines = [line for line in again.stderr().splitlines() if "now private" in line]
    assert len(lines) == 1, again.stderr()

    # backups too
    env = base_env(tmp_path, DATABASE_PATH=db)
    code, out, err = await run_cli(env, tmp_path, "backup", str(tmp_path / "bk" / "calls.bak"))
    assert code == 0, out + err
    assert mode(tmp_path / "bk" / "calls.bak") == 0o600
    assert mode(tmp_path / "bk") == 0o700


async def test_forget_erases_one_caller_in_any_spelling(services, tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    env = base_env(tmp_path)
    # never creates a database
    code, out, err = await run_cli(env, tmp_path, "forget", OURS)
    assert code == 1 and "no database" in err and not db.exists()

    service = await services()
    calls = [
        make_call(1, caller=OURS),
        make_call(2, caller=OURS, status="BUSY"),
        make_call(3, caller=OURS, status="ANSWER"),
        make_call(4, caller=OTHER),
    ]
    assert (await service.post(service.webhook_url, json=calls))[0] == 200
    # raw payloads kept as rejected: one JSON, one form body (+ written %2B), one other caller
    bad = make_call(5, caller=OURS)
    bad["call_id"] = "not a number"
    assert (await service.post(service.webhook_url, json=bad))[0] == 400
    form = {"call_id": "x", "caller_phone": "+380671234567"}
    assert (await service.post(service.webhook_url, data=form))[0] == 400
    other = make_call(6, caller=OTHER)
    other["call_id"] = "not a number"
    assert (await service.post(service.webhook_url, json=other))[0] == 400
    # three alerts (1, 2, 4); the answered call 3 resolved 1 and 2, so once their alerts are
    # sent each gets an edit (the callback loop): wait for that settled state, a real signal
    settled = (
        "SELECT kind, call_id FROM outbox WHERE call_id IS NOT NULL"
        " AND (kind = 'edit' OR state = 'sent') ORDER BY kind, call_id"
    )
    await until(lambda: len(rows(db, settled)) == 5, 30, "alerts sent and edits queued")
    assert rows(db, settled) == [
        ("edit", 1),
        ("edit", 2),
        ("missed_call", 1),
        ("missed_call", 2),
        ("missed_call", 4),
    ]
    assert len(rows(db, "SELECT call_id FROM resolutions")) == 2

    # while the service runs, in another spelling than RIA's
    code, out, err = await run_cli(env, tmp_path, "forget", "+38 (067) 123-45-67")
    assert code == 0, out + err
    assert "+380671234567: 3 call(s), 2 alert(s), 2 other message(s)" in out
    assert rows(db, "SELECT call_id FROM resolutions") == []
    assert "2 raw payload(s)" in out
    assert rows(db, "SELECT call_id FROM calls") == [(4,)]
    assert rows(db, "SELECT call_id FROM outbox WHERE call_id IS NOT NULL") == [(4,)]
    assert len(rows(db, "SELECT id FROM rejected_payloads")) == 1
    # asked again, in RIA's spelling: nothing left
    code, out, _ = await run_cli(env, tmp_path, "forget", "380671234567")
    assert code == 0 and "0 call(s), 0 alert(s), 0 other" in out and "0 raw payload(s)" in out

    await service.stop()
    # gone from the files themselves, not only from the tables
    for name in ("calls.db", "calls.db-wal"):
        path = tmp_path / name
        if path.exists():
            data = path.read_bytes()
            assert b"671234567" not in data and b"67 123" not in data, name
    code, out, err = await run_cli(env, tmp_path, "forget", "12")
    assert code == 2 and "not a phone number" in err


def test_forget_trims_a_reminder_shared_with_other_callers(tmp_path: Path) -> None:
    """A coalesced message's reminder lists several callers (call_id: the oldest open one):
    forgetting one caller takes only their calls out of it, and one left empty goes."""
    import json

    from storage.db import connect
    from storage.forget import forget_caller

    db = connect(tmp_path / "calls.db")
    conn = db.conn
    for call_id, caller in ((1, "+380671234567"), (2, "+380951174074"), (3, "+380671234567")):
        conn.execute(
            "INSERT INTO calls (call_id, caller_e164, caller_phone, started_at, local_date,"
            " status, missed, destination_phone, phone, duration, waiting, link, raw, source,"
            " received_at) VALUES (?, ?, ?, ?, '2026-01-01T10:00:00', 'NOANSWER', 1, '', '',"
            " 0, 0, '', '{}', 'webhook', 0)",
            (call_id, caller, caller.removeprefix("+"), 1000 + call_id),
        )

    def reminder(key: str, call_ids: list[int]) -> None:
        conn.execute(
            "INSERT INTO outbox (dedup_key, kind, channel, target, call_id, payload,"
            " created_at, next_attempt_at) VALUES (?, 'reminder', 'telegram', '42', ?, ?, 0, 0)",
            (key, call_ids[0], json.dumps({"message_ref": {}, "call_ids": call_ids})),
        )

    reminder("shared", [1, 2, 3])  # call_id 1: ours, the oldest
    reminder("ours only", [3])
    done = forget_caller(db, e164="+380671234567", spellings=["0671234567"])
    assert (done.calls, done.alerts, done.other_messages) == (2, 0, 2)
    left = conn.execute("SELECT dedup_key, call_id, payload FROM outbox").fetchall()
    assert [(k, c, json.loads(p)["call_ids"]) for k, c, p in left] == [("shared", 2, [2])]
    conn.close()
