"""bot/summary + bot/summary_text against a hand-computed fixture day, and the calendar.

The fixture day is Wednesday 2026-11-25 in Kyiv, compared with Wednesday 2026-11-18. Every
expected figure is worked out by hand in the comments, not by running the code under test.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils

from bot.summary import text as summary_text
from bot.summary.build import (
    DAILY,
    WEEKLY,
    Bucket,
    ClockChange,
    build,
    payload,
    payload_image,
    period_for,
    week_earlier,
)
from bot.summary.text import count_delta, rate_delta, text, time_delta
from storage.calls import Call, ingest
from storage.db import connect
from storage.outbox import OutboxItem, Target
from storage.summary import existing_keys, slots
from tests.fakes.telegram import parse_html

KYIV = ZoneInfo("Europe/Kyiv")
MISSED = ("NOANSWER", "CANCEL", "BUSY")
A, B, C, D = "0951110001", "0951110002", "0951110003", "0951110004"
E, F, G, H = "0951110005", "0951110006", "0951110007", "0951110008"
M1, M2, M3 = "0501000001", "0501000002", "0501000003"


def call(
    call_id: int,
    when: str | datetime,  # local "YYYY-MM-DD HH:MM:SS", or an aware instant
    status: str,
    caller: str = A,
    manager: str = M1,
    waiting: int = 0,
    duration: int = 0,
    marka: str | None = None,
    model: str | None = None,
) -> Call:
    moment = (
        when.astimezone(KYIV)
        if isinstance(when, datetime)
        else datetime.fromisoformat(when).replace(tzinfo=KYIV)
    )
    return Call(
        call_id=call_id,
        started_at=int(moment.timestamp()),
        local_date=moment.replace(tzinfo=None).isoformat(timespec="seconds"),
        status=status,
        caller_phone=caller,
        caller_e164="+380" + caller[1:],
        destination_phone=manager,
        phone="0930000000",
        duration=duration,
        waiting=waiting,
        marka=marka,
        model=model,
        raw={"call_id": call_id},
    )


DAY = "2026-11-25"
BEFORE = "2026-11-18"
FIXTURE = [
    # id, local time, status, caller, manager, waiting, duration, make, model
    call(1, f"{DAY} 09:05:00", "ANSWER", A, M1, 10, 120, "Toyota", "Camry"),
    call(2, f"{DAY} 09:40:00", "NOANSWER", B, M1, 30, 0, "Toyota", "Camry"),
    call(3, f"{DAY} 10:15:00", "CANCEL", C, M2, 6, 0, "BMW", "X5"),
    call(4, f"{DAY} 10:50:00", "ANSWER", B, M2, 8, 300, "Toyota", "Camry"),  # B got through
    call(5, f"{DAY} 14:20:00", "BUSY", D, M1, 0),
    call(6, f"{DAY} 14:45:00", "NOANSWER", D, M1, 40, 0, "Skoda"),
    call(7, f"{DAY} 16:00:00", "FAILED", E, M2, 2),
    call(8, f"{DAY} 19:30:00", "ANSWER", F, M1, 12, 60, "BMW", "X5"),
    call(9, f"{DAY} 23:10:00", "NOANSWER", G, M3, 20, 0, "Skoda", "Octavia"),
    # a week before
    call(21, f"{BEFORE} 09:00:00", "ANSWER", H, M1, 20, 100),
    call(22, f"{BEFORE} 11:00:00", "ANSWER", H, M1, 10, 200),
    call(23, f"{BEFORE} 12:00:00", "NOANSWER", A, M2, 30),
    call(24, f"{BEFORE} 21:00:00", "ANSWER", B, M2, 4, 90),  # after 20:00
    # just outside the day
    call(31, "2026-11-24 23:59:59", "NOANSWER", H, M1, 9),
    call(32, "2026-11-26 00:00:00", "NOANSWER", C, M2, 9),
]
AFTER_THE_DAY = datetime(2026, 11, 27, 12, 0, tzinfo=KYIV).timestamp()
AT_20 = datetime(2026, 11, 25, 20, 0, tzinfo=KYIV).timestamp()


def load(db: sqlite_utils.Database, calls: list[Call]) -> None:
    ingest(
        db,
        calls,
        source="webhook",
        received_at=2_000_000_000.0,
        missed_statuses=MISSED,
        targets=[],
        alert_max_age_s=None,
    )


@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    db = connect(tmp_path / "t.db")
    load(db, FIXTURE)
    return db


# ---- the fixture day ------------------------------------------------------------------------


def test_whole_day_figures(db: sqlite_utils.Database) -> None:
    s = build(db, DAILY, date(2026, 11, 25), KYIV, now=AFTER_THE_DAY)
    assert s.complete
    assert s.key == "daily:2026-11-25"
    assert s.filename == "summary-2026-11-25.png"
    st = s.stats
    assert (st.total, st.answered, st.missed, st.other) == (9, 3, 5, 1)
    assert st.missed_by_status == {"NOANSWER": 3, "BUSY": 1, "CANCEL": 1}
    assert st.answer_rate == pytest.approx(3 / 9)
    # 10+30+6+8+0+40+2+12+20 = 128
    assert st.avg_wait_s == pytest.approx(128 / 9)
    assert st.avg_talk_s == pytest.approx((120 + 300 + 60) / 3)
    assert st.unique_callers == 7
    assert [(m.destination_phone, m.total, m.answered, m.missed) for m in st.managers] == [
        (M1, 5, 2, 3),  # 1 2 5 6 8
        (M2, 3, 1, 1),  # 3 4 7
        (M3, 1, 0, 1),  # 9
    ]
    assert st.top_cars == [("Toyota Camry", 3), ("BMW X5", 2), ("Skoda", 1), ("Skoda Octavia", 1)]
    # C, D (twice) and G still wait; B got through at 10:50
    assert (s.missed.waiting, s.missed.reached) == (3, 1)
    assert [c.caller_e164 for c in s.missed.callers] == [
        "+380951110007",  # G, 23:10
        "+380951110004",  # D, last at 14:45
        "+380951110003",  # C, 10:15
    ]
    assert s.missed.callers[1].attempts == 2
    # a week before, the whole day: 4 calls, 3 answered, 1 missed
    b = s.before
    assert (b.total, b.answered, b.missed) == (4, 3, 1)
    assert b.avg_wait_s == pytest.approx(16)  # (20+10+30+4)/4
    assert b.avg_talk_s == pytest.approx(130)  # (100+200+90)/3
    hours = {h: bucket for h, bucket in enumerate(s.hours) if bucket.total}
    assert hours == {
        9: Bucket(2, 1, 1),
        10: Bucket(2, 1, 1),
        14: Bucket(2, 0, 2),
        16: Bucket(1, 0, 0),
        19: Bucket(1, 1, 0),
        23: Bucket(1, 0, 1),
    }
    assert hours[16].other == 1
    assert s.busiest() == [(9, Bucket(2, 1, 1)), (10, Bucket(2, 1, 1)), (14, Bucket(2, 0, 2))]
    assert s.days == ((date(2026, 11, 25), Bucket(9, 3, 5)),)
    assert s.clock_changes == ()


def test_whole_day_text_uk(db: sqlite_utils.Database) -> None:
    s = build(db, DAILY, date(2026, 11, 25), KYIV, now=AFTER_THE_DAY)
    lines = text(s, "text", "uk", KYIV).splitlines()
    assert lines[:7] == [
        "📊 Підсумок дня: ср 25.11.2026",
        "У дужках — порівняно з ср 18.11.2026",
        "Дзвінків: 9 (▲ 5) · абонентів: 7",
        # 3/9 = 33 %, 3/4 = 75 %: -41.7 points
        "✅ Відповіли: 3 (=) — 33% (▼ 42 в. п.)",
        "🔴 Пропущено: 5 (▲ 4) — без відповіді: 3, зайнято: 1, скасовано: 1",
        "⚪ Інші: 1 — зі збоєм: 1",
        # wait 14.2 s against 16 s; talk 160 s against 130 s
        "⏱ У середньому: очікування 14 с (▼ 2 с) · розмова 2 хв 40 с (▲ 30 с)",
    ]
    assert lines[7:11] == [
        "📞 Досі не додзвонилися: 3 · додзвонилися пізніше: 1",
        "1. +380951110007 · 23:10 · спроб: 1 · не відповіли · Skoda Octavia",
        "2. +380951110004 · 14:45 · спроб: 2 · не відповіли · Skoda",
        "3. +380951110003 · 10:15 · спроб: 1 · клієнт поклав слухавку · BMW X5",
    ]
    assert lines[11:15] == [
        "👤 Менеджери:",
        "+380 50 100 0001: 5 · ✅ 2 · 🔴 3",
        "+380 50 100 0002: 3 · ✅ 1 · 🔴 1",
        "+380 50 100 0003: 1 · ✅ 0 · 🔴 1",
    ]
    assert lines[15:20] == [
        "🚗 Найчастіше питали:",
        "Toyota Camry: 3",
        "BMW X5: 2",
        "Skoda: 1",
        "Skoda Octavia: 1",
    ]
    assert lines[20:] == [
        "🕐 Найбільше дзвінків: 09:00–10:00 (2), 10:00–11:00 (2), 14:00–15:00 (2)"
    ]


def test_whole_day_text_with_the_callback_figures(db: sqlite_utils.Database) -> None:
    """Issue 12: with the promise (15 min) the summary adds the callback figures, after the
    waiting list. By hand: 4 missed callers (B, C, D, G); B got through at 10:50, 70 min
    after the 09:40 miss (resolved by the answered call 4); nobody within 15 min; C, D and G
    still wait. Per manager of the missed calls: M1 had B and D, M2 C, M3 G."""
    s = build(db, DAILY, date(2026, 11, 25), KYIV, now=AFTER_THE_DAY, within_s=900)
    lines = text(s, "text", "en", KYIV).splitlines()
    assert lines[7] == "📞 Still not reached: 3 · got through later: 1"
    assert lines[11:15] == [
        "Called back: 1 of 4 (25%) · within 15 min: 0% · median: 1 h 10 min · still waiting: 3",
        "   +380 50 100 0001: called back 1 of 2 (50%), within the promise 0%, median 1 h 10 min,"
        " waiting 1",
        "   +380 50 100 0002: called back 0 of 1 (0%), within the promise 0%, median —, waiting 1",
        "   +380 50 100 0003: called back 0 of 1 (0%), within the promise 0%, median —, waiting 1",
    ]
    assert lines[15] == "👤 Managers:"
    # without the promise (build's default) the summary is as before: no such lines
    plain = text(build(db, DAILY, date(2026, 11, 25), KYIV, now=AFTER_THE_DAY), "text", "en", KYIV)
    assert "Called back" not in plain


def test_until_summary_time_compares_the_same_window(db: sqlite_utils.Database) -> None:
    """At 20:00 the day so far is held against the week-earlier day up to 20:00."""
    s = build(db, DAILY, date(2026, 11, 25), KYIV, now=AT_20)
    assert not s.complete
    # calls 1-8 today; 21-23 a week before (24 came at 21:00)
    assert (s.stats.total, s.stats.answered, s.stats.missed) == (8, 3, 4)
    assert (s.before.total, s.before.answered, s.before.missed) == (3, 2, 1)
    assert s.before_cutoff == int(datetime(2026, 11, 18, 20, 0, tzinfo=KYIV).timestamp())
    assert (s.missed.waiting, s.missed.reached) == (2, 1)  # C, D; B reached
    lines = text(s, "text", "en", KYIV).splitlines()
    assert lines[:7] == [
        "📊 Daily summary: Wed 2026-11-25, until 20:00",
        "In brackets: compared with Wed 2026-11-18, until 20:00",
        "Calls: 8 (▲ 5) · callers: 6",
        # 3/8 = 37.5 % shown 38 %; against 2/3: -29.2 points
        "✅ Answered: 3 (▲ 1) — 38% (▼ 29 pp)",
        "🔴 Missed: 4 (▲ 3) — no answer: 2, busy: 1, caller hung up: 1",
        "⚪ Other: 1 — failed: 1",
        # (128-20)/8 = 13.5 s against (20+10+30)/3 = 20 s; talk 160 s against 150 s
        "⏱ Average wait: 14 s (▼ 6 s) · talk: 2 min 40 s (▲ 10 s)",
    ]
    assert sum(b.total for b in s.hours) == 8  # nothing after the cutoff


def test_a_day_without_calls_is_one_line(db: sqlite_utils.Database) -> None:
    s = build(db, DAILY, date(2026, 11, 20), KYIV, now=AFTER_THE_DAY)
    for fmt in ("text", "html", "mrkdwn"):
        out = text(s, fmt, "uk", KYIV)
        assert "\n" not in out
    assert text(s, "text", "uk", KYIV) == "📊 Підсумок дня: пт 20.11.2026 — дзвінків не було."
    assert text(s, "html", "en", KYIV) == "<b>📊 Daily summary: Fri 2026-11-20</b> — no calls."


def test_weekly_figures_and_text(db: sqlite_utils.Database) -> None:
    s = build(db, WEEKLY, date(2026, 11, 25), KYIV, now=AFTER_THE_DAY + 7 * 86400)
    assert s.key == "weekly:2026-11-23"
    assert s.filename == "summary-week-2026-11-23.png"
    assert (s.period.first_day, s.period.last_day) == (date(2026, 11, 23), date(2026, 11, 29))
    assert s.complete
    # the 9 calls of the 25th, 31 (24th) and 32 (26th)
    assert (s.stats.total, s.stats.missed) == (11, 7)
    assert (s.before.total, s.before.answered) == (4, 3)  # the week of the 18th
    assert [(day, b.total) for day, b in s.days] == [
        (date(2026, 11, 23) + timedelta(days=i), n) for i, n in enumerate([0, 1, 9, 1, 0, 0, 0])
    ]
    out = text(s, "text", "uk", KYIV)
    assert out.startswith("📊 Підсумок тижня: 23.11.2026 – 29.11.2026\n")
    assert "У дужках — порівняно з 16.11.2026 – 22.11.2026" in out
    assert "📅 По днях:\nпн 23.11: 0 · ✅ 0 · 🔴 0\nвт 24.11: 1 · ✅ 0 · 🔴 1\n" in out
    # a week's callers are listed with their date
    assert "+380951110003 · 26.11.2026 00:00 · спроб: 2" in out


@pytest.mark.parametrize("fmt", ["html", "mrkdwn", "text"])
@pytest.mark.parametrize("lang", ["uk", "en"])
def test_longest_summary_fits_one_message(tmp_path: Path, fmt: str, lang: str) -> None:
    """Every list capped, every value at its clipping length: under Telegram's 4096."""
    db = connect(tmp_path / "long.db")
    calls = [
        call(
            1000 + i,
            f"{DAY} {8 + i % 12:02d}:{i % 60:02d}:00",
            ["NOANSWER", "CANCEL", "BUSY", "FAILED", "STRANGE_" + "X" * 40][i % 5],
            f"09{i:08d}",
            f"050{i % 40:07d}",
            5,
            0,
            "M" * 80 + str(i % 9),
            "Z" * 80,
        )
        for i in range(300)
    ]
    load(db, calls)
    s = build(db, DAILY, date(2026, 11, 25), KYIV, now=AFTER_THE_DAY)
    out = text(s, fmt, lang, KYIV)
    assert len(out.encode("utf-16-le")) // 2 <= 4096
    weekly = text(build(db, WEEKLY, date(2026, 11, 25), KYIV, now=AFTER_THE_DAY), fmt, lang, KYIV)
    assert len(weekly.encode("utf-16-le")) // 2 <= 4096
    assert len(s.missed.callers) == 10 and s.missed.waiting == 180  # 3 statuses of 5 missed
    assert len(s.stats.managers) == 40 and out.count("\n") < 60
    if fmt == "html":
        parse_html(out)  # valid for Telegram


def test_html_escapes_values(tmp_path: Path) -> None:
    db = connect(tmp_path / "esc.db")
    load(db, [call(1, f"{DAY} 10:00:00", "NOANSWER", "<b>&", "<i>", 5, 0, "A&B", "<X>")])
    s = build(db, DAILY, date(2026, 11, 25), KYIV, now=AFTER_THE_DAY)
    plain, _ = parse_html(text(s, "html", "en", KYIV))
    assert "A&B <X>" in plain


# ---- deltas ---------------------------------------------------------------------------------


def test_deltas() -> None:
    assert count_delta(9, 4) == " (▲ 5)"
    assert count_delta(3, 3) == " (=)"
    assert count_delta(1, 4) == " (▼ 3)"
    assert rate_delta(0.5, 0.25, "en") == " (▲ 25 pp)"
    assert rate_delta(0.5, 0.504, "uk") == " (=)"
    assert rate_delta(0.5, None, "uk") == ""  # no calls a week before: nothing to compare
    assert time_delta(75, 10, "uk") == " (▲ 1 хв 05 с)"
    assert time_delta(None, 10, "en") == ""


# ---- time zones and the calendar ---------------------------------------------------------


def test_spring_forward_day_has_23_hours_and_no_03(tmp_path: Path) -> None:
    db = connect(tmp_path / "dst.db")
    day = "2026-03-29"
    load(
        db,
        [
            call(1, f"{day} 00:00:00", "ANSWER"),
            call(2, f"{day} 02:59:59", "NOANSWER"),
            # 03:00 EET is 04:00 EEST: one second later
            call(3, datetime(2026, 3, 29, 1, 0, tzinfo=ZoneInfo("UTC")), "NOANSWER"),
            call(4, f"{day} 23:59:59", "ANSWER"),
            call(5, "2026-03-30 00:00:00", "ANSWER"),  # the next day
            call(6, "2026-03-28 23:59:59", "ANSWER"),  # the day before
        ],
    )
    s = build(db, DAILY, date(2026, 3, 29), KYIV, now=AFTER_THE_DAY)
    assert s.period.end - s.period.start == 23 * 3600
    assert s.stats.total == 4
    assert {h: b.total for h, b in enumerate(s.hours) if b.total} == {0: 1, 2: 1, 4: 1, 23: 1}
    assert s.clock_changes == (ClockChange(date(2026, 3, 29), 3, back=False),)
    assert "🕐 29.03.2026: годинник переведено вперед, години 03:00–04:00 не було" in text(
        s, "text", "uk", KYIV
    )


def test_fall_back_day_has_25_hours_and_03_twice(tmp_path: Path) -> None:
    """Both 03:00-04:00 hours land in the 03 bucket: RIA's local dates cannot tell them
    apart, and a manager reads the chart by the clock on the wall."""
    db = connect(tmp_path / "dst.db")
    utc = ZoneInfo("UTC")
    load(
        db,
        [
            call(1, datetime(2026, 10, 25, 0, 30, tzinfo=utc), "ANSWER"),  # 03:30 EEST
            call(2, datetime(2026, 10, 25, 1, 30, tzinfo=utc), "NOANSWER"),  # 03:30 EET
            call(3, datetime(2026, 10, 25, 1, 59, 59, tzinfo=utc), "NOANSWER"),  # 03:59:59 EET
            call(4, datetime(2026, 10, 25, 2, 0, tzinfo=utc), "ANSWER"),  # 04:00 EET
            call(5, "2026-10-25 23:30:00", "ANSWER"),  # the 25th hour of the day
            call(6, "2026-10-26 00:00:00", "ANSWER"),  # the next day
        ],
    )
    s = build(db, DAILY, date(2026, 10, 25), KYIV, now=AFTER_THE_DAY)
    assert s.period.end - s.period.start == 25 * 3600
    assert s.stats.total == 5
    assert {h: b for h, b in enumerate(s.hours) if b.total} == {
        3: Bucket(3, 1, 2),
        4: Bucket(1, 1, 0),
        23: Bucket(1, 1, 0),
    }
    assert s.clock_changes == (ClockChange(date(2026, 10, 25), 3, back=True),)
    assert "the hour 03:00–04:00 happened twice" in text(s, "text", "en", KYIV)
    data = summary_text.chart_data(s, "en", KYIV)
    assert len(data.labels) == 24 and data.labels[3] == "03"
    assert "happened twice" in data.note


def test_weeks_run_monday_to_sunday_local_across_dst(tmp_path: Path) -> None:
    db = connect(tmp_path / "week.db")
    load(
        db,
        [
            call(1, "2026-03-22 23:59:59", "ANSWER"),  # Sunday before: out
            call(2, "2026-03-23 00:00:00", "ANSWER"),  # Monday: in
            call(3, "2026-03-29 23:59:59", "NOANSWER"),  # Sunday (23 hours): in
            call(4, "2026-03-30 00:00:00", "ANSWER"),  # next Monday: out
        ],
    )
    for day in range(23, 30):  # any day of the week gives that week
        p = period_for(WEEKLY, date(2026, 3, day), KYIV)
        assert (p.first_day, p.last_day) == (date(2026, 3, 23), date(2026, 3, 29))
    s = build(db, WEEKLY, date(2026, 3, 26), KYIV, now=AFTER_THE_DAY)
    assert s.period.end - s.period.start == (7 * 24 - 1) * 3600
    assert (s.stats.total, s.stats.answered, s.stats.missed) == (2, 1, 1)
    assert [b.total for _, b in s.days] == [1, 0, 0, 0, 0, 0, 1]
    assert s.clock_changes == (ClockChange(date(2026, 3, 29), 3, back=False),)
    autumn = period_for(WEEKLY, date(2026, 10, 25), KYIV)
    assert autumn.first_day == date(2026, 10, 19)
    assert autumn.end - autumn.start == (7 * 24 + 1) * 3600


def test_week_earlier_keeps_the_wall_clock_time_across_dst() -> None:
    after = int(datetime(2026, 4, 1, 20, 0, tzinfo=KYIV).timestamp())  # EEST
    assert week_earlier(after, KYIV) == int(datetime(2026, 3, 25, 20, 0, tzinfo=KYIV).timestamp())
    assert after - week_earlier(after, KYIV) == 7 * 86400 - 3600


def test_slots_are_quarter_hours_and_the_sql_matches(db: sqlite_utils.Database) -> None:
    start = int(datetime(2026, 11, 25, tzinfo=KYIV).timestamp())
    got = slots(db, start, start + 86400)
    assert sum(s.total for s in got) == 9
    assert all(s.start % 900 == 0 for s in got)
    assert [s.start for s in got] == sorted(s.start for s in got)


def test_payload_round_trip_and_outbox_keys(db: sqlite_utils.Database) -> None:
    s = build(db, DAILY, date(2026, 11, 25), KYIV, now=AFTER_THE_DAY)
    data = payload(s, {"text": "t", "html": "h", "mrkdwn": "m"}, b"\x89PNG...")
    assert data["summary"] == "daily" and data["first_day"] == "2026-11-25"
    item = OutboxItem("k", "summary", Target("console", "stdout"), 0, 0, payload=data)
    assert payload_image(item) == (b"\x89PNG...", "summary-2026-11-25.png")
    assert (
        payload_image(OutboxItem("k", "summary", item.target, 0, 0, payload={"text": "t"})) is None
    )
    bad = OutboxItem("k", "summary", item.target, 0, 0, payload={"png": "not base64!"})
    assert payload_image(bad) is None
    assert payload_image(OutboxItem("k", "test", item.target, 0, 0, payload=data)) is None
    assert existing_keys(db, ["a", "b"]) == set()
