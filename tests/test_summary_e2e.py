"""Summaries end to end: `ria-calls-bot run` with SUMMARY_TIME set to a minute that has just
passed (the catch-up path: the service "was down" at that time), against the fake Telegram
and RIA servers; and the `summary` CLI."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from storage.calls import Call
from storage.db import connect
from tests.conftest import GROUP, RIA_KEY, RIA_USER, telegram_env
from tests.fakes.ria import KYIV, FakeRia, make_call
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram
from tests.service import base_env, run_cli
from tests.test_slack_e2e import CHANNEL, slack_env
from tests.test_summary import FIXTURE, call, load

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def passed_minute(now: datetime) -> str:
    """A SUMMARY_TIME that has already passed today (00:00 just after midnight)."""
    earlier = now - timedelta(minutes=1)
    return f"{earlier:%H:%M}" if earlier.date() == now.date() else "00:00"


def todays_calls(now: datetime) -> list[Call]:
    """Five calls spread over today before `now`: 2 answered, 3 missed."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    statuses = ["ANSWER", "NOANSWER", "ANSWER", "BUSY", "CANCEL"]
    return [
        call(
            9100 + i,
            midnight + (now - midnight - timedelta(seconds=5)) * (i + 1) / 6,
            status,
            f"06711100{i:02d}",
            waiting=10,
            duration=60 if status == "ANSWER" else 0,
            marka="Acura",
            model="MDX",
        )
        for i, status in enumerate(statuses)
    ]


def seed(path: str, calls: list[Call]) -> None:
    db = connect(path)
    load(db, calls)
    db.conn.close()


def summary_rows(path: str) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT dedup_key, state FROM outbox WHERE kind = 'summary' ORDER BY id"
        ).fetchall()


async def test_summary_time_passed_sends_once_with_chart_and_not_after_restart(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    now = datetime.now(KYIV)
    seed(str(tmp_path / "calls.db"), todays_calls(now))
    env = {
        **telegram_env(telegram),
        "SUMMARY_TIME": passed_minute(now),
        "SUMMARY_WEEKLY": "off",
        "LANGUAGE": "en",
    }
    service = await services(**env)
    [photo] = await telegram.wait_for_messages(1, chat_id=GROUP, timeout=20)
    assert photo["method"] == "sendPhoto" and photo["has_photo"]
    assert photo["photo_size"] > 10_000
    caption = photo["plain_text"]
    assert caption.startswith(f"📊 Daily summary: {now:%a %Y-%m-%d}, until ")
    assert "Calls: 5 (▲ 5)" in caption
    assert "✅ Answered: 2 (▲ 2) — 40%" in caption
    assert "📞 Still not reached: 3 · got through later: 0" in caption
    assert await service.stop() == 0
    db = service.env["DATABASE_PATH"]
    assert summary_rows(db) == [(f"summary:daily:{now:%Y-%m-%d}:telegram:{GROUP}", "sent")]

    again = await services(**env)  # a restart after the summary went out
    await asyncio.sleep(1.5)  # the start-up tick has long run by now
    assert len(telegram.messages_for(GROUP)) == 1
    assert await again.stop() == 0
    assert len(summary_rows(db)) == 1


async def test_summary_reaches_telegram_and_slack_each_with_the_chart(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    now = datetime.now(KYIV)
    seed(str(tmp_path / "calls.db"), todays_calls(now))
    async with FakeSlack(channels=[CHANNEL]) as slack:
        service = await services(
            **telegram_env(telegram),
            **slack_env(slack),
            SUMMARY_TIME=passed_minute(now),
            SUMMARY_WEEKLY="off",
        )
        [photo] = await telegram.wait_for_messages(1, chat_id=GROUP, timeout=20)
        upload, message = await slack.wait_for_messages(2, channel=CHANNEL, timeout=20)
        assert await service.stop() == 0
    assert photo["has_photo"] and "Calls: 5 (▲ 5)" in photo["plain_text"]
    assert upload["method"] == "files.completeUploadExternal"
    [file_id] = upload["files"]
    assert slack.files[file_id]["data"].startswith(PNG_MAGIC)
    assert slack.files[file_id]["name"] == f"summary-{now:%Y-%m-%d}.png"
    assert message["method"] == "chat.postMessage"
    assert "Calls: 5 (▲ 5)" in message["mrkdwn"]
    keys = [key for key, _ in summary_rows(service.env["DATABASE_PATH"])]
    assert sorted(k.rsplit(":", 2)[1] for k in keys) == ["slack", "telegram"]


async def test_console_summary_writes_the_chart_next_to_the_database(
    services, tmp_path: Path
) -> None:
    now = datetime.now(KYIV)
    seed(str(tmp_path / "calls.db"), todays_calls(now))
    service = await services(SUMMARY_TIME=passed_minute(now), SUMMARY_WEEKLY="off")
    png = tmp_path / f"summary-{now:%Y-%m-%d}.png"
    for _ in range(200):
        if f"chart: {png}" in service.stdout():
            break
        await asyncio.sleep(0.05)
    out = service.stdout()
    assert f"chart: {png}" in out, service.output()
    assert "📊 Підсумок дня:" in out and "Дзвінків: 5 (▲ 5)" in out
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert await service.stop() == 0


async def test_polling_reconciles_before_the_summary(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    """A call whose webhook never came is fetched from RIA before the summary is built."""
    now = datetime.now(KYIV)
    seed(str(tmp_path / "calls.db"), todays_calls(now)[:1])
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    lost = make_call(9200, "ANSWER", when=midnight + (now.replace(tzinfo=None) - midnight) / 2)
    async with FakeRia(api_key=RIA_KEY, user_id=RIA_USER, calls=[lost]) as ria:
        service = await services(
            **telegram_env(telegram),
            RIA_API_KEY=RIA_KEY,
            RIA_USER_ID=RIA_USER,
            RIA_API_URL=ria.url,
            SUMMARY_TIME=passed_minute(now),
            SUMMARY_WEEKLY="off",
            LANGUAGE="en",
        )
        [photo] = await telegram.wait_for_messages(1, chat_id=GROUP, timeout=20)
        assert "Calls: 2 (▲ 2)" in photo["plain_text"]
        assert await service.stop() == 0


async def test_summary_cli_prints_writes_the_chart_and_sends(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    env = base_env(tmp_path, **telegram_env(telegram), LANGUAGE="en")
    seed(env["DATABASE_PATH"], FIXTURE)

    chart = tmp_path / "chart.png"
    code, out, err = await run_cli(env, tmp_path, "summary", "2026-11-25", "--chart", str(chart))
    assert code == 0, err
    assert out.startswith("📊 Daily summary: Wed 2026-11-25\n")
    assert "Calls: 9 (▲ 5) · callers: 7" in out
    assert chart.read_bytes().startswith(PNG_MAGIC)
    assert telegram.messages == []  # a preview sends nothing

    code, out, err = await run_cli(env, tmp_path, "summary", "week")
    assert code == 0, err
    assert out.startswith("📊 Weekly summary: ")

    code, out, err = await run_cli(env, tmp_path, "summary", "2026-13-01")
    assert code == 2 and "is not today, yesterday, week or a date" in err

    code, out, err = await run_cli(env, tmp_path, "summary", "2026-11-25", "--send")
    assert code == 0, out + err
    assert f"✓ telegram:{GROUP}: sent" in out
    [photo] = telegram.messages_for(GROUP)
    assert photo["has_photo"] and "Calls: 9 (▲ 5)" in photo["plain_text"]
    # sent by hand under a key of its own: the scheduled summary still goes out
    [(key, state)] = summary_rows(env["DATABASE_PATH"])
    assert key.startswith("summary:daily:2026-11-25:manual:") and state == "sent"
