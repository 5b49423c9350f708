"""PERIOD parsing: words, dates, ranges, local midnights across DST, and bad input."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from handlers.chat.periods import MAX_DAYS, Period, PeriodError, parse_day, parse_period

KYIV = ZoneInfo("Europe/Kyiv")
NOW = datetime(2026, 11, 28, 15, 0, tzinfo=KYIV)  # a Saturday; Kyiv is UTC+2 in winter
RANGE = "2026-11-01..2026-11-05"


def epoch(*args: int, tz: ZoneInfo = KYIV) -> int:
    return int(datetime(*args, tzinfo=tz).timestamp())


def parse(text: str | None, now: datetime = NOW) -> Period:
    return parse_period(text, now=now, tz=KYIV)


def test_today_is_the_default() -> None:
    expected = Period(
        key="today",
        first_day=date(2026, 11, 28),
        last_day=date(2026, 11, 28),
        start=int(datetime(2026, 11, 27, 22, 0, tzinfo=UTC).timestamp()),
        end=int(datetime(2026, 11, 28, 22, 0, tzinfo=UTC).timestamp()),
    )
    for text in (None, "", "   ", "today", " TODAY ", "Today", "сьогодні", "СЬОГОДНІ"):
        assert parse(text) == expected, text


@pytest.mark.parametrize(
    ("text", "key", "first", "last"),
    [
        ("yesterday", "yesterday", date(2026, 11, 27), date(2026, 11, 27)),
        ("вчора", "yesterday", date(2026, 11, 27), date(2026, 11, 27)),
        ("week", "week", date(2026, 11, 22), date(2026, 11, 28)),
        ("Тиждень", "week", date(2026, 11, 22), date(2026, 11, 28)),
        ("month", "month", date(2026, 11, 1), date(2026, 11, 28)),
        ("місяць", "month", date(2026, 11, 1), date(2026, 11, 28)),
        ("2026-11-05", "2026-11-05", date(2026, 11, 5), date(2026, 11, 5)),
        ("2026-11-28", "2026-11-28", date(2026, 11, 28), date(2026, 11, 28)),
        ("2026-11-01..2026-11-05", RANGE, date(2026, 11, 1), date(2026, 11, 5)),
        ("2026-11-01 .. 2026-11-05", RANGE, date(2026, 11, 1), date(2026, 11, 5)),
        ("2026-11-05..2026-11-05", "2026-11-05", date(2026, 11, 5), date(2026, 11, 5)),
    ],
)
def test_words_and_dates(text: str, key: str, first: date, last: date) -> None:
    period = parse(text)
    assert (period.key, period.first_day, period.last_day) == (key, first, last)
    assert period.start == epoch(first.year, first.month, first.day)
    assert period.days == (last - first).days + 1


def test_week_and_month_bounds_are_local_midnights() -> None:
    week = parse("week")
    assert week.start == epoch(2026, 11, 22)
    assert week.end == epoch(2026, 11, 29)
    assert week.end - week.start == 7 * 86400
    month = parse("month")
    assert (month.start, month.end) == (epoch(2026, 11, 1), epoch(2026, 11, 29))


def test_month_on_the_first_is_one_day() -> None:
    period = parse("month", now=datetime(2026, 12, 1, 0, 5, tzinfo=KYIV))
    assert period.first_day == period.last_day == date(2026, 12, 1)


def test_today_is_the_local_date_not_the_utc_one() -> None:
    # 23:30 UTC on the 28th is 01:30 on the 29th in Kyiv
    late = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)
    assert parse("today", now=late).first_day == date(2026, 11, 29)
    # a naive `now` is taken as local already
    assert parse("today", now=datetime(2026, 11, 28, 23, 30)).first_day == date(2026, 11, 28)


def test_spring_forward_day_is_23_hours() -> None:
    period = parse("2026-03-29")
    assert period.end - period.start == 23 * 3600
    assert period.start == int(datetime(2026, 3, 28, 22, 0, tzinfo=UTC).timestamp())  # UTC+2
    assert period.end == int(datetime(2026, 3, 29, 21, 0, tzinfo=UTC).timestamp())  # UTC+3


def test_fall_back_day_is_25_hours() -> None:
    period = parse("2026-10-25")
    assert period.end - period.start == 25 * 3600
    assert period.start == int(datetime(2026, 10, 24, 21, 0, tzinfo=UTC).timestamp())
    assert period.end == int(datetime(2026, 10, 25, 22, 0, tzinfo=UTC).timestamp())


def test_range_across_dst_change() -> None:
    period = parse("2026-03-28..2026-03-30")
    assert period.end - period.start == 3 * 86400 - 3600


def test_yesterday_across_dst() -> None:
    period = parse("yesterday", now=datetime(2026, 10, 26, 9, 0, tzinfo=KYIV))
    assert period.first_day == date(2026, 10, 25)
    assert period.end - period.start == 25 * 3600


def test_longest_allowed_range() -> None:
    period = parse("2025-11-28..2026-11-28")
    assert period.days == MAX_DAYS == 366


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("foo", "bad_period"),
        ("week 2", "bad_period"),
        ("today..yesterday", "bad_period"),
        ("20261128", "bad_period"),
        ("2026-11", "bad_period"),
        ("2026-11-01..", "bad_period"),
        ("..2026-11-01", "bad_period"),
        ("2026-11-01..2026-11-02..2026-11-03", "bad_period"),
        ("2026-11-01—2026-11-05", "bad_period"),
        ("٢٠٢٦-١١-٠١", "bad_period"),  # non-ASCII digits
        ("<b>2026</b>", "bad_period"),
        ("2026-02-30", "bad_date"),
        ("2026-13-01", "bad_date"),
        ("2026-11-05..2026-11-01", "period_reversed"),
        ("2025-11-27..2026-11-28", "period_too_long"),
        ("2020-01-01..2026-01-01", "period_too_long"),
        ("2026-11-29", "period_in_future"),
        ("2026-11-20..2026-11-29", "period_in_future"),
        ("2030-01-01", "period_in_future"),
    ],
)
def test_bad_input(text: str, key: str) -> None:
    with pytest.raises(PeriodError) as caught:
        parse(text)
    assert caught.value.key == key
    assert caught.value.text == text.strip()
    assert isinstance(caught.value, ValueError)


def test_error_keeps_the_original_spelling() -> None:
    with pytest.raises(PeriodError) as caught:
        parse("  Next Week ")
    assert caught.value.text == "Next Week"


def test_parse_day_takes_both_forms_and_says_what_is_wrong() -> None:
    """One parser for every typed-in date (chat commands, the CLI's --from/--to)."""
    assert parse_day(" 2026-11-28 ") == parse_day("28.11.2026") == date(2026, 11, 28)
    with pytest.raises(ValueError, match="there is no such date"):
        parse_day("31.02.2026")
    with pytest.raises(ValueError, match="is not a date"):
        parse_day("20261128")  # fromisoformat would take it; people do not type it
    with pytest.raises(ValueError, match="is not a date"):
        parse_day("yesterday")
