"""`ria-calls-bot status` on databases left in states the happy-path tests never reach:
a crashed service, a channel that is not working, a spent quota, a RIA request with no
answer, rows for a target nobody configures, a file that is not a database.

Each database is made by the real schema (storage.db.connect), filled with plain SQL as the
service would have left it, and read by the real CLI in a subprocess.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from storage.db import connect
from tests.conftest import RIA_KEY, RIA_USER
from tests.service import base_env, run_cli

STATE_KEY = "service_state"  # handlers/health.py: the meta key the service saves


def _make_db(path: Path) -> None:
    connect(path).conn.close()


def _sql(path: Path, sql: str, *args: object) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(sql, args)
    finally:
        conn.close()


def _outbox(path: Path, key: str, channel: str, target: str, state: str, error: str | None) -> None:
    now = time.time()
    _sql(
        path,
        "INSERT INTO outbox (dedup_key, kind, channel, target, state, created_at,"
        " next_attempt_at, sent_at, last_error) VALUES (?, 'test', ?, ?, ?, ?, ?, ?, ?)",
        key,
        channel,
        target,
        state,
        now,
        now,
        now if state == "sent" else None,
        error,
    )


def _dead_pid() -> int:
    """A pid that belonged to a process which has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


async def test_status_after_a_crash_with_a_broken_channel_and_spent_quota(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    _make_db(db)
    state = {
        "running": True,  # never stopped cleanly ...
        "pid": _dead_pid(),  # ... and its process is gone
        "saved_at": time.time() - 60,
        "channels": {
            "telegram": {"connected": True, "last_error": "Unauthorized (check the token)"},
            "slack": {"connected": False},
            "console": {"connected": True},  # never listed: it is the terminal
        },
        "poller": {"paused_until": time.time() + 600},
    }
    _sql(db, "INSERT INTO meta (key, value) VALUES (?, ?)", STATE_KEY, json.dumps(state))
    # RIA's last request got no answer at all
    _sql(
        db,
        "INSERT INTO ria_requests (at, purpose, status, error) VALUES (?, 'poll', NULL, ?)",
        time.time() - 5,
        "timed out after 30 s",
    )
    # a target that is not configured (any more): its rows are shown, marked as left alone
    _outbox(db, "old-1", "slack", "C0OLDCHAN1", "failed", "channel_not_found")
    env = base_env(
        tmp_path,
        DATABASE_PATH=str(db),
        RIA_API_KEY=RIA_KEY,
        RIA_USER_ID=RIA_USER,
        RIA_MONTHLY_QUOTA="0",  # spent before the first request
    )
    code, out, err = await run_cli(env, tmp_path, "status")
    assert code == 0, out + err
    lines = out.splitlines()
    assert any(
        line.startswith("service: not running (it stopped without a clean stop, after ")
        for line in lines
    ), out
    assert "telegram: not working: Unauthorized (check the token)" in lines
    assert "slack: not connected yet" in lines
    assert not any(line.startswith("console:") for line in lines)
    assert "  slack:C0OLDCHAN1 (not configured: left alone): pending 0, sent 0, failed 1;" in out
    assert "    last error (failed message): channel_not_found" in lines
    assert "  waiting: monthly quota of 0 spent" in lines
    assert any(
        line.startswith("  last answer (poll, ")
        and line.endswith("no answer: timed out after 30 s")
        for line in lines
    ), out
    assert any(line.startswith("  paused until ") for line in lines), out
    assert RIA_KEY not in out + err


async def test_status_of_a_running_service_with_a_large_database(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    _make_db(db)
    # pid 1 always exists: the state says running and the process is there
    state = {"running": True, "pid": 1, "saved_at": time.time()}
    _sql(db, "INSERT INTO meta (key, value) VALUES (?, ?)", STATE_KEY, json.dumps(state))
    # a raw payload of 1.5 MiB: the size is given in MiB
    _sql(
        db,
        "INSERT INTO rejected_payloads (received_at, source, reason, body) VALUES (?, ?, ?, ?)",
        time.time(),
        "webhook",
        "not JSON",
        b"x" * (1536 * 1024),
    )
    env = base_env(tmp_path, DATABASE_PATH=str(db))
    code, out, err = await run_cli(env, tmp_path, "status")
    assert code == 0, out + err
    assert " MiB)" in out.splitlines()[0], out
    assert "service: running (pid 1; state as of " in out
    assert "poller: off (set RIA_API_KEY and RIA_USER_ID to turn it on)" in out
    # no alert target but the console, and no rows at all
    assert "alert targets:" in out


async def test_status_with_a_state_that_is_not_json_and_no_answer_yet(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    _make_db(db)
    _sql(db, "INSERT INTO meta (key, value) VALUES (?, ?)", STATE_KEY, "{half written")
    env = base_env(tmp_path, DATABASE_PATH=str(db), RIA_API_KEY=RIA_KEY, RIA_USER_ID=RIA_USER)
    code, out, err = await run_cli(env, tmp_path, "status")
    assert code == 0, out + err
    assert "service: no state saved yet (it has not run with this version)" in out
    assert "  last answer: none yet" in out
    assert "poller: this hour 0 of 30 used, 30 left; this month 0 of 1000 used" in out

    # a state that is JSON but not an object counts as none either
    _sql(db, "UPDATE meta SET value = ? WHERE key = ?", "[1, 2]", STATE_KEY)
    code, out, err = await run_cli(env, tmp_path, "status")
    assert code == 0, out + err
    assert "service: no state saved yet" in out


async def test_status_of_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    db.write_bytes(b"this is a text file, not SQLite\n" * 200)
    env = base_env(tmp_path, DATABASE_PATH=str(db))
    code, out, err = await run_cli(env, tmp_path, "status")
    assert code == 1, out + err
    assert f"cannot read the database at {db.resolve()}: file is not a database" in err
    assert "Traceback" not in err
    assert db.read_bytes().startswith(b"this is a text file")  # read-only: left as it was
