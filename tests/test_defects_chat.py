"""Chat text defects (issue 10 items 11-14, issue 15 items 4 and 15): every message kind
within each platform's limits whatever RIA sends, hidden numbers, wording that agrees with
numbers, dotted dates, control characters, rounding half up."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils

from bot import i18n
from bot.delivery.channels.slack import MAX_BLOCKS, SECTION_LIMIT
from bot.delivery.channels.slack import message as slack_message
from bot.delivery.channels.telegram import CAPTION_LIMIT
from bot.delivery.render import alert, coalesced, message_length, reply
from bot.summary import text as summary_text
from bot.summary.build import DAILY, WEEKLY, build
from handlers.chat.commands import MissedReply, StatsReply
from handlers.chat.periods import PeriodError, parse_day, parse_period
from handlers.ria.records import parse_record, parse_records
from storage.calls import Call, ingest
from storage.db import connect
from storage.missed import open_callers
from storage.stats import ManagerLine, PeriodStats, period_stats
from tests.fakes.telegram import parse_html, utf16_len

KYIV = ZoneInfo("Europe/Kyiv")
TELEGRAM_LIMIT = 4096
SLACK_TEXT_LIMIT = SECTION_LIMIT  # what SlackChannel.text_limit gives coalesced()
DAY = date(2026, 11, 25)  # a Wednesday
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=KYIV)
HOSTILE = 5000
LANGS = ("uk", "en")


def hostile_raw(i: int) -> dict[str, Any]:
    """A record whose every string is 5,000 characters, with a status of its own."""
    long = "Ж&<*_`" * (HOSTILE // 6 + 1)
    return {
        "call_id": 10_000 + i,
        "date": f"2026-11-25 {8 + i % 12:02d}:{i % 60:02d}:{i % 7:02d}",
        "status": f"S{i:04d}" + "X" * (HOSTILE - 5),
        "caller_phone": f"{i:04d}" + long[: HOSTILE - 4],
        "destination_phone": f"{i % 40:04d}" + long[: HOSTILE - 4],
        "phone": long[:HOSTILE],
        "waighting": 30,
        "duration": 0,
        "link": "https://x/" + long[:HOSTILE],
        "marka": f"{i % 50}" + long[:HOSTILE],
        "model": long[:HOSTILE],
    }


# the module fixture below is costly: one worker builds it once, not each worker
pytestmark = pytest.mark.xdist_group("hostile_db")


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory: pytest.TempPathFactory) -> sqlite_utils.Database:
    """1,000 calls through the real parser, 1,000 distinct statuses; half of them count
    as missed (so both breakdowns, missed and other, hold 500 statuses)."""
    raws = [hostile_raw(i) for i in range(1000)]
    calls, bad = parse_records(raws, KYIV)
    assert not bad
    db = connect(Path(tmp_path_factory.mktemp("hostile")) / "h.db")
    ingest(
        db,
        calls,
        source="webhook",
        received_at=NOW.timestamp(),
        missed_statuses={c.status for c in calls[::2]},
        targets=[],
        alert_max_age_s=None,
    )
    return db


def hostile_calls() -> list[Call]:
    return [parse_record(hostile_raw(i), KYIV) for i in range(1000)]


def check_telegram(text: str, *, caption: bool = False) -> None:
    """Valid HTML whose text is within Telegram's limit, counted as Telegram counts it (after
    parsing the entities, in UTF-16 units); escaping may make the markup itself longer."""
    parsed, _ = parse_html(text)
    assert utf16_len(parsed) <= TELEGRAM_LIMIT, utf16_len(parsed)
    if caption:
        # bot/delivery/channels/telegram: the whole text as the caption, else its first line
        first = text if message_length(text) <= CAPTION_LIMIT else text.split("\n", 1)[0]
        assert message_length(first) <= CAPTION_LIMIT


def check_slack(mrkdwn: str, limit: int = SECTION_LIMIT * MAX_BLOCKS) -> None:
    assert len(mrkdwn) <= limit, len(mrkdwn)
    blocks = slack_message(mrkdwn)["blocks"]
    assert 1 <= len(blocks) <= MAX_BLOCKS
    texts = [b["text"]["text"] for b in blocks]
    assert all(len(t) <= SECTION_LIMIT for t in texts)
    assert "\n".join(texts) == mrkdwn  # nothing cut to fit


# ---- item 11: every message kind within the limits --------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_alerts_with_hostile_records_fit(lang: str) -> None:
    calls = hostile_calls()
    for call in calls[:20]:
        check_telegram(alert(call, "html", lang, KYIV, now=NOW))
        check_slack(alert(call, "mrkdwn", lang, KYIV, now=NOW), SLACK_TEXT_LIMIT)
        assert len(alert(call, "text", lang, KYIV, now=NOW)) < 1000
    for part in coalesced(calls, "html", lang, KYIV, TELEGRAM_LIMIT, now=NOW):
        check_telegram(part)
    for part in coalesced(calls, "mrkdwn", lang, KYIV, SLACK_TEXT_LIMIT, now=NOW):
        check_slack(part, SLACK_TEXT_LIMIT)


@pytest.mark.parametrize("lang", LANGS)
def test_stats_and_missed_with_hostile_records_fit(
    hostile_db: sqlite_utils.Database, lang: str
) -> None:
    period = parse_period("2026-11-25", now=NOW, tz=KYIV)
    stats = period_stats(hostile_db, period.start, period.end, top=5)
    assert len(stats.missed_by_status) == 500 and stats.other == 500
    report = open_callers(hostile_db, period.start, period.end, limit=30)  # what /missed asks
    assert report.waiting == 500
    for r in (StatsReply(period, stats), MissedReply(period, report.callers, report.waiting, 0)):
        check_telegram(reply(r, "html", lang, KYIV))
        check_slack(reply(r, "mrkdwn", lang, KYIV))
    text = reply(StatsReply(period, stats), "text", lang, KYIV)
    assert "S0000" in text and "S0999" not in text  # the biggest shown, the rest summed
    assert i18n.t(lang, "statuses_more", count=494) in text  # 500 missed statuses, 6 shown


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("kind", [DAILY, WEEKLY])
def test_summaries_with_hostile_records_fit(
    hostile_db: sqlite_utils.Database, kind: str, lang: str
) -> None:
    s = build(hostile_db, kind, DAY, KYIV, now=NOW.timestamp())
    assert s.stats.total == 1000
    check_telegram(summary_text.text(s, "html", lang, KYIV), caption=True)
    check_slack(summary_text.text(s, "mrkdwn", lang, KYIV))


# ---- item 12: a withheld number, an unknown wait ----------------------------------------


@pytest.mark.parametrize(("lang", "hidden"), [("uk", "номер приховано"), ("en", "number hidden")])
def test_call_without_number_or_wait(lang: str, hidden: str) -> None:
    call = parse_record({"call_id": 7, "date": "2026-11-27 10:00:00", "status": "NOANSWER"}, KYIV)
    for fmt in ("html", "mrkdwn", "text"):
        text = alert(call, fmt, lang, KYIV, now=NOW)
        assert f"📞 {hidden}" in text
        assert i18n.t(lang, "waited", duration="").strip() not in text  # no "waited 0 s"
        assert " 0 с" not in text and " 0 s" not in text
        [line] = coalesced([call], fmt, lang, KYIV, now=NOW)
        assert hidden in line
    known = parse_record({"call_id": 8, "date": "2026-11-27 10:00:00", "waighting": 42}, KYIV)
    assert i18n.t(lang, "waited", duration=i18n.duration(lang, 42)) in alert(
        known, "text", lang, KYIV, now=NOW
    )


# ---- item 13: Ukrainian that agrees with numbers ----------------------------------------


def test_breakdown_agrees_with_any_number() -> None:
    period = parse_period("2026-11-25", now=NOW, tz=KYIV)
    stats = PeriodStats(
        total=9,
        answered=1,
        missed=7,
        by_status={"ANSWER": 1, "NOANSWER": 3, "CANCEL": 2, "BUSY": 2, "FAILED": 1},
        missed_by_status={"NOANSWER": 3, "CANCEL": 2, "BUSY": 2},
        answer_rate=1 / 9,
        avg_wait_s=10,
        avg_talk_s=60,
        unique_callers=5,
        managers=[ManagerLine("0501000001", 9, 1, 7)],
    )
    uk = reply(StatsReply(period, stats), "text", "uk", KYIV)
    assert "🔴 Пропущено: 7 — без відповіді: 3, скасовано: 2, зайнято: 2" in uk
    assert "⚪ Інші: 1 — зі збоєм: 1" in uk
    assert "⏱ У середньому: очікування 10 с · розмова 1 хв 00 с" in uk
    assert "скасований" not in uk
    en = reply(StatsReply(period, stats), "text", "en", KYIV)
    assert "🔴 Missed: 7 — no answer: 3, caller hung up: 2, busy: 2" in en
    # one call: a whole clause, the same tense as English
    assert i18n.status_name("uk", "CANCEL") == "клієнт поклав слухавку"
    assert i18n.t("uk", "summary_compared", period="x") == "У дужках — порівняно з x"
    assert "зміна проти" not in " ".join(i18n.MESSAGES["uk"].values())


# ---- item 14: dates as the bot prints them ------------------------------------------------


def test_dotted_dates_are_accepted() -> None:
    day = parse_period("31.07.2026", now=NOW, tz=KYIV)
    assert (day.key, day.first_day, day.last_day) == ("2026-07-31", date(2026, 7, 31), day.last_day)
    assert day.last_day == date(2026, 7, 31)
    span = parse_period("01.11.2026..25.11.2026", now=NOW, tz=KYIV)
    assert (span.first_day, span.last_day) == (date(2026, 11, 1), date(2026, 11, 25))
    mixed = parse_period("2026-11-01 .. 25.11.2026", now=NOW, tz=KYIV)
    assert (mixed.first_day, mixed.last_day) == (date(2026, 11, 1), date(2026, 11, 25))
    # what the bot prints in Ukrainian comes back in as the same day
    assert parse_day(i18n.day("uk", date(2021, 7, 31))) == date(2021, 7, 31)
    assert parse_day(" 2021-07-31 ") == date(2021, 7, 31)
    for text, key in [
        ("31.02.2026", "bad_date"),
        ("31.07.26", "bad_period"),
        ("7/31", "bad_period"),
    ]:
        with pytest.raises(PeriodError) as caught:
            parse_period(text, now=NOW, tz=KYIV)
        assert caught.value.key == key
    with pytest.raises(ValueError, match="no such date"):
        parse_day("30.02.2026")
    with pytest.raises(ValueError, match=r"DD\.MM\.YYYY"):
        parse_day("yesterday")


# ---- issue 15 item 4: terminal control characters -----------------------------------------


def test_control_characters_are_stripped_at_parse_time() -> None:
    osc_title = "\x1b]0;pwned\x07"
    clear = "\x1b[2J\x1b[H"
    call = parse_record(
        {
            "call_id": 1,
            "date": "2026-11-27 10:00:00",
            "status": "NO\x07ANSWER\x1b[0m\x9b",
            "caller_phone": f"{clear}0951174074",
            "destination_phone": "050\x00111\x7f2233",
            "marka": f"Toyota{osc_title}",
            "model": "Cam\u0085ry\tXLE\r\n",
            "link": f"https://x/{osc_title}",
        },
        KYIV,
    )
    assert call.status == "NOANSWER"
    assert call.caller_e164 == "+380951174074" and call.caller_phone == "0951174074"
    assert call.destination_phone == "0501112233"
    assert call.marka == "Toyota" and call.model == "Cam ry XLE"
    assert call.link == "https://x/"
    for text in (alert(call, fmt, "en", KYIV, now=NOW) for fmt in ("html", "mrkdwn", "text")):
        assert text.isprintable() or all(c.isprintable() or c == "\n" for c in text)
    blank = parse_record({"call_id": 2, "date": "2026-11-27 10:00:00", "marka": "\x1b\x07"}, KYIV)
    assert blank.marka is None and blank.car is None


# ---- issue 15 item 15: half up, one helper ------------------------------------------------


def test_rounding_half_up() -> None:
    assert i18n.percent(1 / 8) == "13%" and i18n.percent(0.145) == "15%"
    assert i18n.percent(None) == "—" and i18n.percent(2 / 3) == "67%"
    assert i18n.duration("en", 42.5) == "43 s" and i18n.duration("uk", 42.4) == "42 с"
    assert i18n.round_half_up(-2.5) == -3 and i18n.round_half_up(0.5) == 1
    period = parse_period("2026-11-25", now=NOW, tz=KYIV)
    stats = PeriodStats(8, 1, 7, {"ANSWER": 1, "BUSY": 7}, {"BUSY": 7}, 1 / 8, 42.5, 42.5, 8)
    text = reply(StatsReply(period, stats), "text", "en", KYIV)
    assert "✅ Answered: 1 (13%)" in text and "Average wait: 43 s · talk: 43 s" in text
    assert summary_text.rate_delta(0.5, 0.375, "en") == " (▲ 13 pp)"
    assert summary_text.time_delta(42.5, 40, "en") == " (▲ 3 s)"
