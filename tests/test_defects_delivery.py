"""Issue 10, items 1, 2 and 21 (Telegram): the service as a user runs it (the CLI), against
the fake Telegram and Slack servers.

1. Every pending outbox row of a configured target goes out after a restart, however many;
   rows of a target no longer configured are left alone, with one line saying so.
2. A summary whose chart is refused (Telegram group without photo rights, Slack app without
   `files:write`) still delivers its text; the log says once what to change.
21. Telegram unreachable: the log names the host and TELEGRAM_API_URL, warns once, then
   says it at INFO, and says when Telegram works again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from bot.delivery.channels.telegram import TelegramChannel, build_application, unreachable
from bot.delivery.dispatcher import Dispatcher
from storage import outbox
from storage.db import Store
from storage.outbox import OutboxItem, Target
from tests.conftest import GROUP, TG_TOKEN, telegram_env
from tests.fakes.ria import KYIV, make_call
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram
from tests.reliability import caller, db_rows, e164, mentions, rig, texts_for, until
from tests.service import base_env, free_port, run_cli
from tests.test_slack_e2e import CHANNEL, slack_env
from tests.test_summary import FIXTURE
from tests.test_summary_e2e import seed

PRIVATE = "4242"  # stays configured
GONE = "5151"  # taken out of the configuration before the restart
BACKLOG = 1_100  # more than the 1,000 rows the dispatcher used to load at start
BATCH = 50  # records per webhook request (a JSON array), well within the 64 KiB limit


def log_entries(text: str) -> list[dict[str, Any]]:
    """The service's JSON log lines (LOG_FORMAT=json), skipping anything else."""
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "message" in entry:
            entries.append(entry)
    return entries


# ---- item 1: a backlog of any size after a restart ---------------------------------------


async def test_a_backlog_over_1000_alerts_all_reach_the_chat_after_kill_9(
    services, telegram: FakeTelegram
) -> None:
    telegram.mode = "down_500"  # Telegram is down for the afternoon: everything waits
    env = telegram_env(telegram, chats=f"{GONE},{PRIVATE}") | {"LOG_FORMAT": "json"}
    first = await services(**env)
    ids = list(range(1, BACKLOG + 1))
    for start in range(0, BACKLOG, BATCH):
        batch = [make_call(i, "NOANSWER", caller=caller(i)) for i in ids[start : start + BATCH]]
        status, body = await first.post(first.webhook_url, json=batch)
        assert (status, body) == (200, {"accepted": len(batch), "duplicates": 0})
    db = first.env["DATABASE_PATH"]

    def pending(chat: str) -> int:
        [(n,)] = db_rows(db, "SELECT COUNT(*) FROM outbox WHERE state='pending' AND target=?", chat)
        return n

    assert pending(PRIVATE) == pending(GONE) == BACKLOG
    first.proc.kill()  # SIGKILL: no flush, no goodbye
    await first.proc.wait()
    assert await first.stop() == -9

    telegram.mode = "ok"
    again = await services(**(env | {"TELEGRAM_CHAT_IDS": PRIVATE}))

    def missing() -> list[int]:
        text = "\n".join(texts_for(telegram, PRIVATE))
        return [i for i in ids if e164(i) not in text]

    # a private chat takes 1 message a second; coalesced, 1,100 callers fit in a few dozen
    await until(lambda: not missing(), 150, "every caller in the chat", step=0.5)
    await until(lambda: pending(PRIVATE) == 0, 10, "every row marked sent")
    assert await again.stop() == 0

    assert telegram.messages_for(GONE) == []
    assert pending(GONE) == BACKLOG  # left alone, for the day it is configured again
    gone = [e for e in log_entries(again.stderr()) if f"telegram:{GONE}" in e["message"]]
    assert len(gone) == 1, gone
    assert f"{BACKLOG} message(s) for telegram:{GONE}" in gone[0]["message"]
    assert "no longer configured" in gone[0]["message"]
    assert telegram.rate_limited == 0


async def test_memory_holds_one_page_per_target_and_new_rows_wait_their_turn(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    """A long live outage: rows past the page stay in the database (bounded memory) and
    still all go out once Telegram answers, each caller exactly once."""
    from bot.delivery import backlog as module

    total = module.PAGE * 2 + 17
    ids = list(range(1, total + 1))
    telegram.mode = "down_500"
    async with rig(tmp_path, telegram, [PRIVATE]) as r:
        for start in range(0, total, 100):
            await r.missed(*ids[start : start + 100])
        worker = r.dispatcher.workers[Target("telegram", PRIVATE)]
        assert len(worker.queue) <= module.PAGE and worker.backlog.in_db
        telegram.mode = "ok"
        texts = lambda: texts_for(telegram, PRIVATE)  # noqa: E731
        await until(lambda: all(mentions(texts(), ids).values()), 90, "every caller", step=0.5)
        assert await r.dispatcher.flush(10)
        assert len(worker.queue) == 0 and not worker.backlog.in_db
        rows = await r.rows("SELECT state, COUNT(*) FROM outbox GROUP BY state")
    assert set(mentions(texts_for(telegram, PRIVATE), ids).values()) == {1}
    assert rows == [("sent", total)]


# ---- item 2: a refused chart never costs the summary's text ------------------------------


async def test_summary_send_delivers_the_text_when_the_chart_is_refused(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    telegram.photo_refused_chats.add(int(GROUP))
    async with FakeSlack(channels=[CHANNEL]) as slack:
        slack.missing_scopes.add("files:write")
        env = base_env(tmp_path, **telegram_env(telegram), **slack_env(slack))
        seed(env["DATABASE_PATH"], FIXTURE)
        code, out, err = await run_cli(env, tmp_path, "summary", "2026-11-25", "--send")
    assert code == 0, out + err
    assert f"✓ telegram:{GROUP}: sent" in out and f"✓ slack:{CHANNEL}: sent" in out
    [text] = telegram.messages_for(GROUP)
    assert text["method"] == "sendMessage" and "Calls: 9 (▲ 5)" in text["plain_text"]
    [message] = slack.messages_for(CHANNEL)
    assert message["method"] == "chat.postMessage" and "Calls: 9 (▲ 5)" in message["mrkdwn"]
    assert not any(f["completed"] for f in slack.files.values())
    # what to change, once per target
    assert err.lower().count("not enough rights to send photos") == 1
    assert "group's permissions" in err
    assert err.count("files:write") == 1 and "reinstall" in err


async def test_a_refused_chart_is_logged_once_per_target(
    tmp_path: Path, telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    telegram.photo_refused_chats.add(int(GROUP))
    store = Store(tmp_path / "calls.db")
    await store.open()
    channel = TelegramChannel(build_application(TG_TOKEN, telegram.url, webhook_mode=True))
    d = Dispatcher(store, {"telegram": channel}, lang="en", tz=KYIV)
    target = Target("telegram", GROUP)
    png = "iVBORw0KGgo="  # base64 of the PNG signature: the fake refuses before looking
    now = time.time()
    items = [
        OutboxItem(f"s{i}", "summary", target, now, now, payload={"html": f"day {i}", "png": png})
        for i in range(2)
    ]
    try:
        d.submit(await store.run(outbox.enqueue, items))
        await telegram.wait_for_messages(2, chat_id=GROUP, timeout=20)
        assert await d.flush(5)
        states = await store.run(lambda db: db.conn.execute("SELECT state FROM outbox").fetchall())
    finally:
        await d.stop()
        await channel.app.bot.shutdown()
        await store.close()
    assert [m["text"] for m in telegram.messages_for(GROUP)] == ["day 0", "day 1"]
    assert [tuple(s) for s in states] == [("sent",), ("sent",)]
    warned = [r for r in caplog.records if "chart not sent" in r.getMessage()]
    assert [r.levelname for r in warned] == ["WARNING", "DEBUG"][: len(warned)]
    assert len([r for r in warned if r.levelname == "WARNING"]) == 1


# ---- item 21: Telegram unreachable, said once, with what to check ------------------------


async def test_telegram_unreachable_names_the_host_warns_once_and_says_when_it_is_back(
    services,
) -> None:
    port = free_port()  # nothing listens here yet
    api_url = f"http://127.0.0.1:{port}"
    service = await services(
        TELEGRAM_BOT_TOKEN=TG_TOKEN,
        TELEGRAM_CHAT_IDS=PRIVATE,
        TELEGRAM_API_URL=api_url,
        LOG_FORMAT="json",
    )
    status, _ = await service.post(
        service.webhook_url, json=make_call(7, "NOANSWER", caller=caller(7))
    )
    assert status == 200

    def unreachable_lines() -> list[dict[str, Any]]:
        return [
            e
            for e in log_entries(service.stderr())
            if e["logger"] == "bot.delivery.channels.telegram" and "cannot reach" in e["message"]
        ]

    await until(lambda: len(unreachable_lines()) >= 3, 20, "three failed connection attempts")
    async with FakeTelegram(token=TG_TOKEN, port=port) as telegram:
        await telegram.wait_for_messages(1, chat_id=PRIVATE, timeout=60)
        await until(
            lambda: "works again after" in service.stderr(), 10, "a line saying Telegram is back"
        )
        assert await service.stop() == 0
    assert e164(7) in texts_for(telegram, PRIVATE)[0]

    lines = unreachable_lines()
    assert [e["level"] for e in lines] == ["WARNING"] + ["INFO"] * (len(lines) - 1)
    for e in lines:
        assert "cannot reach 127.0.0.1" in e["message"]
        assert f"TELEGRAM_API_URL is {api_url}" in e["message"]
        assert "HTTPS_PROXY" in e["message"]
        assert TG_TOKEN not in e["message"]
    # the dispatcher's retries of the alert: one WARNING for the outage, then INFO
    entries = log_entries(service.stderr())
    retries = [e for e in entries if "send failed" in e["message"]]
    assert retries and retries[0]["level"] == "WARNING"
    assert all(e["level"] == "INFO" for e in retries[1:] if e["message"] == retries[0]["message"])
    assert len([e for e in retries if e["level"] == "WARNING"]) <= 2
    # the shared connect loop (channels/connect.py): "telegram: <url> works again after N ..."
    back = [e for e in entries if "works again after" in e["message"]]
    assert back and api_url in back[0]["message"]


def test_the_unreachable_line_names_the_proxy_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    line = unreachable("https://api.telegram.org", "ConnectError")
    assert line.startswith("cannot reach api.telegram.org (ConnectError)")
    assert "TELEGRAM_API_URL is https://api.telegram.org" in line
    assert "set HTTPS_PROXY if it needs a proxy" in line
    monkeypatch.setenv("HTTPS_PROXY", "http://user:secret@proxy.local:3128")
    line = unreachable("https://api.telegram.org", "ConnectError")
    assert "through the proxy in HTTPS_PROXY" in line and "check TELEGRAM_API_URL and" in line
    assert "secret" not in line  # the proxy's value (it may hold a password) is never shown
