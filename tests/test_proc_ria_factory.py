"""Issue 11: one RIA client/poller factory. Backfill keeps unusable records as the poller
does, and `check` says which setting to fix when RIA refuses the request."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from tests.conftest import RIA_KEY, RIA_USER
from tests.fakes.ria import KYIV, FakeRia, make_call
from tests.service import base_env, run_cli


def rows(path: str, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


async def test_backfill_keeps_unusable_records_in_rejected_payloads(tmp_path: Path) -> None:
    now = datetime.now(KYIV)
    old = now - timedelta(days=3)
    good = make_call(7001, "ANSWER", when=old)
    bad = make_call(7002, "NOANSWER", when=old)
    bad["call_id"] = "not-a-number"
    async with FakeRia(api_key=RIA_KEY, user_id=RIA_USER, calls=[good, bad]) as ria:
        env = base_env(tmp_path, RIA_API_KEY=RIA_KEY, RIA_USER_ID=RIA_USER, RIA_API_URL=ria.url)
        day = old.date().isoformat()
        code, out, err = await run_cli(env, tmp_path, "backfill", "--from", day, "--to", day)
    assert code == 0, out + err
    assert "1 calls, 1 new, 1 unusable" in out
    db = env["DATABASE_PATH"]
    assert rows(db, "SELECT call_id FROM calls") == [(7001,)]
    [(source, reason, body)] = rows(db, "SELECT source, reason, body FROM rejected_payloads")
    assert source == "backfill" and "call_id" in reason
    assert b"not-a-number" in body


async def test_check_names_ria_api_url_when_ria_answers_404(tmp_path: Path) -> None:
    async with FakeRia(api_key=RIA_KEY, user_id=RIA_USER) as ria:
        env = base_env(
            tmp_path,
            RIA_API_KEY=RIA_KEY,
            RIA_USER_ID=RIA_USER,
            RIA_API_URL=f"{ria.url}/wrong-prefix",
        )
        code, out, err = await run_cli(env, tmp_path, "check")
    assert code == 1, out + err
    [line] = [line for line in out.splitlines() if "HTTP 404" in line] or [out + err]
    assert "check RIA_API_URL" in line
    assert "RIA_API_KEY" not in line  # the old hint blamed the key for any refusal
