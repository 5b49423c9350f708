"""Issue 13's gaps, through the real CLI with a routing file and the fake RIA: `backfill`
stores each account's history as that account's (`--account NAME`: only that one), and
`status`, `check` and /metrics show each [[account]]'s own RIA budget."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path

from storage.db import connect
from tests.conftest import RIA_KEY, RIA_USER
from tests.fakes.ria import KYIV, FakeRia, make_call
from tests.service import base_env, run_cli
from tests.test_metrics import until_scraped, value

KYIV_KEY, LVIV_KEY = "K" * 40, "L" * 40
ACCOUNTS = """\
[[account]]
name = "Kyiv"
user_id = 111
api_key = "env:KYIV_KEY"
webhook_secret = "env:KYIV_SECRET"
monthly_quota = 500

[[account]]
name = "Lviv"
user_id = 222
api_key = "env:LVIV_KEY"
webhook_secret = "env:LVIV_SECRET"
monthly_quota = 100
"""
SECRETS = {
    "KYIV_KEY": KYIV_KEY,
    "KYIV_SECRET": "kyiv-webhook-secret-000001",
    "LVIV_KEY": LVIV_KEY,
    "LVIV_SECRET": "lviv-webhook-secret-000002",
}


def answered(call_id: int) -> dict:
    # answered an hour ago: stored, never alerted (the test is about where calls are stored)
    # (not before today's midnight: the backfill asks for today)
    now = datetime.now(KYIV)
    when = max(now - timedelta(hours=1), now.replace(hour=0, minute=0, second=1))
    when = min(when, now).replace(tzinfo=None)
    return make_call(call_id, "ANSWER", when=when, caller=f"09531{call_id:05d}")


def accounts_of(db: Path) -> dict[int, str | None]:
    with sqlite3.connect(db) as c:
        return dict(c.execute("SELECT call_id, account FROM calls ORDER BY 1").fetchall())


def spent(db: Path) -> list[tuple[str | None, int]]:
    with sqlite3.connect(db) as c:
        return c.execute(
            "SELECT account, COUNT(*) FROM ria_requests GROUP BY 1 ORDER BY 1"
        ).fetchall()


async def test_backfill_stores_each_accounts_history_as_its_own(tmp_path: Path) -> None:
    (tmp_path / "ria-calls-bot.toml").write_text(ACCOUNTS)
    db = tmp_path / "calls.db"
    today = datetime.now(KYIV).date().isoformat()
    async with FakeRia(api_key=RIA_KEY, user_id=RIA_USER, calls=[answered(1)]) as ria:
        ria.other_accounts[KYIV_KEY] = ("111", [answered(2)])
        ria.other_accounts[LVIV_KEY] = ("222", [answered(3)])
        env = base_env(
            tmp_path, RIA_API_URL=ria.url, RIA_API_KEY=RIA_KEY, RIA_USER_ID=RIA_USER, **SECRETS
        )
        args = ("backfill", "--from", today, "--to", today)

        # default: every account, the RIA_* one too, each call stored as its account's
        code, out, err = await run_cli(env, tmp_path, *args)
        assert code == 0, out + err
        assert accounts_of(db) == {1: None, 2: "Kyiv", 3: "Lviv"}
        assert f"account Kyiv: {today}..{today}: 1 calls, 1 new" in out, out
        assert f"{today}..{today}: 1 calls, 1 new" in out.splitlines(), out  # RIA_*'s as before
        assert spent(db) == [(None, 1), ("Kyiv", 1), ("Lviv", 1)]

        # --account: that account alone is asked
        ria.other_accounts[KYIV_KEY][1].append(answered(4))
        ria.other_accounts[LVIV_KEY][1].append(answered(5))
        ria.add_calls(answered(6))
        asked = len(ria.requests)
        code, out, err = await run_cli(env, tmp_path, *args, "--account", "Kyiv")
        assert code == 0, out + err
        assert [r["params"]["user_id"] for r in ria.requests[asked:]] == ["111"]
        assert accounts_of(db) == {1: None, 2: "Kyiv", 3: "Lviv", 4: "Kyiv"}
        assert spent(db) == [(None, 1), ("Kyiv", 2), ("Lviv", 1)]

        # a name the file does not have: refused before asking anyone
        asked = len(ria.requests)
        code, out, err = await run_cli(env, tmp_path, *args, "--account", "Odesa")
        assert code == 2
        assert "no [[account]] named 'Odesa'" in err and "Kyiv, Lviv" in err, err
        assert len(ria.requests) == asked

        # `status`: each account's budget from its own requests
        code, out, err = await run_cli(env, tmp_path, "status")
        assert code == 0, out + err
        assert "account Kyiv: this hour 2 of 30 used, 28 left; this month 2 of 500 used, " in out
        assert "498 left" in out, out
        assert "account Lviv: this hour 1 of 30 used, 29 left; this month 1 of 100 used, " in out
        assert KYIV_KEY not in out + err

        # `check`: the same per account (its own probe of RIA spends the RIA_* account's)
        code, out, err = await run_cli(env, tmp_path, "check")
        assert "RIA account Kyiv: this hour 2 of 30 used, 28 left; this month 2 of 500 used" in out
        assert "RIA account Lviv: this hour 1 of 30 used, 29 left" in out, out + err
        assert KYIV_KEY not in out + err


async def test_without_a_file_backfill_and_status_are_as_before(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    today = datetime.now(KYIV).date().isoformat()
    async with FakeRia(api_key=RIA_KEY, user_id=RIA_USER, calls=[answered(1)]) as ria:
        env = base_env(tmp_path, RIA_API_URL=ria.url, RIA_API_KEY=RIA_KEY, RIA_USER_ID=RIA_USER)
        code, out, err = await run_cli(env, tmp_path, "backfill", "--from", today, "--to", today)
        assert code == 0, out + err
        assert accounts_of(db) == {1: None}
        code, out, err = await run_cli(
            env, tmp_path, "backfill", "--from", today, "--to", today, "--account", "Kyiv"
        )
        assert code == 2 and "no [[account]] named 'Kyiv'" in err, err
        code, out, err = await run_cli(env, tmp_path, "status")
        assert code == 0 and "poller: this hour 1 of 30 used" in out, out + err
        assert "accounts" not in out, out


async def test_metrics_show_each_accounts_quota_left(services, tmp_path: Path) -> None:
    (tmp_path / "ria-calls-bot.toml").write_text(ACCOUNTS.replace("100", "0"))  # Lviv: never
    db = tmp_path / "calls.db"
    conn = connect(str(db))
    now = time.time()
    conn["ria_requests"].insert_all(
        {"at": now, "purpose": "poll", "status": 200, "account": "Lviv"} for _ in range(4)
    )
    conn["ria_requests"].insert_all(
        {"at": now, "purpose": "poll", "status": 200, "account": "Kyiv"} for _ in range(10)
    )
    conn.conn.close()
    async with FakeRia(api_key=RIA_KEY, user_id=RIA_USER) as ria:
        ria.other_accounts[KYIV_KEY] = ("111", [])
        # its start poll whatever the minute (spread, it may wait at an hour's start)
        service = await services(RIA_API_URL=ria.url, RIA_POLL_SPREAD="off", **SECRETS)
        for _ in range(200):  # Kyiv's poll at start, recorded (the real signal)
            if ("Kyiv", 11) in spent(db):
                break
            await asyncio.sleep(0.05)
        assert ("Kyiv", 11) in spent(db)

        def settled(found: dict) -> bool:
            return value(found, "ria_account_quota_left", account="Kyiv", window="month") == 489

        found = await until_scraped(service, settled, "Kyiv's quota after its poll")
        assert value(found, "ria_account_quota_left", account="Kyiv", window="hour") == 19
        assert value(found, "ria_account_quota_left", account="Lviv", window="hour") == 26
        assert value(found, "ria_account_quota_left", account="Lviv", window="month") == 0
        # the RIA_* account's metric as before: polling is off for it here
        assert not any(name == "ria_calls_bot_ria_quota_left" for name, _ in found)
        assert await service.stop() == 0
