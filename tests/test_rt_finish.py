"""Routing (issue 13), RT-finish: the pieces wired together, through the CLI and the fakes."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from datetime import time as dtime
from datetime import timedelta
from pathlib import Path

from bot import hours
from bot.reminders import Reminders
from handlers.routing import Hours
from storage.db import connect
from storage.outbox import OutboxItem
from tests.conftest import GROUP, RIA_KEY, RIA_USER, telegram_env
from tests.fakes.ria import FakeRia, make_call
from tests.fakes.telegram import FakeTelegram
from tests.test_cb_chat_commands import store  # noqa: F401  (the fixture: calls A, B, C)
from tests.test_cb_store import KYIV, at
from tests.test_summary_e2e import passed_minute, steady_now, window

SHOWROOM = -100111  # a group only the route sends to (not in TELEGRAM_CHAT_IDS)

SHOWROOM_ROUTE = f"""\
[[route]]
match = {{ make = "Toyota" }}
telegram = ["{SHOWROOM}"]
"""


async def test_a_showroom_group_sees_its_own_figures_the_main_group_all(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    (tmp_path / "ria-calls-bot.toml").write_text(SHOWROOM_ROUTE)
    service = await services(**telegram_env(telegram))
    calls = [
        make_call(1, marka="Toyota", caller="0951111111"),
        make_call(2, "ANSWER", marka="Toyota", caller="0952222222"),
        make_call(3, marka="Honda", caller="0953333333"),
        make_call(4, "BUSY", marka="BMW", caller="0954444444"),
    ]
    assert (await service.post(service.webhook_url, json=calls))[0] == 200
    await telegram.wait_for_messages(1, chat_id=SHOWROOM, timeout=15)
    await telegram.wait_for_messages(2, chat_id=GROUP, timeout=15)

    update = telegram.push_command(SHOWROOM, "/stats today")
    text = (await telegram.wait_for_reply(SHOWROOM, after_update_id=update, timeout=15))[
        "plain_text"
    ]
    assert "50%" in text.replace(" %", "%"), text  # 1 answered of its 2 calls
    assert re.search(r"\b2\b", text) and not re.search(r"\b4\b", text), text
    update = telegram.push_command(SHOWROOM, "/missed")
    text = (await telegram.wait_for_reply(SHOWROOM, after_update_id=update, timeout=15))[
        "plain_text"
    ]
    assert "1111" in text.replace(" ", "") and "3333" not in text.replace(" ", ""), text

    update = telegram.push_command(int(GROUP), "/stats today")
    text = (await telegram.wait_for_reply(int(GROUP), after_update_id=update, timeout=15))[
        "plain_text"
    ]
    assert "25%" in text.replace(" %", "%") and re.search(r"\b4\b", text), text
    update = telegram.push_command(int(GROUP), "/missed")
    text = (await telegram.wait_for_reply(int(GROUP), after_update_id=update, timeout=15))[
        "plain_text"
    ]
    for digits in ("1111", "3333", "4444"):
        assert digits in text.replace(" ", ""), text

    # a chat neither listed nor routed to is still refused, with no figures
    update = telegram.push_command(-100999, "/stats today")
    text = (await telegram.wait_for_reply(-100999, after_update_id=update, timeout=15))[
        "plain_text"
    ]
    assert "%" not in text, text
    assert await service.stop() == 0


async def summary_text(telegram: FakeTelegram, chat: int | str) -> str:
    """The text message of the daily summary sent to `chat` (after its chart)."""
    for _ in range(400):
        for m in telegram.messages_for(chat):
            if m["method"] == "sendMessage" and m["plain_text"].startswith("📊"):
                return str(m["plain_text"])
        await telegram.wait_for_messages(len(telegram.messages_for(chat)) + 1, chat_id=chat)
    raise AssertionError(f"no summary to {chat}")


async def test_summaries_per_chat_over_its_own_calls(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    now = await steady_now()
    w = window(now)
    (tmp_path / "ria-calls-bot.toml").write_text(SHOWROOM_ROUTE)
    env = {**telegram_env(telegram), "LANGUAGE": "en", "SUMMARY_WEEKLY": "off"}
    service = await services(**env)
    statuses = [("Toyota", "NOANSWER"), ("Toyota", "ANSWER"), ("Honda", "BUSY"), ("BMW", "ANSWER")]
    calls = [
        make_call(
            20 + i,
            status,
            when=w.start + (w.end - w.start - timedelta(seconds=5)) * (i + 1) / 5,
            caller=f"067222000{i}",
            marka=make,
        )
        for i, (make, status) in enumerate(statuses)
    ]
    assert (await service.post(service.webhook_url, json=calls))[0] == 200
    assert await service.stop() == 0

    # the summary that has just become due goes out at start, one per chat
    again = await services(**env, SUMMARY_TIME=passed_minute(now))
    showroom = await summary_text(telegram, SHOWROOM)
    main = await summary_text(telegram, GROUP)
    assert "Calls: 2 " in showroom and "✅ Answered: 1 (▲ 1) — 50%" in showroom, showroom
    assert "Calls: 4 " in main and "✅ Answered: 2 (▲ 2) — 50%" in main, main
    assert "Still not reached: 1 " in showroom and "Still not reached: 2 " in main, main
    assert await again.stop() == 0


KYIV_KEY, LVIV_KEY = "K" * 40, "L" * 40
LVIV_GROUP = -100222
ACCOUNTS = f"""\
[[account]]
name = "Kyiv"
user_id = 111
api_key = "env:KYIV_KEY"
webhook_secret = "env:KYIV_SECRET"

[[account]]
name = "Lviv"
user_id = 222
api_key = "env:LVIV_KEY"
webhook_secret = "env:LVIV_SECRET"
monthly_quota = 0

[[route]]
match = {{ account = "Lviv" }}
telegram = ["{LVIV_GROUP}"]
"""


async def test_two_accounts_with_their_own_webhooks_and_quotas(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    async with FakeRia(api_key=RIA_KEY, user_id=RIA_USER) as ria:
        ria.other_accounts[KYIV_KEY] = ("111", [make_call(31, caller="0953100000")])
        ria.other_accounts[LVIV_KEY] = ("222", [make_call(32, caller="0953200000")])
        # the RIA_* account has spent this hour's 30 requests: the others poll regardless
        db = tmp_path / "calls.db"
        conn = connect(str(db))
        conn["ria_requests"].insert_all(
            {"at": time.time(), "purpose": "poll", "status": 200} for _ in range(30)
        )
        conn.conn.close()
        (tmp_path / "ria-calls-bot.toml").write_text(ACCOUNTS)
        service = await services(
            **telegram_env(telegram),
            RIA_API_URL=ria.url,
            RIA_API_KEY=RIA_KEY,
            RIA_USER_ID=RIA_USER,
            KYIV_KEY=KYIV_KEY,
            KYIV_SECRET="kyiv-webhook-secret-000001",
            LVIV_KEY=LVIV_KEY,
            LVIV_SECRET="lviv-webhook-secret-000002",
        )
        for _ in range(200):  # each poller's decision, in its own log line or request
            out = service.output()
            if "poller Lviv: skipped" in out and "poller: skipped" in out and ria.requests:
                break
            await asyncio.sleep(0.05)
        out = service.output()
        assert "poller Lviv: skipped, monthly quota of 0 spent" in out, out
        assert "poller: skipped, 30 requests this hour" in out, out
        assert [r["params"]["user_id"] for r in ria.requests] == ["111"]  # Kyiv's only

        # each account's webhook URL, masked; each call stored as its account's
        assert f"RIA webhook URL of account Kyiv: {service.url}/webhooks/ria/********" in out
        assert "webhook-secret-00000" not in out
        lviv = f"{service.url}/webhooks/ria/lviv-webhook-secret-000002"
        assert (await service.post(lviv, json=[make_call(33, caller="0953300000")]))[0] == 200
        assert (await service.post(service.webhook_url, json=[make_call(34)]))[0] == 200
        wrong = f"{service.url}/webhooks/ria/lviv-webhook-secret-000003"
        assert (await service.post(wrong, json=[make_call(35)]))[0] == 404
        await telegram.wait_for_messages(1, chat_id=LVIV_GROUP, timeout=15)
        for _ in range(200):  # Kyiv's poll stored what it brought (the real signal)
            with sqlite3.connect(db) as c:
                got = dict(c.execute("SELECT call_id, account FROM calls ORDER BY 1").fetchall())
            if 31 in got:
                break
            await asyncio.sleep(0.05)
        with sqlite3.connect(db) as c:
            spent = c.execute(
                "SELECT account, COUNT(*) FROM ria_requests GROUP BY 1 ORDER BY 1"
            ).fetchall()
        assert got == {31: "Kyiv", 33: "Lviv", 34: None}, got
        assert spent == [(None, 30), ("Kyiv", 1)], spent
        assert "3200000" not in str(telegram.messages_for(LVIV_GROUP))  # never polled
        assert await service.stop() == 0


async def test_reminders_count_only_open_hours(store) -> None:  # noqa: F811
    """C missed at 11:00 on Friday (the fixture day), 5 minutes before closing: the 15-minute
    promise runs out at 09:10 on Monday, after the weekend (injected clock)."""
    shop = Hours({d: ((dtime(9, 0), dtime(11, 5)),) for d in range(5)}, after_hours="normal")
    handed: list[list[OutboxItem]] = []
    job = Reminders(store, submit=handed.append, within_s=900, alert_max_age_s=7200)
    hours.set_hours(shop, KYIV)
    try:
        monday = 3 * 86400
        for moment, expected in (
            (at("11:15"), 0),  # 15 min by the wall clock, 5 of them open
            (at("23:59"), 0),
            (at("09:09") + monday, 0),  # 5 + 9 open minutes
            (at("09:10") + monday, 1),  # 5 + 10: due, though 70 h old
        ):
            job.clock = lambda moment=moment: float(moment)
            assert await job.run_once() == expected, moment
        assert [i.payload["call_ids"] for i in handed[0]] == [[3]]
    finally:
        hours.set_hours(None, KYIV)
    # without hours: due by the wall clock, as before (a fresh alert of the same kind)
    assert hours.open_seconds(at("11:00"), at("11:15")) == 900
