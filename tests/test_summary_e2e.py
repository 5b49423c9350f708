"""Summaries end to end: `ria-calls-bot run` with SUMMARY_TIME set to a minute that has just
passed (the catch-up path: the service "was down" at that time), against the fake Telegram
and RIA servers; and the `summary` CLI."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from bot.summary.schedule import EARLY_SUMMARY
from storage.calls import Call
from storage.db import connect
from tests.conftest import GROUP, RIA_KEY, RIA_USER, telegram_env
from tests.fakes.ria import KYIV, FakeRia, make_call
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram
from tests.reliability import settled
from tests.service import base_env, run_cli
from tests.test_slack_e2e import CHANNEL, slack_env
from tests.test_summary import FIXTURE, call, load

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PRIVATE = "42"


@dataclass(frozen=True)
class Window:
    """What a summary due by `now` reports, whatever the time the test runs at: from 06:00
    (EARLY_SUMMARY) on, today until a minute that has just passed; before it, a SUMMARY_TIME
    reports the day that has just ended, so then 00:00 and all of yesterday."""

    summary_time: str
    day: date
    start: datetime  # the calls to report are between these
    end: datetime
    partial: bool  # the caption says "until HH:MM"


def window(now: datetime) -> Window:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    earlier = now - timedelta(minutes=1)
    if earlier.date() == now.date() and earlier.time() >= EARLY_SUMMARY:
        return Window(f"{earlier:%H:%M}", now.date(), midnight, now, partial=True)
    yesterday = (midnight - timedelta(hours=12)).replace(hour=0)  # a DST-safe day before
    return Window("00:00", yesterday.date(), yesterday, midnight, partial=False)


async def steady_now() -> datetime:
    """Now in Kyiv, but not in the 90 s before midnight or 06:01, where the day or the
    window reported could change while the service starts: wait those out (rarely)."""
    while True:
        now = datetime.now(KYIV)
        soon = now + timedelta(seconds=90)
        if window(soon).day == window(now).day and window(soon).partial == window(now).partial:
            return now
        await asyncio.sleep(5)


def passed_minute(now: datetime) -> str:
    """A SUMMARY_TIME that has already passed (see `window`)."""
    return window(now).summary_time


def todays_calls(now: datetime) -> list[Call]:
    """Five calls spread over the reported day before `now`: 2 answered, 3 missed."""
    w = window(now)
    statuses = ["ANSWER", "NOANSWER", "ANSWER", "BUSY", "CANCEL"]
    return [
        call(
            9100 + i,
            w.start + (w.end - w.start - timedelta(seconds=5)) * (i + 1) / 6,
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
    now = await steady_now()
    seed(str(tmp_path / "calls.db"), todays_calls(now))
    env = {
        **telegram_env(telegram),
        "SUMMARY_TIME": passed_minute(now),
        "SUMMARY_WEEKLY": "off",
        "LANGUAGE": "en",
    }
    service = await services(**env)
    # the chart captioned with the title, then the whole text as a message of its own
    photo, message = await telegram.wait_for_messages(2, chat_id=GROUP, timeout=20)
    assert photo["method"] == "sendPhoto" and photo["has_photo"]
    assert photo["photo_size"] > 10_000
    assert message["method"] == "sendMessage"
    text = message["plain_text"]
    day = window(now).day
    first_line = text.splitlines()[0]
    assert photo["plain_text"] == first_line
    assert first_line.startswith(f"📊 Daily summary: {day:%a %Y-%m-%d}"), text
    assert (", until " in first_line) == window(now).partial, text
    assert "Calls: 5 (▲ 5)" in text
    assert "✅ Answered: 2 (▲ 2) — 40%" in text
    assert "📞 Still not reached: 3 · got through later: 0" in text
    # the callback figures (issue 12): nobody pressed or got through, all 3 still wait
    assert "Called back: 0 of 3" in text and "still waiting: 3" in text, text
    assert await service.stop() == 0
    db = service.env["DATABASE_PATH"]
    assert summary_rows(db) == [(f"summary:daily:{day:%Y-%m-%d}:telegram:{GROUP}", "sent")]

    # a restart after the summary went out, with a chat added: the start-up tick queues the
    # summary for the new chat only, which is the signal that it has run
    again = await services(**{**env, **telegram_env(telegram, chats=f"{GROUP},{PRIVATE}")})
    await telegram.wait_for_messages(2, chat_id=PRIVATE, timeout=20)
    await settled(db, telegram)
    assert len(telegram.messages_for(GROUP)) == 2
    assert await again.stop() == 0
    assert [key.rsplit(":", 1)[1] for key, _ in summary_rows(db)] == [GROUP, PRIVATE]


async def test_summary_reaches_telegram_and_slack_each_with_the_chart(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    now = await steady_now()
    seed(str(tmp_path / "calls.db"), todays_calls(now))
    async with FakeSlack(channels=[CHANNEL]) as slack:
        service = await services(
            **telegram_env(telegram),
            **slack_env(slack),
            SUMMARY_TIME=passed_minute(now),
            SUMMARY_WEEKLY="off",
        )
        photo, text = await telegram.wait_for_messages(2, chat_id=GROUP, timeout=20)
        upload, message = await slack.wait_for_messages(2, channel=CHANNEL, timeout=20)
        assert await service.stop() == 0
    # the same shape in both: the chart, then the text as a message of its own
    assert photo["has_photo"] and "Calls" not in photo["plain_text"]
    assert text["method"] == "sendMessage" and "Calls: 5 (▲ 5)" in text["plain_text"]
    assert upload["method"] == "files.completeUploadExternal"
    [file_id] = upload["files"]
    assert slack.files[file_id]["data"].startswith(PNG_MAGIC)
    assert slack.files[file_id]["name"] == f"summary-{window(now).day:%Y-%m-%d}.png"
    assert message["method"] == "chat.postMessage"
    assert "Calls: 5 (▲ 5)" in message["mrkdwn"]
    keys = [key for key, _ in summary_rows(service.env["DATABASE_PATH"])]
    assert sorted(k.rsplit(":", 2)[1] for k in keys) == ["slack", "telegram"]


async def test_console_summary_writes_the_chart_next_to_the_database(
    services, tmp_path: Path
) -> None:
    now = await steady_now()
    seed(str(tmp_path / "calls.db"), todays_calls(now))
    service = await services(SUMMARY_TIME=passed_minute(now), SUMMARY_WEEKLY="off")
    png = tmp_path / f"summary-{window(now).day:%Y-%m-%d}.png"
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
    now = await steady_now()
    seed(str(tmp_path / "calls.db"), todays_calls(now)[:1])
    w = window(now)
    lost = make_call(9200, "ANSWER", when=(w.start + (w.end - w.start) / 2).replace(tzinfo=None))
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
        _, message = await telegram.wait_for_messages(2, chat_id=GROUP, timeout=20)
        assert "Calls: 2 (▲ 2)" in message["plain_text"]
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
    out_text = out.rstrip("\n")
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
    photo, message = telegram.messages_for(GROUP)
    assert photo["has_photo"] and photo["plain_text"] == "📊 Daily summary: Wed 2026-11-25"
    assert "Calls: 9 (▲ 5)" in message["plain_text"]
    assert message["plain_text"] == out_text  # what the preview printed
    # sent by hand under a key of its own: the scheduled summary still goes out
    [(key, state)] = summary_rows(env["DATABASE_PATH"])
    assert key.startswith("summary:daily:2026-11-25:manual:") and state == "sent"


async def test_summary_cli_on_an_empty_day_and_bad_days(tmp_path: Path) -> None:
    """`summary yesterday --chart`: the text, and no chart for a day without calls; a day in
    the future or one that does not exist is a usage error (2) that says why."""
    env = base_env(tmp_path, LANGUAGE="en")
    seed(env["DATABASE_PATH"], [])  # a database with no calls in it
    chart = tmp_path / "chart.png"
    code, out, err = await run_cli(env, tmp_path, "summary", "yesterday", "--chart", str(chart))
    assert code == 0, err
    assert out.startswith("📊 Daily summary: ") and "no calls: no chart drawn" in err
    assert not chart.exists()
    code, _, err = await run_cli(env, tmp_path, "summary", "2999-01-01")
    assert code == 2 and "is in the future" in err, err
    code, _, err = await run_cli(env, tmp_path, "summary", "31.02.2026")
    assert code == 2 and "there is no such date" in err, err
    assert "Traceback" not in err
