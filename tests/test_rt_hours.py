"""Working hours end to end (issue 13): the service started by the CLI with a routing file
and an injected clock (RIA_CALLS_BOT_TEST_CLOCK, bot/clock.py), across a closing and an
opening: `silent` (Telegram disable_notification as the fake sees it), `digest` (one
message at the opening, a callback button per caller), each route by its own hours, and
reminders counting the open time of the hours the alert was routed by."""

from __future__ import annotations

import os
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from tests.conftest import GROUP, telegram_env
from tests.fakes.ria import make_call
from tests.fakes.telegram import FakeTelegram
from tests.reliability import db_rows, settled, until
from tests.test_cb_store import KYIV

TOYOTA_CHAT = "-100111"  # a route with its own hours 11:00-12:00, digest
BMW_CHAT = "-100222"  # a route with its own hours 10:00-12:00, silent

HOURS = f"""\
[hours]
mon-fri = "09:00-19:00"
after_hours = "digest"

[[route]]
match = {{ make = "Toyota" }}
telegram = ["{TOYOTA_CHAT}"]
hours = {{ mon-sun = "11:00-12:00", after_hours = "digest" }}

[[route]]
match = {{ make = "BMW" }}
telegram = ["{BMW_CHAT}"]
hours = {{ mon-sun = "10:00-12:00", after_hours = "silent" }}
"""


def kyiv(day: int, hhmm: str) -> datetime:
    """A moment of the week starting Monday 30 November 2026, Kyiv time."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    return datetime.combine(date(2026, 11, 30) + timedelta(days=day), time(hour, minute), KYIV)


def set_clock(path: Path, moment: datetime) -> None:
    """Move the service's clock (atomically: it may read the file at any moment)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(moment.timestamp()))
    os.replace(tmp, path)


async def clock_at(service: Any, path: Path, moment: datetime, reminders: bool = False) -> None:
    """Move the clock and wait until the service has seen it (and, with `reminders`, until
    its reminder check at the new time has queued whatever is due)."""
    set_clock(path, moment)
    line = "test clock: reminders checked at" if reminders else "test clock: now"
    await until(
        lambda: any(
            line in text and float(text.split(line)[1].split()[0].rstrip(":")) >= moment.timestamp()
            for text in service.output().splitlines()
        ),
        10,
        f"the service saw the clock move to {moment}",
    )


def sent(telegram: FakeTelegram, chat: str) -> list[dict[str, Any]]:
    return [m for m in telegram.messages_for(chat) if m["method"] == "sendMessage"]


def silent(message: dict[str, Any]) -> bool:
    return str(message["params"].get("disable_notification", "")).lower() == "true"


def buttons(message: dict[str, Any]) -> list[str]:
    rows = (message["reply_markup"] or {}).get("inline_keyboard", [])
    return [button["text"] for row in rows for button in row]


def pending(db: Path) -> list[int]:
    rows = db_rows(db, "SELECT call_id FROM outbox WHERE state = 'pending' ORDER BY call_id")
    return [call_id for (call_id,) in rows]


async def test_silent_and_digest_by_each_routes_hours_across_closing_and_opening(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    (tmp_path / "ria-calls-bot.toml").write_text(HOURS)
    clock = tmp_path / "clock"
    set_clock(clock, kyiv(0, "18:58"))  # Monday, two minutes before the global closing
    service = await services(
        LANGUAGE="en",
        CALLBACK_WITHIN_MINUTES="0",  # the reminders have a test of their own below
        RIA_CALLS_BOT_TEST_CLOCK=str(clock),
        **telegram_env(telegram),
    )
    db = tmp_path / "calls.db"

    # open (global hours): the default chat gets it with sound; the BMW route is closed by
    # its own hours (silent), the Toyota route too (held for its own opening)
    calls = [
        make_call(1, caller="0951111111", marka="Honda", when=kyiv(0, "18:57")),
        make_call(2, caller="0952222222", marka="BMW", when=kyiv(0, "18:57")),
        make_call(3, caller="0953333333", marka="Toyota", when=kyiv(0, "18:57")),
    ]
    assert (await service.post(service.webhook_url, json=calls))[0] == 200
    await telegram.wait_for_messages(1, chat_id=GROUP, timeout=15)
    await telegram.wait_for_messages(1, chat_id=BMW_CHAT, timeout=15)
    assert not silent(sent(telegram, GROUP)[0])
    assert silent(sent(telegram, BMW_CHAT)[0])

    # after the closing: the default chat's alerts are held for the digest
    await clock_at(service, clock, kyiv(0, "19:30"))
    calls = [
        make_call(4, caller="0954444444", marka="Honda", when=kyiv(0, "19:29")),
        make_call(5, caller="0955555555", marka="Honda", when=kyiv(0, "19:29")),
        make_call(6, caller="0956666666", marka="BMW", when=kyiv(0, "19:29")),
    ]
    assert (await service.post(service.webhook_url, json=calls))[0] == 200
    await telegram.wait_for_messages(2, chat_id=BMW_CHAT, timeout=15)
    assert silent(sent(telegram, BMW_CHAT)[1])
    await until(lambda: pending(db) == [3, 4, 5], 10, "calls 3, 4, 5 held")
    assert len(sent(telegram, GROUP)) == 1 and sent(telegram, TOYOTA_CHAT) == []

    # Tuesday 09:00, the global opening: one message for the default chat, a button per
    # caller; the Toyota route's own hours open at 11:00, so its alert still waits
    await clock_at(service, clock, kyiv(1, "09:00"))
    await telegram.wait_for_messages(2, chat_id=GROUP, timeout=15)
    digest = sent(telegram, GROUP)[1]
    assert digest["plain_text"].startswith("🌙 While you were closed: 2 missed callers"), digest
    assert [b[:1] for b in buttons(digest)] == ["✅", "✅"], buttons(digest)
    assert "4444" in " ".join(buttons(digest)) and "5555" in " ".join(buttons(digest))
    assert not silent(digest)
    await until(lambda: pending(db) == [3], 10, "only the Toyota route's alert waits")
    assert sent(telegram, TOYOTA_CHAT) == []

    # 11:00, the Toyota route opens: its own digest, of one caller
    await clock_at(service, clock, kyiv(1, "11:00"))
    await telegram.wait_for_messages(1, chat_id=TOYOTA_CHAT, timeout=15)
    digest = sent(telegram, TOYOTA_CHAT)[0]
    assert digest["plain_text"].startswith("🌙 While you were closed: 1 missed callers"), digest
    assert len(buttons(digest)) == 1 and "3333" in buttons(digest)[0]
    await settled(db, telegram)
    assert len(sent(telegram, GROUP)) == 2 and len(sent(telegram, BMW_CHAT)) == 2
    assert await service.stop() == 0


REMINDER_HOURS = f"""\
[hours]
mon-fri = "09:00-19:00"

[[route]]
match = {{ make = "BMW" }}
telegram = ["{BMW_CHAT}"]
hours = {{ mon-sun = "11:00-12:00" }}
"""


def reminders(telegram: FakeTelegram, chat: str) -> list[dict[str, Any]]:
    return [m for m in sent(telegram, chat) if str(m["plain_text"]).startswith("⏰")]


async def test_reminders_count_the_open_time_of_the_routes_own_hours(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    (tmp_path / "ria-calls-bot.toml").write_text(REMINDER_HOURS)
    clock = tmp_path / "clock"
    set_clock(clock, kyiv(0, "18:55"))
    service = await services(
        LANGUAGE="en",
        CALLBACK_WITHIN_MINUTES="15",
        RIA_CALLS_BOT_TEST_CLOCK=str(clock),
        **telegram_env(telegram),
    )
    db = tmp_path / "calls.db"
    calls = [
        make_call(1, caller="0951111111", marka="Honda", when=kyiv(0, "18:55")),
        make_call(2, caller="0952222222", marka="BMW", when=kyiv(0, "18:55")),
    ]
    assert (await service.post(service.webhook_url, json=calls))[0] == 200
    await telegram.wait_for_messages(1, chat_id=GROUP, timeout=15)
    await telegram.wait_for_messages(1, chat_id=BMW_CHAT, timeout=15)

    # Tuesday 09:05: 5 + 5 open minutes of the global hours: not yet (by the wall clock it
    # is 14 hours); 09:11: the default chat's reminder. The BMW route's own hours
    # (11:00-12:00) have had no open minute yet.
    await clock_at(service, clock, kyiv(1, "09:05"), reminders=True)
    await settled(db, telegram)
    assert reminders(telegram, GROUP) == []
    await clock_at(service, clock, kyiv(1, "09:11"), reminders=True)
    await until(lambda: len(reminders(telegram, GROUP)) == 1, 15, "the default chat's reminder")
    await settled(db, telegram)
    assert reminders(telegram, BMW_CHAT) == []

    # 11:16 is 16 open minutes of the route's own hours: now its reminder
    await clock_at(service, clock, kyiv(1, "11:16"), reminders=True)
    await until(lambda: len(reminders(telegram, BMW_CHAT)) == 1, 15, "the route's reminder")
    await settled(db, telegram)
    assert len(reminders(telegram, GROUP)) == 1
    assert await service.stop() == 0
