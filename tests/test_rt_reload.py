"""SIGHUP reloads the [[account]]s too (issue 13), through the CLI and the fakes: a new
account gets its webhook URL (logged, masked) and its poller at once, a changed webhook
secret moves the URL, a removed account's URL answers 404 and its poller stops, a changed
quota gets a new poller, and a bad file keeps all of it as it was and says why."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from tests.conftest import GROUP, telegram_env
from tests.fakes.ria import FakeRia, make_call
from tests.fakes.telegram import FakeTelegram
from tests.reliability import until

KYIV_KEY = "KYIVKEY" + "k" * 33
LVIV_KEY = "LVIVKEY" + "l" * 33
KYIV_OLD = "kyiv-webhook-secret-old-01"
KYIV_NEW = "kyiv-webhook-secret-new-02"
LVIV_SECRET = "lviv-webhook-secret-0003"


def accounts_file(*accounts: tuple[str, str, str, str, int]) -> str:
    return "".join(
        f'[[account]]\nname = "{name}"\nuser_id = {user}\napi_key = "{key}"\n'
        f'webhook_secret = "{secret}"\nmonthly_quota = {quota}\n\n'
        for name, user, key, secret, quota in accounts
    )


def stored(db: Path) -> dict[int, str | None]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT call_id, account FROM calls").fetchall())


async def quota_gauges(service: Any) -> set[str]:
    """The accounts /metrics has a quota gauge for (its figures are at most 5 s old)."""
    async with service.session.get(f"{service.url}/metrics") as resp:
        text = await resp.text()
    return {
        line.split('account="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("ria_calls_bot_ria_account_quota_left{")
    }


async def metrics_show(service: Any, accounts: set[str], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while (found := await quota_gauges(service)) != accounts:
        if time.monotonic() > deadline:
            raise TimeoutError(f"quota gauges for {accounts} within {timeout} s: got {found}")
        await asyncio.sleep(0.2)


async def hup(service: Any, line: str) -> None:
    """SIGHUP, and wait for the `line` the reload logs (counted: each reload adds one)."""
    before = service.output().count(line)
    service.proc.send_signal(signal.SIGHUP)
    await until(lambda: service.output().count(line) > before, 10, f"{line}\n{service.output()}")


async def test_sighup_takes_new_changed_and_removed_accounts(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    async with FakeRia(api_key="unused-ria-key" + "x" * 26, user_id="1") as ria:
        ria.other_accounts[KYIV_KEY] = ("111", [make_call(31, caller="0953100000")])
        ria.other_accounts[LVIV_KEY] = ("222", [make_call(32, caller="0953200000")])
        config = tmp_path / "ria-calls-bot.toml"
        config.write_text(accounts_file(("Kyiv", "111", "env:KYIV_KEY", KYIV_OLD, 1000)))
        service = await services(**telegram_env(telegram), RIA_API_URL=ria.url, KYIV_KEY=KYIV_KEY)
        db = tmp_path / "calls.db"
        await until(lambda: 31 in stored(db), 15, "Kyiv polled")
        polled = [r["params"]["user_id"] for r in ria.requests]
        assert polled == ["111"], polled
        await metrics_show(service, {"Kyiv"})

        # a new account (its key from .env, read again on reload) and Kyiv's new secret
        (tmp_path / ".env").write_text(f"LVIV_KEY={LVIV_KEY}\n")
        config.write_text(
            accounts_file(
                ("Kyiv", "111", "env:KYIV_KEY", KYIV_NEW, 1000),
                ("Lviv", "222", "env:LVIV_KEY", LVIV_SECRET, 500),
            )
        )
        await hup(service, "config reloaded")
        out = service.output()
        assert (
            f"account Lviv added; RIA webhook URL of account Lviv: {service.url}/webhooks/ria/"
            "******** (its webhook_secret)"
        ) in out, out
        assert "account Kyiv: new webhook secret; RIA webhook URL of account Kyiv" in out, out
        assert "poller: account Lviv, 500 requests a month" in out, out
        await until(lambda: 32 in stored(db), 15, "Lviv polled at once")
        await metrics_show(service, {"Kyiv", "Lviv"})  # the added account's gauge, no restart
        url = f"{service.url}/webhooks/ria/"
        assert (await service.post(url + KYIV_OLD, json=[make_call(41)]))[0] == 404
        assert (await service.post(url + KYIV_NEW, json=[make_call(42)]))[0] == 200
        assert (await service.post(url + LVIV_SECRET, json=[make_call(43)]))[0] == 200
        got = stored(db)
        assert (got[31], got[32], got[42], got[43]) == ("Kyiv", "Lviv", "Kyiv", "Lviv"), got
        assert 41 not in got
        # Kyiv's key did not change: its poller went on (no second poll at the reload)
        assert [r["params"]["user_id"] for r in ria.requests].count("111") == 1

        # Lviv removed, Kyiv's quota changed: a new poller for Kyiv, none for Lviv
        config.write_text(accounts_file(("Kyiv", "111", "env:KYIV_KEY", KYIV_NEW, 300)))
        await hup(service, "config reloaded")
        out = service.output()
        assert "account Lviv removed: its webhook URL and poller are gone" in out, out
        assert "account Kyiv changed (key, user id or quota): new poller" in out, out
        assert "poller: account Kyiv, 300 requests a month" in out, out
        await until(
            lambda: [r["params"]["user_id"] for r in ria.requests].count("111") == 2,
            15,
            "Kyiv's new poller polled",
        )
        assert (await service.post(url + LVIV_SECRET, json=[make_call(44)]))[0] == 404
        await metrics_show(service, {"Kyiv"})  # and the removed one's is gone

        # a bad file: everything stays as it was, and the log says why
        config.write_text(accounts_file(("Kyiv", "111", "env:NO_SUCH_KEY_VARIABLE", KYIV_NEW, 300)))
        await hup(service, "config reload failed")
        assert "account[1].api_key: env:NO_SUCH_KEY_VARIABLE" in service.output()
        assert (await service.post(url + KYIV_NEW, json=[make_call(45)]))[0] == 200
        assert stored(db)[45] == "Kyiv"
        assert await service.stop() == 0
        out = service.output()
        for secret in (KYIV_KEY, LVIV_KEY, KYIV_OLD, KYIV_NEW, LVIV_SECRET):
            assert secret not in out
        await telegram.wait_for_messages(1, chat_id=GROUP, timeout=15)
